# Sourced by setup-qemu.sh, build-kernel.sh and build-eif-local.sh: the pinned versions of
# everything the real image and its QEMU runs are built from. Changing the kernel's version
# changes PCR0 and PCR1 of every image built afterwards (an image change).
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source it

# Where builds are cached, outside the work tree, keyed by version and options.
EA_CACHE_DIR=${EA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enclave-approvals}

# QEMU: Debian's bookworm-backports source. Only the upstream (orig) tarball is used; its
# SHA-256 is pinned here, since the .dsc that would carry it is not always served.
QEMU_DEBIAN_VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
QEMU_UPSTREAM_VERSION=10.0.2
QEMU_ORIG_SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
# QEMU 10 needs meson >= 1.5 (bookworm has 1.0) and pycotap for its build.
MESON_VERSION=1.5.2
PYCOTAP_VERSION=1.3.1

# The enclave kernel: Debian's linux-source package from bookworm-backports.
KERNEL_SERIES=6.12
KERNEL_DEBIAN_VERSION=6.12.95-1~bpo12+1

VHOST_DEVICE_VSOCK_VERSION=0.3.0
