#!/usr/bin/env bash
# Builds the enclave image without Docker or nitro-cli, reproducibly: the same commit gives the
# same enclave.eif, byte for byte, on any machine with the same toolchain and Debian packages.
#   kernel       scripts/build-kernel.sh (Debian's linux-source, eif/kernel/enclave.config)
#   cmdline      eif/kernel/cmdline
#   ramdisk 1    eif/image/init.list: our PID 1 (eif/init)               -> PCR1 (with kernel)
#   ramdisk 2    eif/image/app.list: enclave-app, its arguments and env  -> PCR2
# Both binaries are built static (x86_64-unknown-linux-gnu, +crt-static) in release, with the
# source and registry paths remapped; the ramdisks are packed by `govctl eif ramdisk` (sorted
# entries, owners root, fixed modes, every mtime SOURCE_DATE_EPOCH) and the image assembled
# by `govctl eif build` (shared/eif's writer). Writes DIR/enclave.eif and DIR/pcrs.json
# (nitro-cli describe-eif's "Measurements" shape), and prints the PCRs.
#
# Usage: scripts/build-eif-local.sh --kms-key-id ARN --region REGION [options]
#   --out DIR                  output directory (default: eif/out)
#   --kms-key-id ARN           the KMS key that seals the log key; baked into the image
#   --region REGION            its region; baked into the image
#   --kms-host NAME            KMS's TLS name, when not kms.<region>.amazonaws.com (a local KMS)
#   --kms-ca PEM               an extra CA the enclave trusts for KMS (a local KMS's); baked in
#   --enclave-arg ARG          one more argument for enclave-app (repeatable), e.g. --max-batch
#   --insecure-qemu-attestation
#                              a TEST image for QEMU's nitro-enclave machine: the enclave
#                              accepts its own unsigned (QEMU) attestation documents. Never
#                              deploy such an image; its PCRs differ from the production one's
#   --verify-reproducible      build a second time, from a copy of the sources at another path
#                              with an empty cargo target directory and a fresh kernel build,
#                              and fail unless both images are identical
#
# Environment:
#   SOURCE_DATE_EPOCH   time of every ramdisk entry and of the metadata (default: the commit time)
#   EA_CACHE_DIR        where the kernel is cached (see scripts/qemu-versions.sh)
#   CARGO_TARGET_DIR    cargo's target directory (default: target in the repository)
#   GOVCTL              a govctl binary to pack the image with (default: built here)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$repo/eif/out"
kms_key_id=""
region=""
kms_host=""
kms_ca=""
insecure_qemu=0
verify=0
extra_args=()

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift ;;
    --kms-key-id) kms_key_id=${2:?--kms-key-id needs a key ARN}; shift ;;
    --region) region=${2:?--region needs a region}; shift ;;
    --kms-host) kms_host=${2:?--kms-host needs a name}; shift ;;
    --kms-ca) kms_ca=${2:?--kms-ca needs a PEM file}; shift ;;
    --enclave-arg) extra_args+=("${2:?--enclave-arg needs an argument}"); shift ;;
    --insecure-qemu-attestation) insecure_qemu=1 ;;
    --verify-reproducible) verify=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-eif-local: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "build-eif-local: $*" >&2; }

if [ -z "$kms_key_id" ] || [ -z "$region" ]; then
  log "give --kms-key-id and --region: the enclave's KMS key is part of its image" \
    "(see docs/deployment.md)"
  exit 2
fi
if [ -n "$kms_ca" ] && [ ! -f "$kms_ca" ]; then
  log "--kms-ca $kms_ca: no such file"
  exit 2
fi
for arg in "${extra_args[@]}"; do
  case "$arg" in
    *$'\n'*) log "--enclave-arg must not contain a newline"; exit 2 ;;
    --insecure-qemu-attestation) log "use --insecure-qemu-attestation itself, not --enclave-arg"; exit 2 ;;
  esac
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain -- . ':!eif/out' 2>/dev/null)" ]; then
  log "warning: the checkout has uncommitted changes; the image will not match a build of" \
    "commit $commit"
fi

# The command line enclave-app runs with, one argument per line (init's /etc/enclave/cmd).
# VMADDR_CID_ANY (4294967295): accept the parent's connections whatever its CID; the store and
# the KMS relay are on the parent, whose CID init passes in ENCLAVE_PARENT_CID.
enclave_command() {
  local args=(/usr/bin/enclave-app --listen vsock:4294967295:5000 --nsm device --log-key kms
    --kms-key-id "$kms_key_id" --kms-region "$region")
  [ -n "$kms_host" ] && args+=(--kms-host "$kms_host")
  [ -n "$kms_ca" ] && args+=(--kms-ca /etc/enclave/kms-ca.pem)
  [ "$insecure_qemu" = 1 ] && args+=(--insecure-qemu-attestation)
  args+=("${extra_args[@]}")
  printf '%s\n' "${args[@]}"
}

