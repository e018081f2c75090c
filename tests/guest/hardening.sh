#!/usr/bin/env bash
# Process hardening (docs/architecture.md, "Process hardening"): the per-thread seccomp filters
# are on, a refused system call ends the VMM with its message, stop signals end the VM cleanly,
# the jail options (--chroot, --uid/--gid, --new-ns) take effect, and too many devices are one
# usage error.  The guest never needs to reach its login prompt: each check looks at the
# running process and stops it, a few seconds apiece.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"
ign=${IGNITION:-$root/build/ignition}
guest=${IGNITION_GUEST_DIR:-$root/guest/out}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- limits: no KVM needed ----
args=()
for _ in $(seq 16); do args+=(--disk "$tmp/none.img"); done
err=$("$ign" run "${args[@]}" --net user --net user 2>&1 >/dev/null </dev/null)
status=$?
if [ $status -eq 2 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] &&
	printf '%s' "$err" | grep -q "too many devices: 19 need an interrupt line"; then
	result PASS hardening/irq-lines-usage-error
else
	result FAIL hardening/irq-lines-usage-error "exit $status: $err"
fi
err=$("$ign" run --new-ns net --net user 2>&1 >/dev/null </dev/null)
status=$?
if [ $status -eq 2 ] && printf '%s' "$err" | grep -q -- "--new-ns net cannot be used with --net user"; then
	result PASS hardening/netns-refuses-user-net
else
	result FAIL hardening/netns-refuses-user-net "exit $status: $err"
fi

# ---- the rest runs a guest ----
names=(seccomp-on sigterm-clean sigterm-terminal selftest-refused no-seccomp second-signal chroot-uid-gid namespaces)
fail_all() {
	for n in "${names[@]}"; do result FAIL "hardening/$n" "$1"; done
	exit 0
}
# tests/guest/run.sh runs this inside the nested harness where the host has no /dev/kvm.
[ -e /dev/kvm ] || fail_all "no /dev/kvm (tests/guest/run.sh runs this inside tests/nested)"
[ -r "$guest/vmlinux-min" ] && [ -r "$guest/rootfs.ext4" ] ||
	fail_all "default guest not built ($guest): run 'make guest'"
cp --sparse=always "$guest/rootfs.ext4" "$tmp/rootfs.ext4" || fail_all "cannot copy the rootfs"
export IGNITION_GUEST_DIR=$guest

# start NAME ARGS...: ignition in the background, stdin /dev/null, output in $tmp/NAME.{out,err}
start() {
	local name=$1
	shift
	"$ign" run --disk "$tmp/rootfs.ext4" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pid=$!
}

