#!/usr/bin/env bash
# test_iokcat.sh - iokcat against nngcat, and against itself.
#
# Usage: tools/test_iokcat.sh BUILD_DIR [GROUP...]
#
# GROUPs (default: all of them):
#   cli       option parsing and errors: rc and messages compared with nngcat
#             (opens only pair, push and pull sockets)
#   formats   --raw --ascii --quoted --hex --msgpack --format no, and none
#   pair0 pair1 bus push req pub surveyor
#             the protocols; aliases: pair, pull/pipeline -> push,
#             rep/reqrep -> req, sub/pubsub -> pub, respondent/survey ->
#             surveyor, bus0 -> bus
# Pass a subset for the patterns iok has so far, e.g.
#   tools/test_iokcat.sh build cli formats pair0 pair1 push
#
# Environment:
#   IOKCAT      the iokcat to test (default BUILD_DIR/tools/iokcat)
#   NNGCAT      the reference (default: nngcat from PATH)
#   TRANSPORTS  default "tcp ipc"
#   PEERS       implementation pairs "first:second" (default
#               "nng:iok iok:nng iok:iok nng:nng"); nng:nng checks the
#               expectations recorded here against nngcat itself.
#   VERBOSE=1   print every command line
#
# Every exchange runs in both orientations (first peer listens, then second
# peer listens) over every transport.  Peers are synchronised without
# sleeping where possible: the dialer starts once the listener's socket is
# bound (polled with ss / test -S), senders that block until a peer is there
# (push, pair) need nothing more, and only pub, surveyor and bus, whose sends
# are dropped while no peer is attached, use nngcat's --delay / --interval.
set -euo pipefail
set -f # arguments are split on blanks, never globbed

if [ $# -lt 1 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 2
fi
BUILD=$1
shift
IOKCAT=${IOKCAT:-$BUILD/tools/iokcat}
NNGCAT=${NNGCAT:-$(command -v nngcat || true)}
TRANSPORTS=${TRANSPORTS:-tcp ipc}
PEERS=${PEERS:-nng:iok iok:nng iok:iok nng:nng}
VERBOSE=${VERBOSE:-0}
T=20 # seconds any one process may run

[ -x "$IOKCAT" ] || { echo "no iokcat at $IOKCAT" >&2; exit 2; }
if [ -z "$NNGCAT" ] || [ ! -x "$NNGCAT" ]; then
	echo "nngcat not found (package nng-utils)" >&2
	exit 2
fi

TMP=$(mktemp -d /tmp/iokcat-test.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NPASS=0
FAILED=()
SEQ=0

# ------------------------------------------------------------- helpers

bin() {
	case $1 in
	iok) echo "$IOKCAT" ;;
	nng) echo "$NNGCAT" ;;
	*) echo "unknown implementation $1" >&2; exit 2 ;;
	esac
}

free_port() {
	/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# new_url TRANSPORT: sets URL to a fresh address (not in a subshell, so that
# the ipc counter advances).
new_url() {
	SEQ=$((SEQ + 1))
	case $1 in
	tcp) URL="tcp://127.0.0.1:$(free_port)" ;;
	ipc) URL="ipc://$TMP/s$SEQ" ;;
	*) echo "unknown transport $1" >&2; exit 2 ;;
	esac
}

# wait_listen URL PID: until URL is bound (or PID died / 10 s passed).
wait_listen() {
	local url=$1 pid=$2 deadline=$((SECONDS + 10))
	while :; do
		case $url in
		tcp://*) [ -n "$(ss -Hltn "sport = :${url##*:}")" ] && return 0 ;;
		ipc://*) [ -S "${url#ipc://}" ] && return 0 ;;
		esac
		kill -0 "$pid" 2>/dev/null || return 1
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.02
	done
}

