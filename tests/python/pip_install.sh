#!/bin/sh
# pip_install.sh PYTHON SOURCE_DIR - issue 4's packaging promise: the
# bindings install with `pip install --no-build-isolation` and no network,
# and the installed package works (a req/rep round trip, a RESP decode)
# with the libiok setup.py built and shipped inside it.
set -eu
py=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iok-pip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# A copy, so the build leaves nothing in the source tree.
mkdir -p "$tmp/tree/bindings"
cp -r "$src/bindings/python" "$tmp/tree/bindings/python"
for d in CMakeLists.txt cmake include src patterns transports; do
	cp -r "$src/$d" "$tmp/tree/$d"
done
if ! PIP_NO_INDEX=1 "$py" -m pip install -q --no-cache-dir --no-build-isolation --no-deps \
	--target "$tmp/site" "$tmp/tree/bindings/python" >"$tmp/pip.log" 2>&1; then
	cat "$tmp/pip.log" >&2
	exit 1
fi
cd "$tmp"
PYTHONPATH="$tmp/site" "$py" -c '
import iok, iok.redis
assert iok.__file__.startswith("'"$tmp/site"'"), iok.__file__
with iok.Rep(listen="inproc://pip") as rep, iok.Req(dial="inproc://pip") as req:
    req.send(b"ping")
    rep.send(rep.recv() + b"/pong")
    assert req.recv(timeout=5000) == b"ping/pong"
assert iok.redis.resp_decode(b"*2\r\n:1\r\n$1\r\nx\r\n") == [1, b"x"]
# The extension links the libiok shipped beside it (found through $ORIGIN).
import os, iok._iok
pkg = os.path.dirname(iok._iok.__file__)
maps = open("/proc/self/maps").read()
lib = [l.split()[-1] for l in maps.splitlines() if "/libiok.so" in l]
assert lib and all(os.path.dirname(p) == pkg for p in lib), (lib, pkg)
print("pip-installed iok", iok.__version__, "works")
'
