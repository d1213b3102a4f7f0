#!/bin/sh
# Generate OUT/.config for ARCH=um: x86_64_defconfig, then the given config
# fragments merged in order, then olddefconfig.  Every option a fragment
# sets must survive olddefconfig (a renamed or unmet option would silently
# change what we build), otherwise this fails and names the option.
#
# usage: linux/kconfig.sh SRC OUT FRAGMENT...
set -eu
src=$1 out=$2
shift 2

mkdir -p "$out"
make -s -C "$src" ARCH=um O="$out" x86_64_defconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$@" >"$out/merge_config.log" 2>&1 || {
	cat "$out/merge_config.log" >&2; exit 1; }
make -s -C "$src" ARCH=um O="$out" olddefconfig >/dev/null

# The wanted value of each option is what the last fragment naming it says.
wanted=$(awk '
	/^# CONFIG_[A-Za-z0-9_]+ is not set/ { v[$2] = "n"; f[$2] = FILENAME; if (!($2 in o)) { o[$2] = 1; k[n++] = $2 } next }
	/^CONFIG_/ { split($0, a, "="); v[a[1]] = substr($0, length(a[1]) + 2); f[a[1]] = FILENAME; if (!(a[1] in o)) { o[a[1]] = 1; k[n++] = a[1] } }
	END { for (i = 0; i < n; i++) print k[i], v[k[i]], f[k[i]] }' "$@")

bad=0
while read -r opt val frag; do
	got=$(grep "^$opt=" "$out/.config" | sed "s/^$opt=//" || true)
	[ -n "$got" ] || got=n
	if [ "$got" != "$val" ]; then
		echo "kconfig: $(basename "$frag") wants $opt=$val, olddefconfig gave $got" >&2
		bad=1
	fi
done <<EOW
$wanted
EOW
exit $bad