# start NAME IMPL ARGS...: runs a peer in the background, stdout and stderr
# in $TMP/NAME.out / .err, stdin from $STDIN (default /dev/null); sets PID.
STDIN=/dev/null
start() {
	local name=$1 impl=$2
	shift 2
	[ "$VERBOSE" = 1 ] && echo "    $name: $(basename "$(bin "$impl")") $*"
	timeout $T "$(bin "$impl")" "$@" <"$STDIN" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	PID=$!
	PIDS+=("$PID")
}

# finish PID: waits for PID, sets RC.
finish() {
	RC=0
	wait "$1" || RC=$?
}

pass() {
	NPASS=$((NPASS + 1))
	echo "ok   $1"
}

fail() {
	FAILED+=("$1")
	echo "FAIL $1"
	shift
	local line
	for line in "$@"; do
		echo "     $line"
	done
}

# check_out NAME EXPECT_FILE: compares $TMP/NAME.out with EXPECT_FILE; on a
# difference adds both, dumped, to ERRS.
check_out() {
	if ! cmp -s "$TMP/$1.out" "$2"; then
		ERRS+=("$1: stdout differs; expected:" "$(od -An -c "$2" | head -20)"
			"got:" "$(od -An -c "$TMP/$1.out" | head -20)")
	fi
}

# expect FILE FORMAT [ARGS]: writes printf FORMAT ARGS to FILE.
expect() {
	local f=$1
	shift
	# shellcheck disable=SC2059
	printf "$@" >"$f"
}

# ------------------------------------------------------------ exchanges