# seccomp_modes PID: the Seccomp field of every thread, sorted and counted ("4x2").
seccomp_modes() {
	grep -h '^Seccomp:' /proc/"$1"/task/*/status 2>/dev/null | awk '{print $2}' | sort | uniq -c |
		awk '{printf "%s%sx%s", sep, $1, $2; sep=","}'
}

# all_filtered PID: every thread of PID is in seccomp mode 2.
all_filtered() {
	local modes
	modes=$(seccomp_modes "$1")
	[ -n "$modes" ] && ! tr ',' '\n' <<<"$modes" | grep -qv 'x2$'
}

# wait_filtered PID: until PID's main thread is filtered (the last to install its filter, once
# every other thread is started) and so is every thread (5 s at most).
wait_filtered() {
	local i
	for i in $(seq 50); do
		grep -q '^Seccomp:[[:space:]]*2$' /proc/"$1"/status 2>/dev/null && all_filtered "$1" &&
			return 0
		sleep 0.1
	done
	return 1
}

# stop_vm NAME: SIGTERM, then the exit status in $status (SIGKILL after 20 s)
stop_vm() {
	local i
	kill -TERM "$pid"
	for i in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	status=$?
	pid=
}

# 1. Filters on every thread (main, evloop, 2 vCPUs, and on recent kernels KVM's own
#    kvm-nx-lpage-recovery worker, created by the first KVM_RUN and so inheriting a vCPU's
#    filter), then SIGTERM: exit 0, the vsock path removed.
start on --smp 2 --net user --balloon --vsock 3,"$tmp/v.sock"
if wait_filtered "$pid" && [ "$(ls /proc/$pid/task | wc -l)" -ge 4 ]; then
	result PASS hardening/seccomp-on
else
	result FAIL hardening/seccomp-on "threads' Seccomp modes: $(seccomp_modes "$pid") (want all 2)"
fi
[ -S "$tmp/v.sock" ] || result FAIL hardening/sigterm-clean "no vsock socket at $tmp/v.sock"
stop_vm
if [ $status -ne 0 ]; then
	result FAIL hardening/sigterm-clean "exit status $status after SIGTERM: $(tail -n 3 "$tmp/on.err")"
elif [ -e "$tmp/v.sock" ]; then
	result FAIL hardening/sigterm-clean "vsock socket $tmp/v.sock left behind"
elif grep -q "refused system call" "$tmp/on.err"; then
	result FAIL hardening/sigterm-clean "$(grep "refused system call" "$tmp/on.err")"
else
	result PASS hardening/sigterm-clean
fi

# 1b. On a terminal: raw mode while running, the settings exactly restored after SIGTERM.
python3 - "$ign" "$tmp/rootfs.ext4" "$tmp/tty.err" >"$tmp/tty.why" <<'PY'
import os, pty, signal, subprocess, sys, termios, time
ign, disk, errpath = sys.argv[1:4]
master, slave = pty.openpty()
before = termios.tcgetattr(slave)
with open(errpath, "wb") as err:
    p = subprocess.Popen([ign, "run", "--disk", disk], stdin=slave, stdout=slave, stderr=err)
    time.sleep(2)
    during = termios.tcgetattr(slave)
    p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        status = "timeout"
after = termios.tcgetattr(slave)
why = []
if during == before:
    why.append("terminal not in raw mode while running")
if after != before:
    why.append("terminal settings not restored")
if status != 0:
    why.append(f"exit status {status}")
print("; ".join(why))
PY
why=$(cat "$tmp/tty.why")
if [ -z "$why" ]; then
	result PASS hardening/sigterm-terminal
else
	result FAIL hardening/sigterm-terminal "$why"
fi

# 2. The self-test hook: the event loop makes a system call no filter allows.
IGNITION_SECCOMP_SELFTEST=1 start selftest
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
	kill -KILL "$pid"
	wait "$pid"
	pid=
	result FAIL hardening/selftest-refused "still running 10 s after the refused call"
else
	wait "$pid"
	status=$?
	pid=
	line=$(grep "refused system call" "$tmp/selftest.err")
	if [ $status -eq 159 ] &&
		[ "$line" = "ignition: seccomp: refused system call uselib (134) in thread evloop" ]; then
		result PASS hardening/selftest-refused
	else
		result FAIL hardening/selftest-refused "exit $status, stderr: $(tail -n 2 "$tmp/selftest.err")"
	fi
fi

# 3. --no-seccomp: a warning, and no thread filtered.
start noseccomp --no-seccomp
sleep 2
modes=$(seccomp_modes "$pid")
stop_vm
if ! grep -q "warning: --no-seccomp" "$tmp/noseccomp.err"; then
	result FAIL hardening/no-seccomp "no warning on stderr"
elif [ "${modes#*x}" != 0 ] || [ $status -ne 0 ]; then
	result FAIL hardening/no-seccomp "Seccomp modes $modes, exit $status"
else
	result PASS hardening/no-seccomp
fi

# 4. A second signal ends a stop that is under way: strace holds the teardown's disk flush
#    for 3 s, and the second SIGTERM ends the process by that signal.
if command -v strace >/dev/null; then
	strace -f -o /dev/null -e trace=fsync -e inject=fsync:delay_enter=3000000 \
		"$ign" run --disk "$tmp/rootfs.ext4" </dev/null >/dev/null 2>"$tmp/second.err" &
	tracer=$!
	ipid=
	for _ in $(seq 50); do
		ipid=$(pgrep -P "$tracer" -x ignition)
		[ -n "$ipid" ] && [ "$(grep -c . <<<"$(ls /proc/"$ipid"/task)")" -ge 3 ] && break
		sleep 0.1
	done
	sleep 1
	kill -TERM "$ipid"
	sleep 1
	kill -TERM "$ipid"
	wait "$tracer"
	status=$?
	if [ $status -eq 143 ] && grep -q "second stop signal" "$tmp/second.err"; then
		result PASS hardening/second-signal
	else
		result FAIL hardening/second-signal "exit $status: $(tail -n 2 "$tmp/second.err")"
	fi
else
	result FAIL hardening/second-signal "no strace to hold the teardown (packages.txt: run setup.sh)"
fi

# 5. --chroot with --uid/--gid: the jailed process's root, user and groups; the vsock socket
#    and MMDS's socket (which slirp connects to by path from inside the jail, docs/mmds.md)
#    are made inside the jail, the latter owned by the ids, and both are removed at exit.
if [ "$(id -u)" -ne 0 ]; then
	result SKIP hardening/chroot-uid-gid "not root"
	result SKIP hardening/namespaces "not root"
	exit 0
fi
mkdir "$tmp/jail"
chown 65534:65534 "$tmp/jail"
touch "$tmp/jail/marker"
echo '{"latest": {}}' >"$tmp/mmds.json"
start jail --chroot "$tmp/jail" --uid 65534 --gid 65534 --vsock 3,/v.sock \
	--net user --mmds "$tmp/mmds.json"
wait_filtered "$pid"
mmds=$(stat -c '%F %u:%g' "$tmp"/jail/ignition-mmds-*/http 2>&1)
ids=$(awk '/^(Uid|Gid):/ {print $1, $2, $3, $4, $5}' /proc/$pid/status | tr '\n' ' ')
groups=$(awk '/^Groups:/ {print $2}' /proc/$pid/status)
jroot=$(readlink /proc/$pid/root)
sock=no
[ -S "$tmp/jail/v.sock" ] && sock=yes
stop_vm
want="Uid: 65534 65534 65534 65534 Gid: 65534 65534 65534 65534 "
if [ "$ids" != "$want" ] || [ -n "$groups" ] || [ "$jroot" != "$tmp/jail" ]; then
	result FAIL hardening/chroot-uid-gid "ids '$ids' groups '$groups' root '$jroot'"
