#!/usr/bin/env bash
# Deploys Enclave Approvals on a Nitro Enclaves-enabled EC2 instance (Amazon Linux 2023 or
# Amazon Linux 2): installs the Nitro Enclaves CLI, sets the enclave allocator's memory and
# CPUs, installs the binaries, the EIF and systemd units for the enclave and parent-proxy,
# starts them, checks health through the proxy and compares the running enclave's PCRs with
# pcrs.json. Run it as root on the instance, from a checkout where scripts/build-eif-local.sh and
# `cargo build --release -p parent-proxy -p govctl` have been run (or point the flags at the
# artifacts). docs/deployment.md walks through it.
#
# Usage: scripts/deploy-ec2.sh --tls-cert FILE --tls-key FILE --region REGION [options]
#   --tls-cert FILE      PEM certificate chain the proxy serves (required)
#   --tls-key FILE       its PEM private key (required)
#   --region REGION      the region of the KMS key the image was built for (required): the
#                        proxy relays the enclave's TLS to kms.<region>.amazonaws.com:443 and
#                        hands it the instance role's credentials (IMDSv2)
#   --memory MIB         memory for the enclave, given to the allocator too (default 2048)
#   --cpus N             vCPUs for the enclave, given to the allocator too (default 2)
#   --cid N              the enclave's vsock CID (default 16)
#   --listen ADDR        the proxy's HTTPS address (default 0.0.0.0:8443)
#   --eif FILE           the image (default eif/out/enclave.eif)
#   --pcrs FILE          its measurements (default: pcrs.json beside the EIF)
#   --bin-dir DIR        where parent-proxy and govctl are (default: the release target dir)
#   --ca-cert FILE       CA for the health check's TLS (default: the --tls-cert file, right
#                        for a self-signed certificate)
#   --health-endpoint URL  (default https://localhost:<port of --listen>)
#   --debug-mode         start the enclave in debug mode: console readable by the parent,
#                        PCRs all zero, attests nothing. Only for diagnosing a failed start.
#   --skip-install       do not install packages (the Nitro Enclaves CLI is already there)
#   --dry-run            change nothing on the system: print the commands, write the files
#                        under --root (default: a new temporary directory)
#   --root DIR           prefix for every file written (default /)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

memory=2048
cpus=2
cid=16
listen=0.0.0.0:8443
eif=$repo/eif/out/enclave.eif
pcrs=""
bin_dir=${CARGO_TARGET_DIR:-$repo/target}/release
tls_cert=""
tls_key=""
ca_cert=""
health_endpoint=""
debug_mode=0
skip_install=0
dry_run=0
root=""
region=""

usage() {
  # The comment block at the top of this file, without its markers.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die() {
  echo "deploy-ec2: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --tls-cert) tls_cert=${2:?}; shift ;;
    --region) region=${2:?}; shift ;;
    --tls-key) tls_key=${2:?}; shift ;;
    --memory) memory=${2:?}; shift ;;
    --cpus) cpus=${2:?}; shift ;;
    --cid) cid=${2:?}; shift ;;
    --listen) listen=${2:?}; shift ;;
    --eif) eif=${2:?}; shift ;;
    --pcrs) pcrs=${2:?}; shift ;;
    --bin-dir) bin_dir=${2:?}; shift ;;
    --ca-cert) ca_cert=${2:?}; shift ;;
    --health-endpoint) health_endpoint=${2:?}; shift ;;
    --debug-mode) debug_mode=1 ;;
    --skip-install) skip_install=1 ;;
    --dry-run) dry_run=1 ;;
    --root) root=${2:?}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

