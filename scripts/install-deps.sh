#!/bin/sh
# Installs what isula-build and its test suite need on a Debian machine (run as root), then the
# Python package itself (editable, with the test extras). Safe to run again: it skips what is there.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
packages="runc busybox-static skopeo umoci docker.io docker-registry iproute2 xz-utils file git qemu-user-static binfmt-support"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi

# RUN for other architectures (build --platform): qemu-user through binfmt_misc, where the kernel
# lets us mount it (a container without the privilege keeps what its host registered).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
        echo "binfmt_misc cannot be mounted here: builds can RUN only for this machine" >&2
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable >/dev/null 2>&1 || true
fi

# The multi-platform tests' base images: Debian's busybox-static of arm64 and amd64.
debs=${ISB_DEB_CACHE:-/var/tmp/isb-debs}
mkdir -p "$debs"
for arch in arm64 amd64; do
    ls "$debs"/busybox-static_*_"$arch".deb >/dev/null 2>&1 && continue
    if ! dpkg --print-foreign-architectures | grep -qx "$arch" && [ "$(dpkg --print-architecture)" != "$arch" ]; then
        dpkg --add-architecture "$arch"
        apt-get update -qq
    fi
    (cd "$debs" && apt-get download -qq "busybox-static:$arch")
done

python3 -m pip install -q --disable-pip-version-check -e "$here[test]"
