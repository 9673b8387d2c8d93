#!/usr/bin/env bash
# Prints the PCRs of the running enclave (from `nitro-cli describe-enclaves`) next to the
# expected ones (from pcrs.json) and says whether they match.
#
# Usage: scripts/describe.sh [--pcrs FILE] [--enclave-name NAME]
#   --pcrs FILE          expected measurements (default: /opt/enclave-approvals/pcrs.json if
#                        it exists, else eif/out/pcrs.json in this checkout)
#   --enclave-name NAME  which enclave to check when several run (default: the only one)
#
# Exit status: 0 when every expected PCR matches, 2 when one differs or is missing, 1 when
# the check could not be made (no enclave, unreadable files).
#
# Environment: NITRO_CLI and GOVCTL override the commands used (default: from PATH, then
# this checkout's target directory for govctl).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pcrs=""
name_args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --pcrs) pcrs=${2:?--pcrs needs a file}; shift ;;
    --enclave-name) name_args=(--enclave-name "${2:?--enclave-name needs a name}"); shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "describe: unknown argument $1 (see --help)" >&2; exit 1 ;;
  esac
  shift
done

if [ -z "$pcrs" ]; then
  if [ -f /opt/enclave-approvals/pcrs.json ]; then
    pcrs=/opt/enclave-approvals/pcrs.json
  else
    pcrs=$repo/eif/out/pcrs.json
  fi
fi
if [ ! -r "$pcrs" ]; then
  echo "describe: cannot read the expected PCRs in $pcrs (build them with scripts/build-eif-local.sh)" >&2
  exit 1
fi

nitro_cli=${NITRO_CLI:-nitro-cli}
govctl=${GOVCTL:-}
if [ -z "$govctl" ]; then
  if command -v govctl >/dev/null 2>&1; then
    govctl=govctl
  else
    govctl="${CARGO_TARGET_DIR:-$repo/target}/release/govctl"
  fi
fi

running=$(mktemp)
trap 'rm -f "$running"' EXIT
if ! "$nitro_cli" describe-enclaves >"$running"; then
  echo "describe: nitro-cli describe-enclaves failed" >&2
  exit 1
fi

echo "expected: $pcrs"
echo "running:  nitro-cli describe-enclaves"
status=0
"$govctl" eif compare --expected "$pcrs" --actual "$running" "${name_args[@]}" || status=$?
case "$status" in
  0) echo "the running enclave is the expected image" ;;
  2) echo "the running enclave is NOT the expected image" ;;
  *) echo "describe: the comparison could not be made" >&2 ;;
esac
exit "$status"
