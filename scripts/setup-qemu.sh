#!/usr/bin/env bash
# Installs and builds, idempotently, everything the real enclave image needs to boot on this
# machine under QEMU's `nitro-enclave` machine:
#   - QEMU 10.0.x with that machine, built from Debian's source tarball (Debian's own QEMU
#     packages are built without libcbor, so they lack it), plus the microvm firmware from
#     Debian's qemu-system-data;
#   - the enclave kernel (scripts/build-kernel.sh, from eif/kernel/);
#   - vhost-device-vsock (rust-vmm), which maps the guest's vsock to unix sockets on the host.
# What it builds is cached outside the work tree, under $EA_CACHE_DIR (default
# ~/.cache/enclave-approvals), in directories named by version and options, so a second run
# rebuilds nothing unless a version, an option or the kernel config changed.
#
# Usage: scripts/setup-qemu.sh [--print-env]
#   (no option)   install and build what is missing, then print the paths as below
#   --print-env   build nothing: print EA_QEMU_BIN=..., EA_QEMU_FIRMWARE_DIR=...,
#                 EA_ENCLAVE_KERNEL=..., EA_VHOST_DEVICE_VSOCK=... for what is present, and
#                 exit 1 (naming what is missing) if anything is
#
# Installing Debian packages needs root (apt-get); everything else runs as any user.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/qemu-versions.sh
. "$repo/scripts/qemu-versions.sh"

print_only=0
case "${1:-}" in
  --print-env) print_only=1 ;;
  "") ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "setup-qemu: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

log() { echo "setup-qemu: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------

backports_list=/etc/apt/sources.list.d/enclave-approvals-bookworm-backports.sources

ensure_backports_source() {
  if [ -f "$backports_list" ]; then
    return 0
  fi
  log "adding bookworm-backports (binary and source) to apt's sources"
  cat >"$backports_list" <<'EOF'
# Added by enclave-approvals' scripts/setup-qemu.sh: QEMU 10's source and firmware, the
# enclave kernel's source.
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt_updated=0
}

apt_updated=0
apt_install() {
  local missing=()
  local package
  for package in "$@"; do
    # A versioned name (pkg=version) is missing unless exactly that version is installed.
    local name=${package%%=*} want=""
    [ "$name" != "$package" ] && want=${package#*=}
    local have
    have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
    case "$have" in
      "install ok installed "*)
        if [ -n "$want" ] && [ "${have##* }" != "$want" ]; then missing+=("$package"); fi ;;
      *) missing+=("$package") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "these Debian packages are missing and installing them needs root: ${missing[*]}"
    log "run: sudo apt-get install -t bookworm-backports ${missing[*]}"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -t bookworm-backports "${missing[@]}" >&2
}

install_packages() {
  ensure_backports_source
  apt_install build-essential pkg-config ninja-build flex bison bc cpio xz-utils bzip2 \
    libcbor-dev libgnutls28-dev libfdt-dev libglib2.0-dev libpixman-1-dev libelf-dev libssl-dev \
    python3-venv dpkg-dev \
    "qemu-system-data=$QEMU_DEBIAN_VERSION" "linux-source-$KERNEL_SERIES=$KERNEL_DEBIAN_VERSION"
}

# --- QEMU ------------------------------------------------------------------------------------

# Only the nitro-enclave machine and what it selects (microvm, virtio-mmio, vhost-user-vsock,
# the virtio NSM): without the other boards and devices the build is about half as long.
qemu_options=(--target-list=x86_64-softmmu --enable-kvm --enable-libcbor --enable-gnutls
  --disable-docs --disable-download --disable-install-blobs --disable-tools --disable-werror
  --without-default-devices --with-devices-x86_64=nitro-enclave)
qemu_key=$(printf '%s\n' "$QEMU_ORIG_SHA256" "${qemu_options[@]}" | sha256sum | cut -c1-12)
qemu_prefix="$EA_CACHE_DIR/qemu/$QEMU_UPSTREAM_VERSION-$qemu_key"
qemu_bin="$qemu_prefix/bin/qemu-system-x86_64"
# microvm firmware (qboot, bios-microvm) comes from Debian's qemu-system-data.
qemu_firmware_dir=/usr/share/qemu

