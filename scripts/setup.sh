#!/bin/sh
# The main job on a fresh Debian machine (as root): install what is missing, start isula-builder on
# the default socket and data root, import a busybox base made from Debian's static busybox, build
# the example image (example/Dockerfile), and list the images.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"

getent group isula >/dev/null || groupadd --system isula
mkdir -p /etc/isula-build

if [ -d /run/systemd/system ]; then
    # systemd runs here: install the unit and let it own the daemon.
    install -m 0644 "$here/contrib/systemd/isula-build.service" /etc/systemd/system/isula-build.service
    ln -sf "$(command -v isula-builder)" /usr/bin/isula-builder 2>/dev/null || true
    systemctl daemon-reload
    systemctl restart isula-build
else
    if ! isula-build info >/dev/null 2>&1; then
        nohup isula-builder >/var/log/isula-builder.log 2>&1 &
    fi
fi
i=0
until isula-build info >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "isula-builder did not start; see /var/log/isula-builder.log" >&2; exit 1; }
    sleep 0.2
done

# Bash completion for both programs.
if [ -d /etc/bash_completion.d ]; then
    install -m 0644 "$here/contrib/completion/isula-build" /etc/bash_completion.d/isula-build
    install -m 0644 "$here/contrib/completion/isula-builder" /etc/bash_completion.d/isula-builder
fi

rootfs=$(mktemp --suffix=.tar)
trap 'rm -f "$rootfs"' EXIT
"$here/scripts/busybox-rootfs.sh" "$rootfs"
isula-build ctr-img import "$rootfs" busybox:latest

isula-build ctr-img build -f "$here/example/Dockerfile" -t example:latest "$here/example"
isula-build ctr-img images
