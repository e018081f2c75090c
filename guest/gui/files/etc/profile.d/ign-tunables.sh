# The user-space AVX mask (guest/README.md, "User-space AVX mask") comes from the kernel
# command line through init's environment; take it from /proc/cmdline if this shell was
# started some other way without it.
if [ -z "${GLIBC_TUNABLES:-}" ]; then
	for a in $(cat /proc/cmdline); do
		case $a in GLIBC_TUNABLES=*) export "$a" ;; esac
	done
fi
