#!/usr/bin/env bash
# Bad input gets one clear line on stderr and a non-zero exit, never a crash.  No KVM needed
# for most of these (they fail before the VM is created); the /dev/kvm case is checked too.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
ign=${IGNITION:-$here/../../build/ignition}
runas=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_error NAME WANT_STATUS PATTERN -- ARGS...
expect_error() {
	local name=$1 want=$2 pattern=$3
	shift 4
	local err status lines
	err=$($runas "$ign" "$@" 2>&1 >/dev/null </dev/null)
	status=$?
	lines=$(printf '%s\n' "$err" | grep -c .)
	if [ $status -ne "$want" ]; then
		result FAIL "cli/$name" "exit status $status, want $want: $err"
	elif [ "$lines" -ne 1 ]; then
		result FAIL "cli/$name" "want one line on stderr, got $lines: $err"
	elif ! printf '%s' "$err" | grep -q -E -e "$pattern"; then
		result FAIL "cli/$name" "stderr does not match /$pattern/: $err"
	else
		result PASS "cli/$name"
	fi
}

printf 'not a kernel\n%.0s' {1..600} >"$tmp/notakernel"
: >"$tmp/empty"
# A tiny but well-formed bzImage header, so the checks after the format probe are reached.
python3 - "$tmp/fake-bzimage" <<'PY'
import struct, sys
img = bytearray(8192)
img[0x1f1] = 1
struct.pack_into("<H", img, 0x1fe, 0xaa55)
img[0x200:0x202] = b"\xeb\x6a"
struct.pack_into("<I", img, 0x202, 0x53726448)
struct.pack_into("<H", img, 0x206, 0x020f)
img[0x211] = 1
struct.pack_into("<H", img, 0x236, 1)
struct.pack_into("<I", img, 0x260, 0x100000)
open(sys.argv[1], "wb").write(img)
PY
truncate -s 1M "$tmp/disk.img"
truncate -s 1M "$tmp/disk2.img"

expect_error missing-kernel 1 "kernel '/nonexistent/vmlinuz': No such file" -- run --kernel /nonexistent/vmlinuz
expect_error kernel-is-directory 1 "is a directory" -- run --kernel "$tmp"
expect_error not-a-kernel 1 "not a Linux kernel" -- run --kernel "$tmp/notakernel"
expect_error empty-kernel 1 "empty" -- run --kernel "$tmp/empty"
expect_error missing-initrd 1 "initrd '/nonexistent': No such file" -- run --kernel "$tmp/fake-bzimage" --initrd /nonexistent
expect_error missing-disk 1 "disk '/nonexistent.img': No such file" -- run --kernel "$tmp/fake-bzimage" --disk /nonexistent.img
expect_error smp-zero 2 "--smp: '0'" -- run --smp 0
expect_error smp-too-many 2 "--smp: '33'" -- run --smp 33
expect_error mem-not-a-number 2 "--mem: 'abc'" -- run --mem abc
expect_error unknown-option 2 "unknown option" -- run --frobnicate
expect_error unknown-command 2 "unknown command" -- launch
expect_error missing-value 2 "needs a value" -- run --kernel

if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
	chmod 600 "$tmp/fake-bzimage"
	chmod 755 "$tmp"
	# Run as nobody: no read permission, and no access to /dev/kvm.
	runas="runuser -u nobody --"
	expect_error unreadable-kernel 1 "Permission denied" -- run --kernel "$tmp/fake-bzimage"
	chmod 644 "$tmp/fake-bzimage"
	chmod 666 "$tmp/disk.img"
	# No access to /dev/kvm (absent here, or not in the kvm group): a clear line about it.
	expect_error no-kvm-access 1 "/dev/kvm" -- run --kernel "$tmp/fake-bzimage" --disk "$tmp/disk.img"
	runas=
else
	result SKIP cli/unreadable-kernel "no 'nobody' user or runuser"
fi

# A disk image another process holds read-write (here a POSIX lock from lockf(3), which
# conflicts with ignition's OFD lock; flock(1) would not): one line, exit 1, for a writable and
# a read-only open alike.  The image is opened after the VM exists, so this needs /dev/kvm.
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("locked")
time.sleep(60)' "$tmp/disk.img" "$tmp/locked" &
	holder=$!
	for _ in $(seq 100); do [ -s "$tmp/locked" ] && break; sleep 0.1; done
	# Without the lock the fake kernel would run: bound it.
	runas="timeout 20"
	expect_error disk-locked 1 "disk '.*disk.img' is in use by another process \(locked read-write\)" \
		-- run --kernel "$tmp/fake-bzimage" --disk "$tmp/disk.img"
	expect_error disk-locked-ro 1 "disk '.*disk.img' is in use by another process \(locked read-write\)" \
		-- run --kernel "$tmp/fake-bzimage" --disk "$tmp/disk.img,ro"
	expect_error disk-given-twice 1 "disk '.*/./disk2.img' is the same file as disk 0" \
		-- run --kernel "$tmp/fake-bzimage" --disk "$tmp/disk2.img" --disk "$tmp/./disk2.img"
	runas=
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
else
	result SKIP cli/disk-locked "no access to /dev/kvm"
fi

# Snapshots: refused restores and store commands (no KVM needed: they fail before a VM).
expect_error restore-missing 1 "snapshot '.*nosuch': No such file or directory" \
	-- run --restore "$tmp/nosuch"
mkdir -p "$tmp/notasnap"
expect_error restore-not-a-snapshot 1 "snapshot '.*notasnap': cannot read its state file" \
	-- run --restore "$tmp/notasnap"
printf 'IGNSNAP\0garbage-garbage' >"$tmp/notasnap/state"
expect_error restore-bad-state 1 "state file refused: checksum mismatch" \
	-- run --restore "$tmp/notasnap"
expect_error restore-with-mem 2 "--mem cannot be used with --restore" \
	-- run --restore "$tmp/notasnap" --mem 512
expect_error snapshot-info-not-a-snapshot 1 "'.*notasnap' is not a snapshot" \
	-- snapshot info "$tmp/notasnap"
expect_error snapshot-rm-not-a-snapshot 1 "'.*notasnap' is not a snapshot" \
	-- snapshot rm "$tmp/notasnap"
[ -e "$tmp/notasnap/state" ] || result FAIL cli/snapshot-rm-kept "snapshot rm removed a non-snapshot"
expect_error snapshot-unknown-command 2 "unknown snapshot command 'frobnicate'" \
	-- snapshot frobnicate
expect_error control-path-too-long 2 "--control: bad socket path" \
	-- run --control "$tmp/$(printf 'x%.0s' {1..120})"

# --help documents every flag and exits 0.
if out=$("$ign" run --help) && for f in --kernel --initrd --disk --cmdline --smp --mem --no-acpi \
	--restore --snapshot-dir --control; do
	printf '%s' "$out" | grep -q -- "$f" || exit 1
done; then
	result PASS cli/help-lists-flags
else
	result FAIL cli/help-lists-flags "run --help misses a flag or fails"
fi
