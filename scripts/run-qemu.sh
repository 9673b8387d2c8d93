#!/usr/bin/env bash
# Runs the whole service on one machine with the REAL enclave image instead of the mock NSM:
# the EIF from scripts/build-eif-local.sh boots under QEMU's nitro-enclave machine (our kernel,
# our init, enclave-app on the virtio NSM), its vsock carried to unix sockets on this machine
# by vhost-device-vsock; beside it run a local KMS whose key policy is pinned to the EIF's PCRs
# and parent-proxy (API, log store, KMS relay, boot heartbeat). On first start it makes an
# `admin` identity, a genesis document and a trust file, exactly as scripts/run-local.sh does,
# and prints the same "is up" block. Ctrl-C stops everything it started; a second run with the
# same directory continues the same log, under the same log key (unsealed through the KMS).
#
# QEMU's NSM does not sign its attestation documents, so the image is built with
# --insecure-qemu-attestation and every verifier here runs with that flag: this proves the
# image, init, kernel drivers, device NSM path, vsock, PCRs and KMS release through the relay,
# not a hardware root of trust (docs/qemu.md).
#
# Needs what scripts/setup-qemu.sh installs and builds (QEMU with nitro-enclave, the kernel,
# vhost-device-vsock).
#
# Environment:
#   EA_PORT             proxy port on 127.0.0.1 (default 8443)
#   EA_QEMU_DIR         directory for sockets, logs, keys, image and state (default
#                       .qemu-stack in the repository)
#   EA_PROFILE          cargo profile of the host binaries: debug (default) or release
#   EA_QEMU_MEMORY      guest memory in MiB (default 1024)
#   EA_QEMU_CPUS        guest vCPUs (default 2)
#   EA_QEMU_ACCEL       auto (default): KVM if a probe boot of the kernel under KVM works on
#                       this machine (the answer is cached), TCG otherwise; or tcg, or kvm
#   EA_ENCLAVE_ARGS     enclave-app arguments baked into the image besides its own
#                       (space-separated; default --max-batch 32, see below); other ones change
#                       PCR2, so the key policy of an existing directory refuses that image
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${EA_PORT:-8443}
dir=${EA_QEMU_DIR:-$repo/.qemu-stack}
profile=${EA_PROFILE:-debug}
memory=${EA_QEMU_MEMORY:-1024}
cpus=${EA_QEMU_CPUS:-2}
accel=${EA_QEMU_ACCEL:-auto}
target=${CARGO_TARGET_DIR:-$repo/target}
key_id=5f0c6a8e-2d1b-4c3a-9e7f-0a1b2c3d4e5f
region=eu-west-1
# The guest's CID, as vhost-device-vsock gives it. The parent is CID 2 here (the backend's
# host side), not Nitro's 3: init reads it from the appended command line.
guest_cid=4

case "$profile" in
  debug) build_flags=() ;;
  release) build_flags=(--release) ;;
  *) echo "EA_PROFILE must be debug or release, not $profile" >&2; exit 2 ;;
esac
case "$accel" in
  auto|tcg|kvm) ;;
  *) echo "EA_QEMU_ACCEL must be auto, tcg or kvm, not $accel" >&2; exit 2 ;;
esac

if ! setup=$("$repo/scripts/setup-qemu.sh" --print-env 2>&1); then
  echo "$setup" >&2
  echo "run-qemu: QEMU, the enclave kernel or vhost-device-vsock is missing: run scripts/setup-qemu.sh first" >&2
  exit 1
fi
qemu=$(sed -n 's/^EA_QEMU_BIN=//p' <<<"$setup")
firmware=$(sed -n 's/^EA_QEMU_FIRMWARE_DIR=//p' <<<"$setup")
kernel=$(sed -n 's/^EA_ENCLAVE_KERNEL=//p' <<<"$setup")
vhost=$(sed -n 's/^EA_VHOST_DEVICE_VSOCK=//p' <<<"$setup")