build_qemu() {
  if [ -x "$qemu_bin" ]; then
    return 0
  fi
  local work="$EA_CACHE_DIR/qemu/build-$qemu_key"
  rm -rf "$work"
  mkdir -p "$work"
  local tarball="$EA_CACHE_DIR/qemu/qemu_$QEMU_UPSTREAM_VERSION+ds.orig.tar.xz"
  if ! echo "$QEMU_ORIG_SHA256  $tarball" | sha256sum --check --status 2>/dev/null; then
    log "fetching QEMU's source tarball ($QEMU_DEBIAN_VERSION) from Debian"
    # The orig tarball is all we need; the .dsc is not always served, so apt-get's exit status
    # is ignored and the tarball's own hash decides.
    (cd "$EA_CACHE_DIR/qemu" && apt-get source --download-only -t bookworm-backports \
      "qemu=$QEMU_DEBIAN_VERSION" >&2 2>&1 || true)
    if ! echo "$QEMU_ORIG_SHA256  $tarball" | sha256sum --check --status; then
      log "QEMU's source tarball is missing or does not have the pinned SHA-256 ($tarball)"
      exit 1
    fi
  fi
  # meson >= 1.5 and pycotap, which QEMU 10 needs and bookworm's meson is too old for.
  local venv="$EA_CACHE_DIR/qemu/python-venv"
  if [ ! -x "$venv/bin/meson" ]; then
    log "python venv with meson and pycotap"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "meson==$MESON_VERSION" "pycotap==$PYCOTAP_VERSION" >&2
  fi
  log "building QEMU $QEMU_UPSTREAM_VERSION into $qemu_prefix (about 4 minutes on 2 cores)"
  local started=$SECONDS
  tar -xJf "$tarball" -C "$work"
  local src="$work/qemu-$QEMU_UPSTREAM_VERSION"
  # Debian's tarball carries no firmware blobs, but QEMU's meson files still name the
  # compressed edk2 images; empty placeholders satisfy it (nothing here uses them).
  local image
  for image in $(grep -o "'edk2-[a-z0-9_-]*\.fd'" "$src/pc-bios/meson.build" | tr -d "'"); do
    [ -e "$src/pc-bios/$image.bz2" ] || : >"$src/pc-bios/$image.bz2"
  done
  printf 'CONFIG_NITRO_ENCLAVE=y\n' >"$src/configs/devices/x86_64-softmmu/nitro-enclave.mak"
  mkdir -p "$work/build"
  (
    cd "$work/build"
    PATH="$venv/bin:$PATH" "$src/configure" --prefix="$qemu_prefix" --python="$venv/bin/python3" \
      "${qemu_options[@]}" >&2
    # Only the emulator: QEMU's default target would also build its test suites.
    PATH="$venv/bin:$PATH" ninja -j"$(nproc)" qemu-system-x86_64 >&2
  )
  mkdir -p "$qemu_prefix/bin"
  install -m 0755 "$work/build/qemu-system-x86_64" "$qemu_bin"
  if ! "$qemu_bin" -machine help | grep -q '^nitro-enclave'; then
    log "the QEMU just built does not list the nitro-enclave machine"
    exit 1
  fi
  rm -rf "$work"
  log "QEMU built in $((SECONDS - started)) s"
}

# --- vhost-device-vsock ----------------------------------------------------------------------

vhost_root="$EA_CACHE_DIR/vhost-device-vsock/$VHOST_DEVICE_VSOCK_VERSION"
vhost_bin="$vhost_root/bin/vhost-device-vsock"

install_vhost_device_vsock() {
  if [ -x "$vhost_bin" ]; then
    return 0
  fi
  log "cargo install vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION"
  local started=$SECONDS
  cargo install --locked --quiet --root "$vhost_root" vhost-device-vsock \
    --version "=$VHOST_DEVICE_VSOCK_VERSION" >&2
  log "vhost-device-vsock built in $((SECONDS - started)) s"
}

# --- output ----------------------------------------------------------------------------------

print_env() {
  local kernel missing=()
  kernel=$("$repo/scripts/build-kernel.sh" --print-path) || true
  [ -x "$qemu_bin" ] || missing+=("QEMU ($qemu_bin)")
  [ -e "$qemu_firmware_dir/qboot.rom" ] || missing+=("microvm firmware ($qemu_firmware_dir/qboot.rom)")
  [ -n "$kernel" ] && [ -f "$kernel" ] || missing+=("enclave kernel (scripts/build-kernel.sh)")
  [ -x "$vhost_bin" ] || missing+=("vhost-device-vsock ($vhost_bin)")
  echo "EA_QEMU_BIN=$qemu_bin"
  echo "EA_QEMU_FIRMWARE_DIR=$qemu_firmware_dir"
  echo "EA_ENCLAVE_KERNEL=$kernel"
  echo "EA_VHOST_DEVICE_VSOCK=$vhost_bin"
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing: ${missing[*]}; run scripts/setup-qemu.sh"
    return 1
  fi
}

if [ "$print_only" = 1 ]; then
  print_env
  exit $?
fi

mkdir -p "$EA_CACHE_DIR/qemu"
install_packages
build_qemu
"$repo/scripts/build-kernel.sh" >/dev/null
install_vhost_device_vsock
print_env
