#!/bin/sh
# Installs what isula-build and its test suite need on a Debian machine (run as root), then the
# Python package itself (editable, with the test extras). Safe to run again: it skips what is there.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
packages="runc busybox-static skopeo umoci docker.io docker-registry iproute2 xz-utils file git"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e "$here[test]"