# Does KVM run our kernel here? Some machines' /dev/kvm is a paravirtual KVM that cannot (QEMU
# then hangs or stops with "KVM internal error"), so a bare boot of the kernel, which panics
# at once for want of a root filesystem, must reach that panic under KVM within seconds.
kvm_works() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local cache="${EA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enclave-approvals}/kvm-probe"
  local key
  key=$(printf '%s\n' "$qemu" "$kernel" "$(uname -r)" | sha256sum | cut -c1-16)
  local known
  known=$(sed -n "s/^$key //p" "$cache" 2>/dev/null || true)
  if [ -z "$known" ]; then
    if timeout 10 "$qemu" -M microvm -bios qboot.rom -accel kvm -m 256 -nographic -no-reboot \
      -L "$firmware" -kernel "$kernel" -append "console=ttyS0 panic=-1 reboot=t" </dev/null 2>&1 |
      grep -q "Kernel panic"; then
      known=yes
    else
      known=no
    fi
    mkdir -p "$(dirname "$cache")"
    echo "$key $known" >>"$cache"
  fi
  [ "$known" = yes ]
}
if [ "$accel" = auto ]; then
  if kvm_works; then accel=kvm; else accel=tcg; fi
fi
case "$accel" in
  tcg) accel_args=(-accel tcg) ;;
  kvm) accel_args=(-accel kvm) ;;
esac
echo "run-qemu: QEMU with $accel" >&2

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
echo "building ($profile)..." >&2
# The whole workspace's binaries, as the tests build them: the same package selection keeps
# cargo from relinking them when one follows the other.
cargo build --quiet "${build_flags[@]}" --manifest-path "$repo/Cargo.toml" --workspace --bins
bin="$target/$profile"
govctl="$bin/govctl"

pids=()
# shellcheck disable=SC2329 # invoked by the trap below
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  echo "stopped" >&2
}
trap cleanup INT TERM EXIT

