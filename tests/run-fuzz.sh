#!/bin/sh
# run-fuzz.sh - run every libFuzzer target of a clang build for a bounded
# time.  Builds nothing.
#
#   tests/run-fuzz.sh BUILD_DIR [SECONDS_PER_TARGET]
#
# Each fuzz_NAME binary found under BUILD_DIR starts from the seeds in
# tests/fuzz-corpus/NAME/ (if any); new inputs go to a scratch directory, so
# the tree is not modified.  Crash reproducers are kept in
# BUILD_DIR/fuzz-artifacts/.  Exits non-zero if any target fails.
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR [SECONDS_PER_TARGET]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
secs=${2:-${IOK_FUZZ_TIME:-30}}
here=$(cd "$(dirname "$0")" && pwd)
arts="$build/fuzz-artifacts"
mkdir -p "$arts"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/iok-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM

targets=$(find "$build" -type f -name 'fuzz_*' -perm -u+x | sort)
if [ -z "$targets" ]; then
	echo "run-fuzz: no fuzz_* binaries under $build (needs a clang build)" >&2
	exit 2
fi

status=0
for bin in $targets; do
	name=$(basename "$bin")
	short=${name#fuzz_}
	seeds="$here/fuzz-corpus/$short"
	work="$scratch/$short"
	mkdir -p "$work"
	set -- "$work"
	[ -d "$seeds" ] && set -- "$work" "$seeds"
	echo "run-fuzz: $name for ${secs}s"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$arts/$name-" "$@" \
		>"$scratch/$name.log" 2>&1; then
		echo "run-fuzz: $name FAILED; tail of its log:" >&2
		tail -n 60 "$scratch/$name.log" >&2
		status=1
	else
		grep -E '^stat::number_of_executed_units|^Done' "$scratch/$name.log" | sed "s/^/  /"
	fi
done
exit $status
