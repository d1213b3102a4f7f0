#!/bin/sh
# Unpack Debian's linux-source tarball (linux/source.conf) into a git-ignored
# tree, apply
# the project's patch series (linux/patches, then pksm/patches) and link the
# files PKSM owns outright (everything else under pksm/) into the tree.
#
# A stamp records the tarball version and the hash of every patch; when it
# no longer matches, the tree is re-created from scratch (atomically: the
# new tree is built beside the old one and renamed into place).
#
# usage: linux/prepare.sh TARBALL DEST
set -eu

tarball=$1
dest=$2
top=$(cd "$(dirname "$0")/.." && pwd)

[ -f "$tarball" ] || { echo "prepare: kernel tarball $tarball not found (make deps fetches it)" >&2; exit 1; }

series() { # DIR: the patch files named by DIR/series, in order
	[ -f "$1/series" ] || return 0
	grep -v '^[[:space:]]*#' "$1/series" | grep -v '^[[:space:]]*$' | sed "s#^#$1/#"
}

patches="$(series "$top/linux/patches") $(series "$top/pksm/patches")"
version=$(cat "$tarball.version" 2>/dev/null || stat -c %s "$tarball")
stamp=$( { echo "tarball $version"; for p in $patches; do sha256sum "$p" | sed "s#$top/##"; done; } )

if [ -f "$dest/.pksmtb-stamp" ] && [ "$(cat "$dest/.pksmtb-stamp")" = "$stamp" ]; then
	relink=1
else
	relink=0
fi

link_owned() { # DIR: link PKSM's own files into the kernel tree DIR
	[ -d "$top/pksm" ] || return 0
	(cd "$top/pksm" && find . -type f ! -path './patches/*' ! -name '*.md' ! -name '.*') |
	while read -r f; do
		f=${f#./}
		mkdir -p "$1/$(dirname "$f")"
		ln -sfn "$top/pksm/$f" "$1/$f"
	done
	# A file PKSM no longer has (moved or removed) leaves no dangling link.
	find "$1" -xtype l -lname "$top/pksm/*" -print -delete |
		sed 's#^#prepare: removed stale link #'
}

if [ $relink = 1 ]; then
	link_owned "$dest"
	exit 0
fi

echo "prepare: unpacking $(basename "$tarball") ($version) into $dest"
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# -m: fresh mtimes, so a build dir never keeps an object newer than a reverted file
tar -xmf "$tarball" -C "$tmp" --strip-components=1
for p in $patches; do
	echo "prepare: applying $(basename "$p")"
	patch -d "$tmp" -p1 --forward --batch --quiet < "$p" || {
		echo "prepare: $p does not apply" >&2; exit 1; }
done
link_owned "$tmp"
echo "$stamp" > "$tmp/.pksmtb-stamp"
# Swap the trees, then delete the old one in the background (slow).
if [ -e "$dest" ]; then
	old="$dest.old.$$"
	mv "$dest" "$old"
	mv "$tmp" "$dest"
	(rm -rf "$old" &)
else
	mv "$tmp" "$dest"
fi
echo "prepare: kernel tree ready"