alive() {
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a process of the stack exited; see the logs in $dir (the guest's console: $dir/console.log)" >&2
      tail -n 20 "$dir/console.log" >&2 2>/dev/null || true
      exit 1
    fi
  done
}

# --- One-time set-up: the local KMS's CA (baked into the image), credentials. ------------
if [ ! -f "$dir/kms-ca.pem" ]; then
  "$bin/local-kms" --state "$dir/kms-state.json" --init-ca \
    --ca-out "$dir/kms-ca.pem" >/dev/null
fi
if [ ! -f "$dir/aws-credentials" ]; then
  printf '[default]\naws_access_key_id = AKIALOCALENCLAVE\naws_secret_access_key = %s\n' \
    "local-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/aws-credentials"
  chmod 600 "$dir/aws-credentials"
fi
secret=$(sed -n 's/^aws_secret_access_key = //p' "$dir/aws-credentials")
cat >"$dir/kms-credentials.json" <<EOF
{"credentials": [{"access_key_id": "AKIALOCALENCLAVE", "secret_access_key": "$secret",
  "principal_arn": "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local"}]}
EOF
chmod 600 "$dir/kms-credentials.json"

# --- The image: built (or reused: cargo and the kernel cache make a rebuild quick). -------
image_args=(--out "$dir/eif" --kms-key-id "$key_id" --region "$region" --kms-host localhost
  --kms-ca "$dir/kms-ca.pem" --insecure-qemu-attestation)
# --max-batch 32 by default: under QEMU, appends of larger batches (64 clients and more)
# stalled the guest's vsock connection to the store for want of a credit update from
# vhost-device-vsock 0.3.0 (host-side queues empty, the enclave's write waiting), until the
# store timeout; docs/qemu.md has the measurements. A Nitro enclave's vsock is not this code.
enclave_args=${EA_ENCLAVE_ARGS-"--max-batch 32"}
for arg in $enclave_args; do
  image_args+=(--enclave-arg "$arg")
done
image_started=$SECONDS
GOVCTL=$govctl "$repo/scripts/build-eif-local.sh" "${image_args[@]}" >/dev/null
echo "run-qemu: image ready in $((SECONDS - image_started)) s" >&2
eif="$dir/eif/enclave.eif"

# The key policy names the PCRs of the first image this directory ran (the genesis image,
# $dir/pcrs.json). An image built later from other code has other PCRs: it starts only once
# the log admits it (govctl image propose, two owners approve) and the key policy does
# (govctl kms-policy --from-log rewrites $dir/kms-policy.json); until then the enclave stops
# in `failed` and the KMS would refuse it a key. docs/qemu.md walks through an upgrade.
if [ ! -f "$dir/kms-policy.json" ]; then
  cp "$dir/eif/pcrs.json" "$dir/pcrs.json"
  "$govctl" kms-policy --pcrs "$dir/pcrs.json" \
    --key-admin arn:aws:iam::111122223333:role/KeyAdmin \
    --enclave-role arn:aws:iam::111122223333:role/EnclaveInstance \
    --out "$dir/kms-policy.json" >/dev/null
elif ! "$govctl" eif compare --expected "$dir/pcrs.json" --actual "$dir/eif/pcrs.json" >/dev/null 2>&1; then
  echo "run-qemu: note: this image's PCRs are not the genesis image's ($dir/pcrs.json); it" \
    "serves only if the log admits it and $dir/kms-policy.json names it (docs/qemu.md, upgrades)" >&2
fi

# --- The local KMS, accepting QEMU's unsigned attestation documents. ----------------------
rm -f "$dir/kms.out"
"$bin/local-kms" --state "$dir/kms-state.json" --credentials "$dir/kms-credentials.json" \
  --insecure-qemu-attestation --ca-out "$dir/kms-ca.pem" \
  --key "$key_id=$dir/kms-policy.json" >"$dir/kms.out" 2>>"$dir/kms.log" &
pids+=("$!")
kms=""
for _ in $(seq 1 300); do
  kms=$(sed -n 's|^listening on https://||p' "$dir/kms.out" 2>/dev/null || true)
  [ -n "$kms" ] && break
  alive
  sleep 0.1
done
[ -n "$kms" ] || { echo "the local KMS did not start; see $dir/kms.log" >&2; exit 1; }

# --- vsock: the guest's connections to CID 2 port P arrive at $vsock_P; ours reach the guest
# through $vsock with a CONNECT line. --------------------------------------------------------
vsock="$dir/vsock.sock"
rm -f "$vsock" "$vsock"_* "$dir/vhost-user.sock"
"$vhost" --vm "guest-cid=$guest_cid,uds-path=$vsock,socket=$dir/vhost-user.sock,tx-buffer-size=1048576" \
  2>>"$dir/vhost-device-vsock.log" &
pids+=("$!")

# --- The parent: API, log store, KMS relay, credentials, boot heartbeat. A minute per request,
# not the default 10 s: under TCG the genesis (a fresh RSA key in the guest for KMS, the
# sealing round trip, two attested records) took more than 10 s in a CI dry run. ------------
rm -f "$dir/proxy.out"
"$bin/parent-proxy" --listen "127.0.0.1:$port" --enclave "vsock-uds:$vsock:5000" --insecure-http \
  --store-listen "unix:${vsock}_5001" --store-path "$dir/log.sqlite" \
  --kms-relay-listen "unix:${vsock}_8000" --kms-relay-endpoint "$kms" \
  --kms-relay-allow "$kms" --aws-credentials "static:$dir/aws-credentials" \
  --enclave-heartbeat "unix:${vsock}_9000" --request-timeout-ms 60000 \
  >"$dir/proxy.out" 2>>"$dir/proxy.log" &
pids+=("$!")
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$dir/proxy.out" 2>/dev/null || true)
  [ -n "$url" ] && break
  alive
  sleep 0.1
done
[ -n "$url" ] || { echo "the proxy did not start; see $dir/proxy.log" >&2; exit 1; }
for _ in $(seq 1 100); do
  [ -S "$dir/vhost-user.sock" ] && break
  alive
  sleep 0.1
done

# --- The enclave: the EIF under QEMU. The appended command line is not measured: it names the
# parent's CID for init and makes a reboot end QEMU (-no-reboot; ACPI is off, so there is no
# power-off). -------------------------------------------------------------------------------
: >"$dir/console.log"
qemu_started=$(date +%s.%N)
"$qemu" -M "nitro-enclave,vsock=vsock0,id=enclave-approvals" -kernel "$eif" \
  -m "$memory" -smp "$cpus" "${accel_args[@]}" -nographic -no-reboot -L "$firmware" \
  -chardev "socket,id=vsock0,path=$dir/vhost-user.sock" \
  -append "ea.parent_cid=2 reboot=t" </dev/null >>"$dir/console.log" 2>&1 &
pids+=("$!")

# Wait for the enclave to leave its start-up phase (the guest boots in a few seconds under TCG).
phase=""
for _ in $(seq 1 1200); do
  phase=$("$govctl" describe --endpoint "$url" 2>/dev/null | sed -n 's/.*"phase": "\([a-z_]*\)".*/\1/p' || true)
  case "$phase" in
    awaiting_genesis|serving|failed) break ;;
  esac
  alive
  sleep 0.1