elif [ $sock != yes ] || [ "$mmds" != "socket 65534:65534" ] || [ "$(ls "$tmp/jail")" != marker ] ||
	[ $status -ne 0 ]; then
	result FAIL hardening/chroot-uid-gid "vsock socket in the jail: $sock, MMDS socket: $mmds, left: $(ls "$tmp/jail"), exit $status"
else
	result PASS hardening/chroot-uid-gid
fi

# 6. --new-ns mount,pid,net with --chroot: ignition is PID 1 of its own PID namespace (its
#    parent waits and forwards signals), in its own mount and network namespaces, with the jail
#    as its root.
start ns --new-ns mount,pid,net --chroot "$tmp/jail"
child=
for _ in $(seq 50); do
	read -r child _ <"/proc/$pid/task/$pid/children" 2>/dev/null
	[ -n "$child" ] && break
	sleep 0.1
done
why=
if [ -z "$child" ]; then
	why="no child process"
else
	wait_filtered "$child" || why="child Seccomp modes $(seccomp_modes "$child")"
	for ns in mnt pid net; do
		[ "$(readlink /proc/self/ns/$ns)" != "$(readlink /proc/"$child"/ns/$ns)" ] || why="$why; same $ns namespace"
	done
	[ "$(awk '/^NSpid:/ {print $3}' /proc/"$child"/status)" = 1 ] || why="$why; not PID 1 inside"
	[ -e /proc/"$child"/root/marker ] || why="$why; root is not the jail"
fi
stop_vm
[ $status -eq 0 ] || why="$why; exit $status after SIGTERM"
if [ -z "$why" ]; then
	result PASS hardening/namespaces
else
	result FAIL hardening/namespaces "${why#; }"
fi