# --- Checks, before anything is changed. ---
is_number() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_number "$memory" && [ "$memory" -ge 64 ] || die "--memory must be a number of MiB (>= 64)"
is_number "$cpus" && [ "$cpus" -ge 1 ] || die "--cpus must be a positive number"
# CIDs 0-3 are reserved (hypervisor, local, host); the top of the range is VMADDR_CID_ANY.
is_number "$cid" && [ "$cid" -ge 4 ] && [ "$cid" -lt 4294967295 ] || die "--cid must be 4 to 4294967294"
port=${listen##*:}
is_number "$port" || die "--listen must end in :<port>"
[ -n "$tls_cert" ] && [ -n "$tls_key" ] || die "--tls-cert and --tls-key are required"
[ -n "$region" ] || die "--region is required (the region of the image's KMS key)"
pcrs=${pcrs:-$(dirname "$eif")/pcrs.json}
for file in "$eif" "$pcrs" "$tls_cert" "$tls_key" "$bin_dir/parent-proxy" "$bin_dir/govctl"; do
  [ -r "$file" ] || die "cannot read $file"
done
ca_cert=${ca_cert:-$tls_cert}
health_endpoint=${health_endpoint:-https://localhost:$port}
# The enclave's memory holds the image and its unpacked ramdisks; with less than a few times
# the EIF's size the enclave fails to boot (nitro-cli's own rule of thumb is four times).
eif_mib=$(( ($(wc -c <"$eif") + 1048575) / 1048576 ))
if [ "$memory" -lt $(( eif_mib * 4 )) ]; then
  echo "deploy-ec2: warning: --memory $memory MiB is less than 4 x the $eif_mib MiB EIF;" \
    "the enclave may fail to start" >&2
fi
# The image must be the one pcrs.json describes, or the check after start is meaningless.
"$bin_dir/govctl" eif compare --expected "$pcrs" --actual "$eif" >/dev/null ||
  die "$pcrs does not describe $eif (rebuild with scripts/build-eif-local.sh)"

if [ "$dry_run" = 1 ]; then
  root=${root:-$(mktemp -d)}
  echo "deploy-ec2: dry run: files go under $root, commands are only printed" >&2
elif [ "$(id -u)" != 0 ]; then
  die "run as root (or try --dry-run)"
fi

# Runs a command that changes the system, or prints it in a dry run.
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Writes stdin to $root$1 with mode $2.
put() {
  local path=$root$1
  mkdir -p "$(dirname "$path")"
  cat >"$path"
  chmod "$2" "$path"
}

install_dir=/opt/enclave-approvals
config_dir=/etc/enclave-approvals
state_dir=/var/lib/enclave-approvals
service_user=enclave-approvals
enclave_name=enclave-approvals

# --- 1. The Nitro Enclaves CLI and the allocator. ---
if [ "$skip_install" = 0 ]; then
  # shellcheck source=/dev/null
  os_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}:${VERSION_ID:-}")
  case "$os_id" in
    amzn:2023*) run dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel ;;
    amzn:2) run amazon-linux-extras install -y aws-nitro-enclaves-cli
            run yum install -y aws-nitro-enclaves-cli-devel ;;
    *) die "unsupported OS '$os_id': install the Nitro Enclaves CLI by hand, then use --skip-install" ;;
  esac
fi
nitro_cli=$(command -v nitro-cli || echo /usr/bin/nitro-cli)

# A running enclave holds the allocator's memory and CPUs: stop a previous deployment first.
if [ -e "$root/etc/systemd/system/enclave-approvals-enclave.service" ]; then
  run systemctl stop enclave-approvals-proxy.service enclave-approvals-enclave.service
fi

put /etc/nitro_enclaves/allocator.yaml 0644 <<EOF
---
# Written by scripts/deploy-ec2.sh: resources set aside for enclaves at boot.
memory_mib: $memory
cpu_count: $cpus
EOF
run systemctl enable nitro-enclaves-allocator.service
run systemctl restart nitro-enclaves-allocator.service

# --- 2. Files. ---
if ! getent passwd "$service_user" >/dev/null 2>&1; then
  run useradd --system --no-create-home --shell /sbin/nologin "$service_user"
fi
put "$install_dir/enclave.eif" 0644 <"$eif"
put "$install_dir/pcrs.json" 0644 <"$pcrs"
put "$install_dir/bin/parent-proxy" 0755 <"$bin_dir/parent-proxy"
put "$install_dir/bin/govctl" 0755 <"$bin_dir/govctl"
put "$install_dir/bin/describe.sh" 0755 <"$repo/scripts/describe.sh"
put "$config_dir/tls.crt" 0644 <"$tls_cert"
put "$config_dir/tls.key" 0640 <"$tls_key"
run chgrp "$service_user" "$root$config_dir/tls.key"
mkdir -p "$root/usr/local/bin"
run ln -sf "$install_dir/bin/govctl" "$root/usr/local/bin/govctl"

debug_flag=""
if [ "$debug_mode" = 1 ]; then
  echo "deploy-ec2: WARNING: debug mode: the enclave's PCRs will be zero and its attestation" \
    "documents worthless; never use this for a real deployment" >&2
  debug_flag=" --debug-mode"