done
boot_seconds=$(awk -v from="$qemu_started" -v to="$(date +%s.%N)" 'BEGIN { printf "%.1f", to - from }')
echo "run-qemu: the enclave reached ${phase:-no phase} $boot_seconds s after QEMU started" >&2
if [ "$phase" = failed ] || [ -z "$phase" ]; then
  echo "the enclave did not start (phase: ${phase:-no answer}):" >&2
  "$govctl" describe --endpoint "$url" >&2 2>&1 || true
  echo "the guest's console ($dir/console.log) ends with:" >&2
  tail -n 20 "$dir/console.log" >&2 || true
  exit 1
fi

if [ "$phase" = awaiting_genesis ]; then
  if [ ! -f "$dir/admin.identity.json" ]; then
    "$govctl" keygen --principal admin --key-id local --out "$dir/admin.identity.json" \
      --public-out "$dir/admin.public.json" >/dev/null
  fi
  "$govctl" genesis init --name qemu --community /communities/c1 --address-space 10.0.0.0/8 \
    --admin "$dir/admin.public.json" --out "$dir/genesis.json"
  rm -f "$dir/trust.json"
  "$govctl" genesis submit "$dir/genesis.json" --endpoint "$url" --trust-out "$dir/trust.json" \
    --insecure-qemu-attestation --pcrs "$dir/pcrs.json" >"$dir/genesis-answer.json"
fi

ready=""
for _ in $(seq 1 600); do
  if "$govctl" health --endpoint "$url" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  alive
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "the service did not become healthy:" >&2
  "$govctl" health --endpoint "$url" >&2 || true
  echo "see the logs in $dir" >&2
  exit 1
fi

echo "Enclave Approvals QEMU stack is up (real image under QEMU nitro-enclave, UNSIGNED attestation, local KMS, logs in $dir)"
echo "endpoint: $url"
echo "to use it from another terminal:"
echo "  export GOVCTL_ENDPOINT=$url GOVCTL_IDENTITY=$dir/admin.identity.json GOVCTL_TRUST=$dir/trust.json"
echo "  $govctl read list"
echo "image: $eif   PCRs: $dir/pcrs.json   guest console: $dir/console.log"
echo "verify with --insecure-qemu-attestation (QEMU's NSM signs nothing; see docs/qemu.md)."
echo "Ctrl-C stops it."
wait -n "${pids[@]}" || true
echo "a process of the stack exited; see the logs in $dir" >&2
exit 1
