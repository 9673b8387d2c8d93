#!/usr/bin/env bash
# Builds the enclave image: the Docker image from eif/Dockerfile, then eif/out/enclave.eif
# with `nitro-cli build-enclave`, then eif/out/pcrs.json with `govctl eif pcrs`, and checks
# that nitro-cli's measurements and govctl's agree.
#
# Usage: scripts/build-eif.sh --kms-key-id ARN --region REGION [--verify-reproducible]
#                            [--out DIR] [--tag NAME]
#   --kms-key-id ARN       the KMS key that seals the log key (its ARN); part of the image
#   --region REGION        its region (e.g. eu-west-1); part of the image
#   --verify-reproducible  build a second time from scratch (no Docker cache) into
#                          DIR/rebuild and fail unless both builds have the same PCRs
#   --out DIR              output directory (default: eif/out)
#   --tag NAME             Docker image name (default: enclave-approvals-enclave:<commit>)
#
# Environment:
#   SOURCE_DATE_EPOCH      time given to every file of the image (default: the commit time)
#   EIF_SIGNING_CERT, EIF_SIGNING_KEY
#                          sign the image (PCR8): a PEM certificate and its private key (or a
#                          KMS key ARN), passed to nitro-cli's --signing-certificate and
#                          --private-key
#   GOVCTL                 govctl binary (default: built with cargo into the target directory)
#   NITRO_CLI, DOCKER      the nitro-cli and docker commands (default: from PATH)
#
# Needs Docker with BuildKit and the Nitro Enclaves CLI (aws-nitro-enclaves-cli-devel on
# Amazon Linux); see docs/deployment.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$repo/eif/out"
tag=""
verify=0
kms_key_id=""
region=""

usage() {
  # The comment block at the top of this file, without its markers.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --verify-reproducible) verify=1 ;;
    --kms-key-id) kms_key_id=${2:?--kms-key-id needs a key ARN}; shift ;;
    --region) region=${2:?--region needs a region}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --tag) tag=${2:?--tag needs a name}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-eif: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$kms_key_id" ] || [ -z "$region" ]; then
  echo "build-eif: give --kms-key-id and --region: the enclave's KMS key is part of its image" \
    "(see docs/deployment.md, section 5)" >&2
  exit 2
fi

docker_cmd=${DOCKER:-docker}
nitro_cli=${NITRO_CLI:-nitro-cli}
for tool in "$docker_cmd" "$nitro_cli"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-eif: $tool not found; see docs/deployment.md (Install the tools)" >&2
    exit 1
  fi
done

commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
tag=${tag:-enclave-approvals-enclave:$commit}
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  echo "build-eif: warning: the checkout has uncommitted changes; the image will not match" \
    "a build of commit $commit" >&2
fi

if [ -n "${GOVCTL:-}" ]; then
  govctl=$GOVCTL
else
  echo "build-eif: building govctl" >&2
  cargo build --quiet --release --locked --manifest-path "$repo/Cargo.toml" -p govctl
  govctl="${CARGO_TARGET_DIR:-$repo/target}/release/govctl"
fi

# Builds the Docker image and the EIF into $1; extra arguments go to docker build.
build_once() {
  local dir=$1
  shift
  mkdir -p "$dir"
  echo "build-eif: docker image $tag (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
  local build_args=(--file "$repo/eif/Dockerfile" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
    --build-arg "KMS_KEY_ID=$kms_key_id" --build-arg "KMS_REGION=$region" "$@")
  if "$docker_cmd" buildx version >/dev/null 2>&1; then
    # rewrite-timestamp clamps layer timestamps to SOURCE_DATE_EPOCH as well.
    "$docker_cmd" buildx build "${build_args[@]}" \
      --output "type=docker,name=$tag,rewrite-timestamp=true" "$repo"
  else
    DOCKER_BUILDKIT=1 "$docker_cmd" build "${build_args[@]}" --tag "$tag" "$repo"
  fi

  echo "build-eif: nitro-cli build-enclave -> $dir/enclave.eif" >&2
  local sign_args=()
  if [ -n "${EIF_SIGNING_CERT:-}" ] || [ -n "${EIF_SIGNING_KEY:-}" ]; then
    sign_args=(--signing-certificate "${EIF_SIGNING_CERT:?EIF_SIGNING_CERT is needed to sign}"
      --private-key "${EIF_SIGNING_KEY:?EIF_SIGNING_KEY is needed to sign}")
  fi
  "$nitro_cli" build-enclave --docker-uri "$tag" --output-file "$dir/enclave.eif" \
    --name enclave-approvals --version "$commit" "${sign_args[@]}" >"$dir/nitro-cli-build.json"

  "$govctl" eif pcrs "$dir/enclave.eif" --out "$dir/pcrs.json" >/dev/null
  # Our parser and nitro-cli must agree on every PCR; a difference means one of them is wrong
  # and the PCRs must not be trusted until it is understood.
  if ! "$govctl" eif compare --expected "$dir/nitro-cli-build.json" --actual "$dir/pcrs.json" \
    >"$dir/compare.txt"; then
    cat "$dir/compare.txt" >&2
    echo "build-eif: govctl and nitro-cli disagree on the PCRs of $dir/enclave.eif" >&2
    exit 1
  fi
}

build_once "$out"
echo "build-eif: wrote $out/enclave.eif and $out/pcrs.json" >&2
cat "$out/pcrs.json"

if [ "$verify" = 1 ]; then
  echo "build-eif: second build without cache, to check reproducibility" >&2
  build_once "$out/rebuild" --no-cache
  if "$govctl" eif compare --expected "$out/pcrs.json" --actual "$out/rebuild/enclave.eif"; then
    echo "build-eif: reproducible: both builds have the same PCRs" >&2
  else
    echo "build-eif: NOT reproducible: the two builds differ (see above)" >&2
    exit 1
  fi
fi
