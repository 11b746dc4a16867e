#!/bin/sh
# Makes a busybox root filesystem tarball from Debian's static busybox (package busybox-static).
# Usage: busybox-rootfs.sh OUT.tar
# The result is reproducible (fixed mtimes, numeric root owner) so tests can compare image IDs.
# BUSYBOX=path takes another busybox binary (another architecture's, unpacked from its .deb);
# the applet links are those of this machine's busybox, which need not run that binary.
set -eu
out=${1:?usage: busybox-rootfs.sh OUT.tar}
bb=${BUSYBOX:-/bin/busybox}
[ -f "$bb" ] || { echo "$bb not found: install busybox-static" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "/bin/busybox not found: install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev" "$root/var" "$root/usr/bin" "$root/home"
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar --sort=name --mtime='2020-01-01 00:00:00' --owner=0 --group=0 --numeric-owner -C "$root" -cf "$out" .
