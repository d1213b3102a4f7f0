#!/bin/sh
# Fetch the pinned Debian linux-source package (linux/source.conf) and
# leave its tarball at DEST, e.g. linux/dl/linux-source-7.3.tar.xz.
#
# apt does the work with a private configuration under the download
# directory: its own sources list (the one suite, signed by Debian's
# archive keyring), lists and cache; the system's sources, lists and
# installed packages are neither read nor changed.  apt checks the
# Release signature and the package's SHA256 as it always does.  The
# package is not installed: only its tarball is taken out of it.
#
# usage: linux/fetch-source.sh DEST
set -eu

dest=$1
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/linux/source.conf"

stamp="$dest.version"
if [ -f "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$KSRC_PACKAGE $KSRC_VERSION" ]; then
	exit 0
fi

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "fetch-source: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

dl=$(dirname "$dest")
apt="$dl/apt"
rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb"
echo "deb [signed-by=$keyring] $KSRC_MIRROR $KSRC_SUITE main" > "$apt/sources.list"
: > "$apt/status"
opts="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/dev/null
 -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o Dir::State::status=$apt/status
 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Retries=3"

echo "fetch-source: $KSRC_PACKAGE=$KSRC_VERSION from $KSRC_SUITE"
# shellcheck disable=SC2086
apt-get -q $opts update > "$apt/update.log" 2>&1 || {
	cat "$apt/update.log" >&2; echo "fetch-source: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
(cd "$apt/deb" && apt-get -q $opts download "$KSRC_PACKAGE=$KSRC_VERSION") > "$apt/download.log" 2>&1 || {
	cat "$apt/download.log" >&2
	echo "fetch-source: $KSRC_PACKAGE=$KSRC_VERSION is not in $KSRC_SUITE (any more?); see linux/source.conf" >&2
	exit 1; }
deb=$(ls "$apt/deb"/*.deb)
tarball=./usr/src/$KSRC_PACKAGE.tar.xz
dpkg-deb --fsys-tarfile "$deb" | tar -xO "$tarball" > "$dest.tmp"
[ -s "$dest.tmp" ] || { echo "fetch-source: $deb holds no $tarball" >&2; exit 1; }
mv "$dest.tmp" "$dest"
echo "$KSRC_PACKAGE $KSRC_VERSION" > "$stamp"
rm -rf "$apt"
echo "fetch-source: $dest"