fi

# --- 3. systemd units. ---
put /etc/systemd/system/enclave-approvals-enclave.service 0644 <<EOF
# Written by scripts/deploy-ec2.sh. The Nitro Enclave running enclave-app.
[Unit]
Description=Enclave Approvals: the Nitro Enclave (enclave-app)
Requires=nitro-enclaves-allocator.service
After=nitro-enclaves-allocator.service

[Service]
# nitro-cli run-enclave returns once the enclave is up; the enclave keeps running on its own.
Type=oneshot
RemainAfterExit=yes
ExecStartPre=-$nitro_cli terminate-enclave --enclave-name $enclave_name
ExecStart=$nitro_cli run-enclave --enclave-name $enclave_name --eif-path $install_dir/enclave.eif --enclave-cid $cid --cpu-count $cpus --memory $memory$debug_flag
ExecStop=$nitro_cli terminate-enclave --enclave-name $enclave_name

[Install]
WantedBy=multi-user.target
EOF

put /etc/systemd/system/enclave-approvals-proxy.service 0644 <<EOF
# Written by scripts/deploy-ec2.sh. parent-proxy: the HTTPS API, relaying into the enclave.
[Unit]
Description=Enclave Approvals: parent-proxy (HTTPS API, relay into the enclave)
Requires=enclave-approvals-enclave.service
After=enclave-approvals-enclave.service network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$service_user
Group=$service_user
# The HTTPS API and the enclave it relays to (vsock:<enclave CID>:5000).
Environment=PROXY_LISTEN=$listen
Environment=PROXY_ENCLAVE=vsock:$cid:5000
# The log store: the enclave connects here (any CID, port 5001) to persist its records, which
# the proxy keeps in this SQLite file.
Environment=PROXY_STORE_LISTEN=vsock:4294967295:5001
Environment=PROXY_STORE_PATH=$state_dir/log.sqlite
# The enclave's path to KMS: its TLS connection (vsock port 8000) relayed to the regional
# endpoint, and the instance role's credentials (IMDSv2) handed to it on request.
Environment=PROXY_KMS_ARGS=--kms-relay-listen vsock:4294967295:8000 --kms-relay-endpoint kms.$region.amazonaws.com:443 --aws-credentials imds
# Further log-store options, none yet.
Environment=PROXY_STORE_ARGS=
Environment=RUST_LOG=info
ExecStart=$install_dir/bin/parent-proxy --tls-cert $config_dir/tls.crt --tls-key $config_dir/tls.key \$PROXY_KMS_ARGS \$PROXY_STORE_ARGS
Restart=on-failure
RestartSec=2
StateDirectory=enclave-approvals
WorkingDirectory=$state_dir
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
EOF

# --- 4. Start. ---
run systemctl daemon-reload
run systemctl enable enclave-approvals-enclave.service enclave-approvals-proxy.service
run systemctl restart enclave-approvals-enclave.service
run systemctl restart enclave-approvals-proxy.service

# --- 5. Health through the proxy, then the PCRs. ---
if [ "$dry_run" = 1 ]; then
  run "$install_dir/bin/govctl" health --endpoint "$health_endpoint" --ca-cert "$config_dir/tls.crt"
  run "$install_dir/bin/describe.sh" --pcrs "$install_dir/pcrs.json" --enclave-name "$enclave_name"
  echo "deploy-ec2: dry run complete; files are under $root" >&2
  exit 0
fi
echo "deploy-ec2: waiting for $health_endpoint to answer" >&2
health=("$install_dir/bin/govctl" health --endpoint "$health_endpoint" --ca-cert "$ca_cert" --timeout 5)
healthy=0
for _ in $(seq 1 60); do
  if "${health[@]}" >/dev/null 2>&1; then
    healthy=1
    break
  fi
  sleep 2
done
# Once more with its output: the health report, or the last error.
if [ "$healthy" = 0 ] || ! "${health[@]}"; then
  echo "deploy-ec2: the service did not become healthy; see" \
    "'journalctl -u enclave-approvals-proxy -u enclave-approvals-enclave' and" \
    "'nitro-cli describe-enclaves'" >&2
  exit 1
fi
GOVCTL=$install_dir/bin/govctl "$install_dir/bin/describe.sh" \
  --pcrs "$install_dir/pcrs.json" --enclave-name "$enclave_name"
