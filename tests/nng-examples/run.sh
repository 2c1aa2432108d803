#!/bin/bash
# run.sh EXAMPLE BINDIR - run one of the nng-api/ programs (written against
# nng's API, built through rename.sed) and check what its nodes print.
# Nodes that must find a listener wait for the condition itself (the socket
# file, the bound port); every wait is bounded.
set -u
ex=$1
bin=$2/$ex
tmp=$(mktemp -d /tmp/iok-nngex.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# stdbuf is preloaded; gcc's shared ASan runtime would refuse to come second.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"

fail() {
	echo "FAIL ($ex): $*"
	for f in "$tmp"/*.out; do
		[ -e "$f" ] && { echo "== ${f##*/}"; cat "$f"; }
	done
	exit 1
}
# start OUT ARGS...: a node that runs until the end (line-buffered, so its
# lines are in OUT even though it is killed).
start() {
	local out=$1
	shift
	stdbuf -oL "$bin" "$@" >"$tmp/$out" 2>&1 &
	pids+=($!)
}
# run OUT ARGS...: a node that finishes by itself.
run() {
	local out=$1
	shift
	timeout 30 stdbuf -oL "$bin" "$@" >"$tmp/$out" 2>&1 || fail "$* exited $?"
}
# until_ok DESC CMD...: poll CMD (every 50 ms, 30 s at most).
until_ok() {
	local desc=$1 i
	shift
	for ((i = 0; i < 600; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	fail "timed out waiting for $desc"
}
has() { [ "$(grep -c -- "$2" "$tmp/$1" 2>/dev/null)" -ge "${3:-1}" ]; }
wait_for() { until_ok "$1 to print '$2' (x${3:-1})" has "$@"; }
is_sock() { [ -S "$1" ]; }
wait_ipc() { until_ok "a listener on $1" is_sock "${1#ipc://}"; }
is_bound() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
wait_tcp() { until_ok "a listener on port $1" is_bound "$1"; }
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $ex in
pipeline)
	# Once over ipc, once over tcp.
	port=$(free_port)
	for url in "ipc://$tmp/pipeline.ipc" "tcp://127.0.0.1:$port"; do
		t=${url%%:*}
		start "node0-$t.out" node0 "$url"
		[ "$t" = ipc ] && wait_ipc "$url" || wait_tcp "$port"
		run "hello-$t.out" node1 "$url" "Hello, World!"
		run "bye-$t.out" node1 "$url" "Goodbye."
		has "hello-$t.out" '^producer: queued "Hello, World!"$' || fail "node1 did not say it queued"
		wait_for "node0-$t.out" '^worker: job "Hello, World!" (13 bytes)$'
		wait_for "node0-$t.out" '^worker: job "Goodbye." (8 bytes)$'
	done
	;;
reqrep)
	url="ipc://$tmp/reqrep.ipc"
	start node0.out node0 "$url"
	wait_ipc "$url"
	run node1.out node1 "$url"
	has node1.out '^client: asking for TIME$' || fail "no request sent"
	has node1.out '^client: it is [0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]\{8\}Z$' || fail "no time received"
	wait_for node0.out '^server: asked for TIME$'
	wait_for node0.out '^server: answering [0-9]\{4\}-'
	;;
pubsub)
	port=$(free_port)
	url="tcp://127.0.0.1:$port"
	start server.out server "$url"
	wait_tcp "$port"
	for c in client0 client1 client2; do
		start "$c.out" client "$url" "$c"
	done
	for c in client0 client1 client2; do
		wait_for "$c.out" "^client $c: got \"tick [0-9]*\"$" 3
	done
	wait_for server.out '^server: published tick '
	# The subscription filters: "noise" is published as often as "tick".
	for c in client0 client1 client2; do
		has "$c.out" noise && fail "$c received an unsubscribed topic"
	done
	;;
survey)
	# The clients dial NONBLOCK, so they are started with no wait for
	# the server.
	url="ipc://$tmp/survey.ipc"
	start server.out server "$url"
	for c in client0 client1 client2; do
		start "$c.out" client "$url" "$c"
	done
	for c in client0 client1 client2; do
		wait_for "$c.out" "^client $c: answered the roll call$"
		wait_for server.out "^server: round [0-9]*: $c is here$"
	done
	# A survey ends with NNG_ETIMEDOUT from recv; rounds go on after it.
	wait_for server.out '^server: round [0-9]* over, 3 answers$'
	wait_for server.out '^server: round [0-9]* over, ' 2
	;;
bus)
	# Four nodes, each pair connected once (by one side's dial); all
	# started together since they dial NONBLOCK.
	n0="ipc://$tmp/node0.ipc" n1="ipc://$tmp/node1.ipc"
	n2="ipc://$tmp/node2.ipc" n3="ipc://$tmp/node3.ipc"
	start node0.out node0 "$n0" "$n1" "$n2"
	start node1.out node1 "$n1" "$n2" "$n3"
	start node2.out node2 "$n2" "$n3"
	start node3.out node3 "$n3" "$n0"
	for me in node0 node1 node2 node3; do
		for peer in node0 node1 node2 node3; do
			[ "$peer" = "$me" ] && continue
			wait_for "$me.out" "^$me: heard $peer$"
		done
		has "$me.out" "heard $me" && fail "$me heard itself"
	done
	;;
*)
	fail "unknown example"
	;;
esac
echo "ok ($ex)"
