#!/usr/bin/env bash
# Builds the enclave kernel (bzImage) from Debian's linux-source package with the committed
# configuration eif/kernel/enclave.config (applied on top of `make allnoconfig`), reproducibly:
# fixed build timestamp, user, host and version, so the same source and config give the same
# bytes on any machine with the same compiler. The result is cached outside the work tree,
# under $EA_CACHE_DIR/kernel/<debian version>-<key>/, the key hashing the config and the
# build options, so a second run rebuilds nothing unless one of them changed.
#
# Usage: scripts/build-kernel.sh [--print-path]
#   (no option)    build if needed; print the bzImage's path on stdout
#   --print-path   build nothing: print the path it would have and exit 1 if it is missing
#
# Needs Debian's linux-source-<series> package at the pinned version and the kernel's build
# tools (scripts/setup-qemu.sh installs both).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/qemu-versions.sh
. "$repo/scripts/qemu-versions.sh"

config="$repo/eif/kernel/enclave.config"
# The build's date is the source package's own (its changelog's last entry), so it follows the
# pinned version and nothing else.
changelog=/usr/share/doc/linux-source-$KERNEL_SERIES/changelog.Debian.gz
source_date=$(zcat "$changelog" 2>/dev/null | sed -n '0,/^ -- .*>  /s/^ -- .*>  //p' || true)
# Everything that goes into the kernel's bytes besides the source: the build's fixed identity.
build_vars=(ARCH=x86_64 "KBUILD_BUILD_TIMESTAMP=$source_date"
  KBUILD_BUILD_USER=enclave KBUILD_BUILD_HOST=enclave-approvals KBUILD_BUILD_VERSION=1)
key=$( (cat "$config"; printf '%s\n' "${build_vars[@]}") | sha256sum | cut -c1-12)
out="$EA_CACHE_DIR/kernel/$KERNEL_DEBIAN_VERSION-$key"
image="$out/bzImage"

case "${1:-}" in
  --print-path)
    echo "$image"
    [ -f "$image" ]
    exit $?
    ;;
  "") ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "build-kernel: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

if [ -f "$image" ]; then
  echo "$image"
  exit 0
fi

log() { echo "build-kernel: $*" >&2; }

tarball=/usr/src/linux-source-$KERNEL_SERIES.tar.xz
installed=$(dpkg-query -W -f='${Version}' "linux-source-$KERNEL_SERIES" 2>/dev/null || true)
if [ "$installed" != "$KERNEL_DEBIAN_VERSION" ] || [ ! -f "$tarball" ] || [ -z "$source_date" ]; then
  log "needs linux-source-$KERNEL_SERIES $KERNEL_DEBIAN_VERSION (installed: ${installed:-none});" \
    "run scripts/setup-qemu.sh"
  exit 1
fi

work="$EA_CACHE_DIR/kernel/build-$key"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS
log "unpacking linux-source-$KERNEL_SERIES $KERNEL_DEBIAN_VERSION"
tar -xJf "$tarball" -C "$work"
src="$work/linux-source-$KERNEL_SERIES"

make -C "$src" -s "${build_vars[@]}" allnoconfig KCONFIG_ALLCONFIG="$config" >&2
# Kconfig silently drops an option whose dependencies are not met; refuse that instead of
# booting a kernel without, say, its NSM driver.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=n)
      name=${line%%=*}
      if grep -q "^$name=" "$src/.config"; then
        log "$name is set although eif/kernel/enclave.config turns it off"
        missing=1
      fi
      ;;
    CONFIG_*=*)
      if ! grep -qx -- "$line" "$src/.config"; then
        log "$line did not survive Kconfig (got: $(grep "^${line%%=*}=" "$src/.config" || echo unset))"
        missing=1
      fi
      ;;
  esac
done <"$config"
[ "$missing" = 0 ] || exit 1

log "building bzImage (about 5 minutes on 2 cores)"
make -C "$src" -s -j"$(nproc)" "${build_vars[@]}" bzImage >&2
mkdir -p "$out"
cp "$src/arch/x86/boot/bzImage" "$image.tmp"
cp "$src/.config" "$out/config"
make -C "$src" -s "${build_vars[@]}" kernelrelease >"$out/release"
mv "$image.tmp" "$image"
rm -rf "$work"
log "built $image in $((SECONDS - started)) s"
echo "$image"
