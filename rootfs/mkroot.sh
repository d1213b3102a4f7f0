#!/bin/sh
# Assemble the guest root directory (booted as a hostfs root) from Debian's
# busybox-static, the project's /init, its static workload programs and
# upstream's KSM selftests (every executable of each BINDIR goes to /bin).
#
# usage: rootfs/mkroot.sh DEST BINDIR [BINDIR...]
set -eu
dest=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkroot: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' || {
	echo "mkroot: $busybox is not static (install busybox-static)" >&2; exit 1; }

tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/tmp" \
	"$tmp/mnt/run" "$tmp/etc" "$tmp/root"
cp "$busybox" "$tmp/bin/busybox"
for app in $("$busybox" --list); do
	[ "$app" = busybox ] || ln -s busybox "$tmp/bin/$app"
done
cp "$here/init" "$tmp/init"
chmod 755 "$tmp/init"
for bins in "$@"; do
	for b in "$bins"/*; do
		[ -x "$b" ] && cp "$b" "$tmp/bin/"
	done
done
echo "root:x:0:0:root:/root:/bin/sh" > "$tmp/etc/passwd"
echo "root:x:0:" > "$tmp/etc/group"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "rootfs: $dest"