# exchange GROUP NAME FOREVER "ARGS_A" EXPECT_A "ARGS_B" EXPECT_B
#   Runs peer A (ARGS_A) and peer B (ARGS_B), one listening and the other
#   dialing, for every transport, implementation pair and orientation.
#   EXPECT_* are printf formats of the exact stdout.  FOREVER is "A" if A
#   never exits by itself (pub --interval): it is stopped once B is done.
#   Both must otherwise exit 0.
exchange() {
	local group=$1 name=$2 forever=$3 args_a=$4 exp_a=$5 args_b=$6 exp_b=$7
	local t peers ia ib lis title url pa pb ra rb
	expect "$TMP/exp_a" "$exp_a"
	expect "$TMP/exp_b" "$exp_b"
	for t in $TRANSPORTS; do
		for peers in $PEERS; do
			ia=${peers%%:*}
			ib=${peers##*:}
			for lis in A B; do
				title="$group/$name $t $ia(A)-$ib(B) $lis-listens"
				for attempt in 1 2; do
				new_url "$t"
				url=$URL
				ERRS=()
				if [ $lis = A ]; then
					# shellcheck disable=SC2086
					start a "$ia" $args_a --listen "$url"
					pa=$PID
					wait_listen "$url" "$pa" || ERRS+=("A never listened")
					# shellcheck disable=SC2086
					start b "$ib" $args_b --dial "$url"
					pb=$PID
				else
					# shellcheck disable=SC2086
					start b "$ib" $args_b --listen "$url"
					pb=$PID
					wait_listen "$url" "$pb" || ERRS+=("B never listened")
					# shellcheck disable=SC2086
					start a "$ia" $args_a --dial "$url"
					pa=$PID
				fi
				finish "$pb"
				rb=$RC
				if [ "$forever" = A ]; then
					kill "$pa" 2>/dev/null || true
				fi
				finish "$pa"
				ra=$RC
				[ "$forever" = A ] || [ $ra = 0 ] || ERRS+=("A exited $ra: $(head -c 300 "$TMP/a.err")")
				[ $rb = 0 ] || ERRS+=("B exited $rb: $(head -c 300 "$TMP/b.err")")
				check_out a "$TMP/exp_a"
				check_out b "$TMP/exp_b"
				# nngcat against nngcat is the control (no iok in it):
				# nngcat itself has failed there now and then ("Cannot
				# set recv timeout"), so that cell alone gets a second try.
				if [ ${#ERRS[@]} != 0 ] && [ $attempt = 1 ] && [ "$ia" = nng ] &&
					[ "$ib" = nng ]; then
					continue
				fi
				break
				done
				if [ ${#ERRS[@]} = 0 ]; then
					pass "$title"
				else
					fail "$title" "A: $args_a" "B: $args_b" "${ERRS[@]}"
				fi
			done
		done
	done
}

# dial_first GROUP NAME "ARGS_D" "ARGS_L" EXPECT_L
#   The dialer (ARGS_D, --async) starts first, before anything listens; the
#   listener (ARGS_L) starts after it and prints EXPECT_L.  Both exit 0.
dial_first() {
	local group=$1 name=$2 args_d=$3 args_l=$4 exp_l=$5
	local t peers id il title url pd pl
	expect "$TMP/exp_l" "$exp_l"
	for t in $TRANSPORTS; do
		for peers in $PEERS; do
			id=${peers%%:*}
			il=${peers##*:}
			title="$group/$name $t $id(dialer)-$il(listener)"
			new_url "$t"
			url=$URL
			ERRS=()
			# shellcheck disable=SC2086
			start d "$id" $args_d --dial "$url"
			pd=$PID
			# shellcheck disable=SC2086
			start l "$il" $args_l --listen "$url"
			pl=$PID
			finish "$pl"
			[ $RC = 0 ] || ERRS+=("listener exited $RC: $(head -c 300 "$TMP/l.err")")
			finish "$pd"
			[ $RC = 0 ] || ERRS+=("dialer exited $RC: $(head -c 300 "$TMP/d.err")")
			check_out l "$TMP/exp_l"
			if [ ${#ERRS[@]} = 0 ]; then
				pass "$title"
			else
				fail "$title" "D: $args_d" "L: $args_l" "${ERRS[@]}"
			fi
		done
	done
}

# ------------------------------------------------------------- protocols

test_pair() { # pair0 | pair1
	local p=$1
	# Each sends once and prints the other's message, then idles out.
	exchange "$p" both-ways - "--$p -D from-A --quoted --recv-timeout 1" '"from-B"\n' \
		"--$p -D from-B --quoted --recv-timeout 1" '"from-A"\n'
	# A receiver that stops after --count messages.
	exchange "$p" count - "--$p --count 2 --ascii" 'msgmsg' \
		"--$p -D msg --interval 1 --count 2 --quoted --recv-timeout 1" ''
}

test_bus() {
	# bus drops what is sent before a peer is attached: --delay.
	exchange bus both-ways - "--bus0 -D from-A --delay 1 --quoted --recv-timeout 1" '"from-B"\n' \
		"--bus -D from-B --delay 1 --quoted --recv-timeout 1" '"from-A"\n'
}

test_push() {
	exchange push count - "--pull0 --count 3 --quoted" '"m"\n"m"\n"m"\n' \
		"--push0 -D m --count 3" ''
	exchange push aliases - "--pull --count 1 -Q" '"x"\n' "--push --data=x" ''
	# The default dial is synchronous; --async dials in the background, so
	# the sender may start before anything listens.
	dial_first push async-dial "--push0 --async -D early" "--pull0 --count 1 --quoted" '"early"\n'
	recvmaxsz
	bigmsg
}

# Without --recv-maxsz nngcat takes messages of any size: a 2 MB message
# (over iok's own 1 MiB default) goes through, read from standard input.
bigmsg() {
	local t peers ip ir title url pr
	head -c 2000000 /dev/urandom >"$TMP/big2m"
	for t in $TRANSPORTS; do
		for peers in $PEERS; do
			ip=${peers%%:*}
			ir=${peers##*:}
			title="push/2MB $t $ip(push)-$ir(pull)"
			new_url "$t"
			url=$URL
			ERRS=()
			start r "$ir" --pull0 --listen "$url" --count 1 --raw
			pr=$PID
			wait_listen "$url" "$pr" || ERRS+=("pull never listened")
			STDIN=$TMP/big2m start p "$ip" --push0 --dial "$url" -F -
			finish "$PID"
			[ $RC = 0 ] || ERRS+=("push exited $RC: $(head -c 300 "$TMP/p.err")")
			finish "$pr"
			[ $RC = 0 ] || ERRS+=("pull exited $RC: $(head -c 300 "$TMP/r.err")")
			cmp -s "$TMP/r.out" "$TMP/big2m" ||
				ERRS+=("received $(stat -c %s "$TMP/r.out") bytes, not the 2000000 sent")
			if [ ${#ERRS[@]} = 0 ]; then pass "$title"; else fail "$title" "${ERRS[@]}"; fi
		done
	done
}

# --recv-maxsz: frames over the limit drop the connection; the senders
# after it connect anew.  As nng's own nngcat_recvmaxsz_test.
recvmaxsz() {
	local t peers ip ir title url pr d
	expect "$TMP/exp_r" '"one"\n"55555"\n"88888"\n'
	for t in $TRANSPORTS; do
		for peers in $PEERS; do
			ip=${peers%%:*}
			ir=${peers##*:}
			title="push/recv-maxsz $t $ip(push)-$ir(pull)"
			new_url "$t"
			url=$URL
			ERRS=()
			start r "$ir" --pull0 --listen "$url" --count 3 --recv-maxsz 5 --quoted
			pr=$PID
			wait_listen "$url" "$pr" || ERRS+=("pull never listened")
			for d in one 55555 666666 7777777 88888; do
				start p "$ip" --push0 --dial "$url" -D "$d"
				finish "$PID"
				[ $RC = 0 ] || ERRS+=("push $d exited $RC: $(head -c 300 "$TMP/p.err")")
			done
			finish "$pr"
			[ $RC = 0 ] || ERRS+=("pull exited $RC: $(head -c 300 "$TMP/r.err")")
			check_out r "$TMP/exp_r"
			if [ ${#ERRS[@]} = 0 ]; then
				pass "$title"
			else
				fail "$title" "${ERRS[@]}"
			fi
		done
	done
}

test_req() {
	# One request: req prints the reply and stops (no request outstanding).
	exchange req once - "--rep0 -D pong --count 1 --quoted" '"ping"\n' \
		"--req0 -D ping --quoted" '"pong"\n'
	exchange req interval - "--rep -D pong --count 2 --ascii" 'pingping' \
		"--req -D ping --count 2 --interval 1 --ascii" 'pongpong'
	# rep without --data prints requests and never answers.
	exchange req no-answer - "--rep0 --count 1 --quoted" '"ping"\n' \
		"--req0 -D ping --quoted --recv-timeout 1" ''
	# rep with --data fails on a receive timeout (exit 1), unlike a receiver.
	cli_same --rep0 --listen "tcp://127.0.0.1:$(free_port)" -D x --recv-timeout 1
	dial_first req async-dial "--req0 --async -D ping --quoted" \
		"--rep0 -D pong --count 1 --quoted" '"ping"\n'
}

test_pub() {
	# pub sends every second until stopped; sub stops after --count.
	exchange pub all A "--pub0 -D news --interval 1" '' "--sub0 --count 2 --quoted" '"news"\n"news"\n'
	exchange pub topic A "--pub -D news --interval 1" '' \
		"--sub --subscribe zz --subscribe ne --count 1 --ascii" 'news'
	exchange pub filtered A "--pub0 -D news --interval 1" '' \
		"--sub0 --subscribe nx --recv-timeout 2 --quoted" ''
}

test_surveyor() {
	# surveyor drops a survey sent before a respondent is attached: --delay.
	exchange surveyor once - "--surveyor0 -D question --delay 1 --quoted" '"answer"\n' \
		"--respondent0 -D answer --count 1 --quoted" '"question"\n'
	exchange surveyor aliases - "--surveyor -D q --delay 1 --ascii" 'a' \
		"--respondent -D a --count 1 --ascii" 'q'
}

# --------------------------------------------------------------- formats

test_formats() {
	local f peers ip ir title url pr fmt name
	local -a fmts=(none "--format no" --raw --ascii -A --quoted -Q --hex --msgpack
		"--format raw" "--format ascii" "--format quoted" "--format hex" "--format msgpack")
	printf 'a\tb\r\n"q"\\x\x01\xff\x7f\x80 end' >"$TMP/bin"
	expect "$TMP/fmt_none" ''
	cp "$TMP/bin" "$TMP/fmt_raw"
	expect "$TMP/fmt_ascii" 'a.b.."q"\\x.... end'
	expect "$TMP/fmt_quoted" '"a\\tb\\r\\n\\"q\\"\\\\x\\x01\\xff\\x7f\\x80 end"\n'
	expect "$TMP/fmt_hex" '"%s"\n' "$(od -An -v -tx1 "$TMP/bin" | tr -d ' \n' | sed 's/../\\x&/g')"
	{ printf '\xc4\x12'; cat "$TMP/bin"; } >"$TMP/fmt_msgpack"
	for peers in $PEERS; do
		ip=${peers%%:*}
		ir=${peers##*:}
		for fmt in "${fmts[@]}"; do
			case $fmt in
			none | "--format no") name=none ;;
			--raw | "--format raw") name=raw ;;
			--ascii | -A | "--format ascii") name=ascii ;;
			--quoted | -Q | "--format quoted") name=quoted ;;
			--hex | "--format hex") name=hex ;;
			--msgpack | "--format msgpack") name=msgpack ;;
			esac
			[ "$fmt" = none ] && fmt=
			title="formats/${fmt:-none} tcp $ip(push)-$ir(pull)"
			new_url tcp
			url=$URL
			ERRS=()
			# shellcheck disable=SC2086
			start r "$ir" --pull0 --listen "$url" --count 1 $fmt
			pr=$PID
			wait_listen "$url" "$pr" || ERRS+=("pull never listened")
			start p "$ip" --push0 --dial "$url" -F "$TMP/bin"
			finish "$PID"
			[ $RC = 0 ] || ERRS+=("push exited $RC: $(head -c 300 "$TMP/p.err")")
			finish "$pr"
			[ $RC = 0 ] || ERRS+=("pull exited $RC: $(head -c 300 "$TMP/r.err")")
			check_out r "$TMP/fmt_$name"
			if [ ${#ERRS[@]} = 0 ]; then pass "$title"; else fail "$title" "${ERRS[@]}"; fi
		done
		# msgpack's longer length forms, and --file - (standard input).
		msgpack_sizes "$ip" "$ir"
	done
}

# msgpack_sizes PUSH_IMPL PULL_IMPL: bin16 and bin32 headers, with the
# message read from standard input.
msgpack_sizes() {
	local ip=$1 ir=$2 n hdr title url pr
	for n in 300 70000; do
		head -c $n /dev/zero | tr '\0' A >"$TMP/big"
		if [ $n -lt 65536 ]; then
			hdr=$(printf '\\xc5\\x%02x\\x%02x' $((n >> 8)) $((n & 255)))
		else
			hdr=$(printf '\\xc6\\x%02x\\x%02x\\x%02x\\x%02x' $((n >> 24)) $(((n >> 16) & 255)) \
				$(((n >> 8) & 255)) $((n & 255)))
		fi
		{ printf '%b' "$hdr"; cat "$TMP/big"; } >"$TMP/fmt_big"
		title="formats/--msgpack $n bytes from stdin tcp $ip(push)-$ir(pull)"
		new_url tcp
		url=$URL
		ERRS=()
		start r "$ir" --pull0 --listen "$url" --count 1 --msgpack
		pr=$PID
		wait_listen "$url" "$pr" || ERRS+=("pull never listened")
		STDIN=$TMP/big start p "$ip" --push0 --dial "$url" --file -
		finish "$PID"
		[ $RC = 0 ] || ERRS+=("push exited $RC: $(head -c 300 "$TMP/p.err")")
		finish "$pr"
		[ $RC = 0 ] || ERRS+=("pull exited $RC: $(head -c 300 "$TMP/r.err")")
		check_out r "$TMP/fmt_big"
		if [ ${#ERRS[@]} = 0 ]; then pass "$title"; else fail "$title" "${ERRS[@]}"; fi
	done
}

# ------------------------------------------------------------------- cli

# cli_same ARGS...: iokcat and nngcat give the same exit code, the same
# stdout, and the same first line on stderr (iokcat may add a hint after).
cli_same() {
	local title="cli/same: $*"
	ERRS=()
	start n nng "$@"
	finish "$PID"
	local rn=$RC
	start i iok "$@"
	finish "$PID"
	local ri=$RC
	[ "$rn" = "$ri" ] || ERRS+=("exit code: nngcat $rn, iokcat $ri")
	cmp -s "$TMP/n.out" "$TMP/i.out" || ERRS+=("stdout: nngcat '$(head -c 200 "$TMP/n.out")'" \
		"        iokcat '$(head -c 200 "$TMP/i.out")'")
	[ "$(head -n1 "$TMP/n.err")" = "$(head -n1 "$TMP/i.err")" ] ||
		ERRS+=("stderr: nngcat '$(head -n1 "$TMP/n.err")'" "        iokcat '$(head -n1 "$TMP/i.err")'")
	if [ ${#ERRS[@]} = 0 ]; then pass "$title"; else fail "$title" "${ERRS[@]}"; fi
}

# cli_iok RC REGEX ARGS...: iokcat alone exits RC with stderr+stdout
# matching the extended REGEX (where iokcat differs from nngcat on purpose).
cli_iok() {
	local want=$1 re=$2
	shift 2
	local title="cli/iokcat: $*"
	start i iok "$@"
	finish "$PID"
	ERRS=()
	[ "$RC" = "$want" ] || ERRS+=("exit code $RC, wanted $want")
	local out
	out=$(cat "$TMP/i.out" "$TMP/i.err")
	[[ $out =~ $re ]] || ERRS+=("output '${out:0:300}' does not match /$re/")
	if [ ${#ERRS[@]} = 0 ]; then pass "$title"; else fail "$title" "${ERRS[@]}"; fi
}

test_cli() {
	local u=tcp://127.0.0.1:1 port
	# Parsing and argument checks: no socket is opened.
	cli_same
	cli_same --foo
	cli_same --foo=1
	cli_same --re
	cli_same --d x
	cli_same --dial
	cli_same --pull0 -D
	cli_same -vq
	cli_same --ascii=yes
	cli_same --pull0
	cli_same --listen $u
	cli_same --listen $u --subscribe a
	cli_same --pull0 --listen $u --subscribe a
	cli_same --pull0 --listen $u -D x
	cli_same --pull0 --listen $u -i 1
	cli_same --sub0 --listen $u -F /dev/null
	cli_same --push0 --listen $u -D x -A
	cli_same --push0 --listen $u -D x --format no
	cli_same --push0 --listen $u
	cli_same --pub0 --listen $u
	cli_same --req0 --listen $u
	cli_same --surveyor0 --listen $u
	cli_same --rep0 --listen $u -i 1
	cli_same --respondent0 --listen $u -D x -i 1
	cli_same --pair0 --listen $u -i 1
	cli_same --bus0 --listen $u --interval=1
	cli_same --pair1 --compat --listen $u
	cli_same --pair0 --compat --async --listen $u
	cli_same --pair0 --compat -C 1 --listen $u
	cli_same --pair1 -A -Q --listen $u
	cli_same --pair1 --format ascii --hex --listen $u
	cli_same --pair1 --format bogus --listen $u
	cli_same --pair1 --pair0 --listen $u
	cli_same --req --rep --listen $u
	cli_same --pair1 -D a -D b --listen $u
	cli_same --pair1 -D a -F /dev/null --listen $u
	cli_same --pair1 -F "$TMP/does-not-exist" --listen $u
	cli_same --pair1 -d x --listen $u
	cli_same --pair1 -d '' --listen $u
	cli_same --pair1 -d 86401 --listen $u
	cli_same --pair1 --count=-1 --listen $u
	cli_same --pair1 -C 2147483648 --listen $u
	cli_same --pair1 -C 21474836470 --listen $u
	cli_same --pair1 -C 99999999999 --listen $u
	cli_same --pair1 -L 65537
	cli_same --pair1 -Lx
	cli_same --push0 stray-word --listen $u -D x

	# Through socket and endpoint setup (the library must work).
	cli_same --pull0 --dial foo://x
	cli_same --pull0 --dial tcp://
	cli_same --pull0 --listen foo://x
	port=$(free_port)
	cli_same --push0 --dial "tcp://127.0.0.1:$port" -D x
	cli_same --push0 -l "$port" -D x
	cli_same --pull0 --recv-timeout 1 -v --listen "tcp://127.0.0.1:$port"
	cli_same --pull0 --recv-timeout 1 -v -L "$port"
	cli_same --pull0 --recv-timeout 1 -v -q --bind "tcp://127.0.0.1:$port"
	cli_same --pull0 --recv-timeout 1 --verbose -X "$TMP/cli-ipc"
	cli_same --pull0 --recv-timeout 1 -v --socket-name=x --listen ipc://"$TMP/cli-ipc2"
	cli_same --pair0 --recv-timeout 1 --compat --listen "tcp://127.0.0.1:$port"
	cli_same --push0 --listen "tcp://127.0.0.1:$port" -D x --send-timeout 1
	cli_same --pair1 --listen "tcp://127.0.0.1:$port" -D x --send-timeout 1

	# Where iokcat differs from nngcat on purpose.
	cli_iok 0 '^Listening at: tcp://127\.0\.0\.1:[1-9][0-9]*$' --pull0 --recv-timeout 1 -v \
		--listen tcp://127.0.0.1:0
	cli_iok 0 '^$' --pair --recv-timeout 1 --listen "tcp://127.0.0.1:$port"
	cli_iok 0 '^$' --pair --compat --recv-timeout 1 --listen "tcp://127.0.0.1:$port"
	cli_iok 1 'not supported: iok has no TLS transport' --pair1 --listen $u --insecure
	cli_iok 1 'not supported: iok has no TLS transport' --pair1 --listen $u --cacert /dev/null
	cli_iok 1 'not supported: iok has no TLS transport' --pair1 --listen $u -E /dev/null
	cli_iok 1 'not supported: iok has no TLS transport' --pair1 --listen $u --key /dev/null
	cli_iok 1 'not supported: iok has no ZeroTier transport' --pair1 --listen $u --zt-home /tmp
	cli_iok 1 'Use --help for usage' --nonsense
	cli_iok 1 '^Usage: iokcat ' --help
	cli_iok 0 '^[0-9]+\.[0-9]+\.[0-9]+' --version
	cli_iok 0 '^[0-9]+\.[0-9]+\.[0-9]+' -V
}

# ------------------------------------------------------------------ main

GROUPS_RUN=()
for g in "${@:-cli formats pair0 pair1 push req pub surveyor bus}"; do
	for g2 in $g; do
		case $g2 in
		cli | formats | pair0 | pair1 | push | req | pub | surveyor | bus) ;;
		pair) g2=pair1 ;;
		pull | pipeline | push0 | pull0) g2=push ;;
		rep | reqrep | req0 | rep0) g2=req ;;
		sub | pubsub | pub0 | sub0) g2=pub ;;
		respondent | survey | surveyor0 | respondent0) g2=surveyor ;;
		bus0) g2=bus ;;
		*) echo "unknown group $g2" >&2; exit 2 ;;
		esac
		GROUPS_RUN+=("$g2")
	done
done

for g in "${GROUPS_RUN[@]}"; do
	echo "== $g"
	case $g in
	cli) test_cli ;;
	formats) test_formats ;;
	pair0 | pair1) test_pair "$g" ;;
	*) "test_$g" ;;
	esac
done

echo
echo "$NPASS passed, ${#FAILED[@]} failed"
for f in "${FAILED[@]}"; do
	echo "  FAILED: $f"
done
[ ${#FAILED[@]} = 0 ]
