#!/usr/bin/env bash
# The GUI front ends on a real display server, without a guest: the SDL window under Xvfb
# (screenshots with xwd, colours counted with ImageMagick; input, hotkeys and resizes from
# pushed SDL events), the window's error without a display, and the VNC server read by
# Debian's vncsnapshot.  The frames come from
# `build/tests/test_ui --sdl-show | --sdl-events | --vnc-show PORT` (tests/unit/test_ui.c), which runs the
# front ends under the VMM's seccomp filters.  One PASS/FAIL line per check; exit 1 on a FAIL.
# Usage: tests/ui/run.sh [path/to/test_ui]
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
bin=${1:-build/tests/test_ui}
rc=0
fail() { result FAIL "$@"; rc=1; }
tmp=$(mktemp -d)
xvfb_pid=
show_pid=
cleanup() {
	[ -n "$show_pid" ] && kill "$show_pid" 2>/dev/null
	[ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ ! -x "$bin" ]; then
	fail ui/build "$bin missing (make unit-bins)"
	exit 1
fi
for tool in Xvfb xwd convert vncsnapshot; do
	command -v $tool >/dev/null || { fail "ui/tools" "$tool not installed (packages.txt)"; exit 1; }
done

# count FILE R G B: pixels of exactly that colour in an image
count() {
	convert "$1" -format %c histogram:info:- 2>/dev/null |
		awk -v c="($2,$3,$4)" '{ gsub(/ /, "", $2); if ($2 == c) { sub(":", "", $1); n += $1 } }
			END { print n + 0 }'
}
# near FILE X Y R G B: the pixel at (X, Y) is within 40 of (R, G, B) in every channel (JPEG)
near() {
	local px
	px=$(convert "$1" -crop "1x1+$2+$3" -depth 8 txt:- 2>/dev/null | tail -n 1 |
		sed -E 's/.*\(([0-9]+),([0-9]+),([0-9]+).*/\1 \2 \3/')
	set -- $px "$4" "$5" "$6"
	[ $# -eq 6 ] || return 1
	for i in 1 2 3; do
		local a=${!i} j=$((i + 3))
		local b=${!j} d
		d=$((a - b))
		[ ${d#-} -le 40 ] || return 1
	done
}

# start_show ARGS...: run test_ui ARGS as a coprocess; wait for its first READY.
start_show() {
	coproc SHOW { exec "$bin" "$@" 2>"$tmp/show.err"; }
	show_pid=$SHOW_PID
	ready
}
ready() {
	local line
	read -r -t 30 line <&"${SHOW[0]}" && [ "$line" = READY ]
}
next() { echo next >&"${SHOW[1]}"; }
finish() { # finish NAME: the coprocess ends with status 0
	local st
	next
	wait "$show_pid"
	st=$?
	show_pid=
	if [ $st -eq 0 ]; then
		result PASS "$1"
	else
		fail "$1" "exit status $st: $(tail -n 3 "$tmp/show.err" | tr '\n' ' ')"
	fi
}

# ---- SDL window under Xvfb ----
exec {dfd}>"$tmp/display"
Xvfb -displayfd "$dfd" -screen 0 1024x768x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb_pid=$!
exec {dfd}>&-
for _ in $(seq 100); do
	[ -s "$tmp/display" ] && break
	sleep 0.1
done
dpy=:$(head -n 1 "$tmp/display")
if [ "$dpy" = : ]; then
	fail ui/xvfb "Xvfb did not start: $(tail -n 2 "$tmp/xvfb.log")"
	exit 1
fi
export DISPLAY=$dpy
if ! start_show --sdl-show; then
	fail ui/sdl-window "no window: $(tail -n 3 "$tmp/show.err" | tr '\n' ' ')"
else
	xwd -root -silent -display "$dpy" >"$tmp/a.xwd"
	ok=1
	for c in "255 0 0" "0 255 0" "0 0 255" "255 255 255"; do
		# Each quadrant is 160x120 = 19200 pixels.
		n=$(count "$tmp/a.xwd" $c)
		[ "$n" -ge 19000 ] || { ok=0; fail ui/sdl-window "colour ($c): $n pixels on screen"; }
	done
	[ $ok = 1 ] && result PASS ui/sdl-window "the four quadrants on the X screen"
	next
	if ready; then
		xwd -root -silent -display "$dpy" >"$tmp/b.xwd"
		# The window follows the new 400x300 mode: 120000 yellow pixels.
		n=$(count "$tmp/b.xwd" 255 255 0)
		if [ "$n" -ge 119000 ]; then
			result PASS ui/sdl-mode "window resized to the new mode ($n yellow pixels)"
		else
			fail ui/sdl-mode "$n yellow pixels, not 120000"
		fi
	else
		fail ui/sdl-mode "no second READY"
	fi
	finish ui/sdl-stop
fi

# ---- the window's input, hotkeys and resizes (SDL events pushed by test_ui) ----
"$bin" --sdl-events >"$tmp/events.out" 2>"$tmp/events.err"
st=$?
while read -r status name why; do
	case $status in
	PASS) result PASS "$name" ;;
	FAIL) fail "${name%:}" "$why" ;;
	esac
done <"$tmp/events.out"
if [ $st -ne 0 ] && ! grep -q '^FAIL' "$tmp/events.out"; then
	fail ui/sdl-events "exit status $st: $(tail -n 3 "$tmp/events.err" | tr '\n' ' ')"
fi

# ---- no display: one clear line ----
err=$(env -u DISPLAY -u WAYLAND_DISPLAY "$bin" --sdl-show </dev/null 2>&1 >/dev/null)
st=$?
if [ $st -eq 3 ] && [[ $err == *"cannot open a window (no X11/Wayland display"* ]]; then
	result PASS ui/sdl-no-display
else
	fail ui/sdl-no-display "status $st: $err"
fi

# ---- VNC read by vncsnapshot ----
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ! start_show --vnc-show "$port"; then
	fail ui/vncsnapshot "no VNC server: $(tail -n 3 "$tmp/show.err" | tr '\n' ' ')"
else
	if timeout 20 vncsnapshot -quiet "127.0.0.1::$port" "$tmp/v.jpg" >"$tmp/vs.log" 2>&1 &&
		[ "$(identify -format %wx%h "$tmp/v.jpg")" = 320x240 ] &&
		near "$tmp/v.jpg" 80 60 255 0 0 && near "$tmp/v.jpg" 240 60 0 255 0 &&
		near "$tmp/v.jpg" 80 180 0 0 255 && near "$tmp/v.jpg" 240 180 255 255 255; then
		result PASS ui/vncsnapshot "320x240, the four quadrants"
	else
		fail ui/vncsnapshot "$(tail -n 3 "$tmp/vs.log" | tr '\n' ' ')"
	fi
	next
	if ready && timeout 20 vncsnapshot -quiet "127.0.0.1::$port" "$tmp/w.jpg" >"$tmp/vs.log" 2>&1 &&
		[ "$(identify -format %wx%h "$tmp/w.jpg")" = 400x300 ] &&
		near "$tmp/w.jpg" 200 150 255 255 0; then
		result PASS ui/vncsnapshot-mode "400x300 yellow after the mode change"
	else
		fail ui/vncsnapshot-mode "$(tail -n 3 "$tmp/vs.log" | tr '\n' ' ')"
	fi
	finish ui/vnc-stop
fi
exit $rc
