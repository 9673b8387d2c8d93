#!/usr/bin/env bash
# Runs the whole service on one machine, without Nitro hardware:
#   local-kms (a stand-in for AWS KMS that enforces the attestation conditions),
#   parent-proxy on 127.0.0.1 (plain HTTP, loopback only; log store, KMS relay, credentials),
#   enclave-app with the mock NSM on a unix socket, its log key sealed through the local KMS,
#   and two witnesses (`witness`, C2SP tlog-witness) to which the proxy submits checkpoints.
# On first start it also makes an `admin` identity, a genesis document naming it Owner at `/`
# of a community /communities/c1, submits the genesis, and pins the new log in a trust file.
# Prints the endpoint and the govctl environment once the service answers; Ctrl-C stops
# everything it started. A second run with the same directory continues the same log.
#
# Environment:
#   EA_PORT       proxy port on 127.0.0.1 (default 8443)
#   EA_LOCAL_DIR  directory for sockets, logs, keys and state (default .local-stack in the repository)
#   EA_PROFILE    cargo profile to build and run: debug (default) or release
#   EA_WITNESSES  how many witnesses to run (default 2; 0 runs none)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${EA_PORT:-8443}
dir=${EA_LOCAL_DIR:-$repo/.local-stack}
profile=${EA_PROFILE:-debug}
target=${CARGO_TARGET_DIR:-$repo/target}
key_id=5f0c6a8e-2d1b-4c3a-9e7f-0a1b2c3d4e5f
witnesses=${EA_WITNESSES:-2}
case "$witnesses" in
  '' | *[!0-9]*) echo "EA_WITNESSES must be a number, not $witnesses" >&2; exit 2 ;;
esac

case "$profile" in
  debug) build_flags=() ;;
  release) build_flags=(--release) ;;
  *) echo "EA_PROFILE must be debug or release, not $profile" >&2; exit 2 ;;
esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
echo "building ($profile)..." >&2
cargo build --quiet "${build_flags[@]}" --manifest-path "$repo/Cargo.toml" \
  -p enclave-app -p parent-proxy -p govctl -p local-kms -p witness
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
      echo "a process of the stack exited; see the logs in $dir" >&2
      exit 1
    fi
  done
}

# --- One-time set-up: the image's PCRs, the mock CA, the key policy, credentials. --------
# The mock enclave reports these PCRs (fixed, so that rebuilds keep the log and the key).
if [ ! -f "$dir/pcrs.json" ]; then
  cat >"$dir/pcrs.json" <<EOF
{"HashAlgorithm": "Sha384 { ... }",
 "PCR0": "$(printf '%096d' 0 | tr 0 a)",
 "PCR1": "$(printf '%096d' 0 | tr 0 b)",
 "PCR2": "$(printf '%096d' 0 | tr 0 c)"}
EOF
fi
"$bin/enclave-app" --nsm mock --mock-ca-dir "$dir/mock-ca" --mock-ca-init >/dev/null
if [ ! -f "$dir/kms-policy.json" ]; then
  "$govctl" kms-policy --pcrs "$dir/pcrs.json" \
    --key-admin arn:aws:iam::111122223333:role/KeyAdmin \
    --enclave-role arn:aws:iam::111122223333:role/EnclaveInstance \
    --out "$dir/kms-policy.json" >/dev/null
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

# --- The local KMS. ---------------------------------------------------------------------
rm -f "$dir/kms.out"
"$bin/local-kms" --state "$dir/kms-state.json" --credentials "$dir/kms-credentials.json" \
  --attestation-root "$dir/mock-ca/mock-root.pem" --ca-out "$dir/kms-ca.pem" \
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

# --- The witnesses' ports, chosen now: the proxy submits to them from its start (and retries
# until they answer); they start once the log key is known, after the genesis. -----------
witness_ports=()
witness_flags=()
candidate=$((port + 1))
while [ "${#witness_ports[@]}" -lt "$witnesses" ]; do
  # Free if nothing accepts a connection there.
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    witness_ports+=("$candidate")
    witness_flags+=(--witness "http://127.0.0.1:$candidate")
  fi
  candidate=$((candidate + 1))
done

# --- The parent: API, log store, KMS relay, credentials, witness submitter. -------------
rm -f "$dir/proxy.out"
"$bin/parent-proxy" --listen "127.0.0.1:$port" --enclave "unix:$dir/enclave.sock" --insecure-http \
  --store-listen "unix:$dir/store.sock" --store-path "$dir/log.sqlite" \
  --kms-relay-listen "unix:$dir/kms-relay.sock" --kms-relay-endpoint "$kms" \
  --kms-relay-allow "$kms" --aws-credentials "static:$dir/aws-credentials" \
  "${witness_flags[@]}" \
  >"$dir/proxy.out" 2>>"$dir/proxy.log" &
pids+=("$!")

