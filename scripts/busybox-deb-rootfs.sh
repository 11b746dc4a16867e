#!/bin/sh
# Makes a busybox root filesystem tarball for another architecture from Debian's busybox-static
# package of that architecture (the test suite's multi-platform base images).
# Usage: busybox-deb-rootfs.sh ARCH OUT.tar      (ARCH as Debian spells it: arm64, amd64, …)
# The .deb is kept in $ISB_DEB_CACHE (default /var/tmp/isb-debs); install-deps.sh fetches it.
set -eu
arch=${1:?usage: busybox-deb-rootfs.sh ARCH OUT.tar}
out=${2:?usage: busybox-deb-rootfs.sh ARCH OUT.tar}
here=$(cd "$(dirname "$0")" && pwd)
cache=${ISB_DEB_CACHE:-/var/tmp/isb-debs}
mkdir -p "$cache"
deb=$(ls "$cache"/busybox-static_*_"$arch".deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
    dpkg --print-foreign-architectures | grep -qx "$arch" || [ "$(dpkg --print-architecture)" = "$arch" ] || {
        echo "dpkg does not know architecture $arch: run scripts/install-deps.sh" >&2; exit 1; }
    (cd "$cache" && apt-get download -q "busybox-static:$arch" >/dev/null 2>&1) || {
        echo "cannot download busybox-static:$arch: run scripts/install-deps.sh" >&2; exit 1; }
    deb=$(ls "$cache"/busybox-static_*_"$arch".deb | head -n 1)
fi
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb -x "$deb" "$unpacked"
BUSYBOX="$unpacked/bin/busybox" "$here/busybox-rootfs.sh" "$out"