# Builds the image from the sources at $1 with cargo's target directory $2 and the kernel cache
# $3, into $4.
build_once() {
  local source=$1 target=$2 cache=$3 dir=$4
  mkdir -p "$dir"
  local kernel
  kernel=$(EA_CACHE_DIR=$cache "$source/scripts/build-kernel.sh")
  local kernel_release
  kernel_release=$(cat "$(dirname "$kernel")/release" 2>/dev/null || echo unknown)

  log "building enclave-init and enclave-app (static, release) from $source"
  local cargo_home=${CARGO_HOME:-$HOME/.cargo}
  # The target is named so that RUSTFLAGS reach our binaries and their dependencies but not
  # build scripts or proc macros; the remapped prefixes keep this checkout's path, the
  # registry's and the target directory's (generated sources) out of the binaries (panic
  # locations), so another machine gets the same bytes.
  RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols --remap-path-prefix=$source=/enclave-approvals --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target=/target" \
    CARGO_TARGET_DIR=$target \
    cargo build --quiet --release --locked --manifest-path "$source/Cargo.toml" \
    --target x86_64-unknown-linux-gnu -p enclave-app -p enclave-init
  local bin="$target/x86_64-unknown-linux-gnu/release"
  # govctl packs the ramdisks and the image; any profile writes the same bytes. $GOVCTL (a
  # govctl the caller built already) is used for the first build only: the second build of
  # --verify-reproducible makes its own.
  local govctl
  if [ -n "${GOVCTL:-}" ] && [ "$source" = "$repo" ]; then
    govctl=$GOVCTL
  else
    CARGO_TARGET_DIR=$target cargo build --quiet --locked \
      --manifest-path "$source/Cargo.toml" -p govctl
    govctl="$target/debug/govctl"
  fi

  local stage="$dir/stage"
  rm -rf "$stage"
  mkdir -p "$stage/init" "$stage/app"
  cp "$bin/enclave-init" "$stage/init/enclave-init"
  cp "$bin/enclave-app" "$stage/app/enclave-app"
  enclave_command >"$stage/app/cmd"
  printf 'RUST_LOG=info\n' >"$stage/app/env"
  cp "$source/eif/image/app.list" "$stage/app.list"
  if [ -n "$kms_ca" ]; then
    cp "$kms_ca" "$stage/app/kms-ca.pem"
    echo "file /etc/enclave/kms-ca.pem kms-ca.pem 0644 0 0" >>"$stage/app.list"
  fi
  "$govctl" eif ramdisk --list "$source/eif/image/init.list" --from "$stage/init" \
    --mtime "$SOURCE_DATE_EPOCH" --out "$dir/init.cpio" 2>/dev/null
  "$govctl" eif ramdisk --list "$stage/app.list" --from "$stage/app" \
    --mtime "$SOURCE_DATE_EPOCH" --out "$dir/app.cpio" 2>/dev/null
  "$govctl" eif build --kernel "$kernel" --cmdline "$(cat "$source/eif/kernel/cmdline")" \
    --ramdisk "$dir/init.cpio" --ramdisk "$dir/app.cpio" --name enclave-approvals \
    --version "$commit" --kernel-version "$kernel_release" --build-time "$SOURCE_DATE_EPOCH" \
    --out "$dir/enclave.eif" --pcrs-out "$dir/pcrs.json" >/dev/null
}

target=${CARGO_TARGET_DIR:-$repo/target}
build_once "$repo" "$target" "${EA_CACHE_DIR:-}" "$out"
if [ "$insecure_qemu" = 1 ]; then
  log "TEST IMAGE: built with --insecure-qemu-attestation; it accepts unsigned attestation" \
    "documents and must never be deployed"
fi
log "wrote $out/enclave.eif and $out/pcrs.json"
cat "$out/pcrs.json"

if [ "$verify" = 1 ]; then
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/ea-reproduce.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  log "second build: sources copied to $scratch/src, empty target directory, fresh kernel"
  mkdir -p "$scratch/src"
  # The files git knows, as they are in the work tree (uncommitted edits included).
  git -C "$repo" ls-files -z --cached --others --exclude-standard |
    (cd "$repo" && xargs -0 cp --parents -t "$scratch/src")
  build_once "$scratch/src" "$scratch/target" "$scratch/cache" "$scratch/out"
  if cmp -s "$out/enclave.eif" "$scratch/out/enclave.eif"; then
    log "reproducible: both builds wrote the same enclave.eif ($(sha256sum <"$out/enclave.eif" | cut -c1-16)...)"
  else
    for part in init.cpio app.cpio; do
      cmp -s "$out/$part" "$scratch/out/$part" || log "  $part differs"
    done
    log "NOT reproducible: the two builds differ (second build in $scratch, kept)"
    trap - EXIT
    exit 1
  fi
fi
