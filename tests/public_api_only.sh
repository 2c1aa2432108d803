#!/bin/sh
# public_api_only.sh SOURCE_DIR - bindings and tools are written against
# include/iok.h alone, as any user of the library: no header from src/,
# patterns/ or transports/, and no internal ik_/IK_ name.  (Headers of their
# own directory, e.g. bindings/python/_resp.h, are theirs.)
set -eu
cd "$1"
bad=0
for f in $(find bindings tools -name '*.[ch]' | sort); do
	dir=$(dirname "$f")
	for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
		if [ "$h" != iok.h ] && [ ! -f "$dir/$h" -o "${h#*/}" != "$h" ]; then
			echo "$f: includes \"$h\" (only iok.h and headers of its own directory)" >&2
			bad=1
		fi
	done
	if grep -nE '(^|[^A-Za-z0-9_])(ik_[a-z]|IK_[A-Z])' "$f" >&2; then
		echo "$f: uses internal ik_/IK_ names (above)" >&2
		bad=1
	fi
done
exit $bad