# --- The enclave, with the mock NSM; its log key sealed through the local KMS. -----------
"$bin/enclave-app" --listen "unix:$dir/enclave.sock" --nsm mock --mock-ca-dir "$dir/mock-ca" \
  --mock-measurements "$dir/pcrs.json" --store "unix:$dir/store.sock" \
  --log-key kms --kms-key-id "$key_id" --kms-region eu-west-1 \
  --kms-address "unix:$dir/kms-relay.sock" --kms-host localhost --kms-ca "$dir/kms-ca.pem" \
  2>>"$dir/enclave.log" &
pids+=("$!")

url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$dir/proxy.out" 2>/dev/null || true)
  [ -n "$url" ] && break
  alive
  sleep 0.1
done
[ -n "$url" ] || { echo "the proxy did not start; see $dir/proxy.log" >&2; exit 1; }

# Wait for the enclave to leave its start-up phase.
phase=""
for _ in $(seq 1 600); do
  phase=$("$govctl" describe --endpoint "$url" 2>/dev/null | sed -n 's/.*"phase": "\([a-z_]*\)".*/\1/p' || true)
  case "$phase" in
    awaiting_genesis|serving|failed) break ;;
  esac
  alive
  sleep 0.1
done

if [ "$phase" = awaiting_genesis ]; then
  if [ ! -f "$dir/admin.identity.json" ]; then
    "$govctl" keygen --principal admin --key-id local --out "$dir/admin.identity.json" \
      --public-out "$dir/admin.public.json" >/dev/null
  fi
  "$govctl" genesis init --name local --community /communities/c1 --address-space 10.0.0.0/8 \
    --admin "$dir/admin.public.json" --out "$dir/genesis.json"
  rm -f "$dir/trust.json"
  "$govctl" genesis submit "$dir/genesis.json" --endpoint "$url" --trust-out "$dir/trust.json" \
    --root "$dir/mock-ca/mock-root.pem" --pcrs "$dir/pcrs.json" >"$dir/genesis-answer.json"
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

# --- The witnesses: each with its own key and state in $dir, following this log's key. ---
# The log key comes from the enclave's description (relayed by the proxy: fine for a local
# stack; a real witness operator takes it from a verified log or the trust file). It is
# sealed through the local KMS, so it is the same at every start of this image.
witness_vkeys=()
if [ "$witnesses" -gt 0 ]; then
  log_key=$("$govctl" describe --endpoint "$url" 2>/dev/null |
    sed -n 's/.*"log_key": "\([^"]*\)".*/\1/p')
  [ -n "$log_key" ] || { echo "the enclave names no log key; see $dir/enclave.log" >&2; exit 1; }
  origin=${log_key%%+*}
  for i in $(seq 1 "$witnesses"); do
    if [ ! -f "$dir/witness-$i.key" ]; then
      "$bin/witness" keygen --name "localhost/witness-$i" --out "$dir/witness-$i.key" \
        >"$dir/witness-$i.vkey"
    fi
    witness_vkeys+=("$(cat "$dir/witness-$i.vkey")")
    rm -f "$dir/witness-$i.out"
    "$bin/witness" --listen "127.0.0.1:${witness_ports[$((i - 1))]}" --db "$dir/witness-$i.db" \
      --key-file "$dir/witness-$i.key" --name "localhost/witness-$i" --log "$origin=$log_key" \
      >"$dir/witness-$i.out" 2>>"$dir/witness-$i.log" &
    pids+=("$!")
    started=""
    for _ in $(seq 1 100); do
      grep -q '^listening on ' "$dir/witness-$i.out" 2>/dev/null && { started=yes; break; }
      alive
      sleep 0.1
    done
    [ -n "$started" ] || { echo "witness $i did not start; see $dir/witness-$i.log" >&2; exit 1; }
  done
fi

echo "Enclave Approvals local stack is up (mock NSM, local KMS, logs in $dir)"
echo "endpoint: $url"
echo "to use it from another terminal:"
echo "  export GOVCTL_ENDPOINT=$url GOVCTL_IDENTITY=$dir/admin.identity.json GOVCTL_TRUST=$dir/trust.json"
echo "  $govctl read list"
echo "mock root: $dir/mock-ca/mock-root.pem   PCRs: $dir/pcrs.json"
if [ "${#witness_vkeys[@]}" -gt 0 ]; then
  witness_args=""
  for i in "${!witness_vkeys[@]}"; do
    echo "witness $((i + 1)): ${witness_vkeys[$i]} (http://127.0.0.1:${witness_ports[$i]})"
    witness_args="$witness_args --witness ${witness_vkeys[$i]}"
  done
  echo "to verify the log with its witnesses' cosignatures:"
  echo "  $govctl audit fetch --endpoint $url --out $dir/audit && $govctl audit verify $dir/audit --root $dir/mock-ca/mock-root.pem --pcrs $dir/pcrs.json$witness_args"
fi
echo "Ctrl-C stops it."
wait -n "${pids[@]}" || true
echo "a process of the stack exited; see the logs in $dir" >&2
exit 1
