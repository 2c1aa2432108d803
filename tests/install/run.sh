#!/usr/bin/env bash
# Install the build into a temporary prefix, then build a user's program
# against it three ways: pkg-config, find_package(iok) shared and static.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$tmp/consumer_pc" "$here/consumer.c" $(pkg-config --cflags --libs iok)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer_pc" | grep -q '^installed '
cmake -S "$here" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/consumer_cmake" | grep -q '^installed '
"$tmp/consumer/consumer_static" | grep -q '^installed '
test -f "$tmp/prefix/include/iok.h"
echo "install: pkg-config, find_package(iok) shared and static all work"
