/* The command line (src/core/cli.c) and the small parsers behind it: the input is split at NUL
 * bytes into the arguments after "run" (at most 64), each in its own exact-size allocation.
 * cli_parse() must either fail with a one-line reason or return options inside their documented
 * ranges; each argument is also fed to the hostfwd, MAC and CPU-template parsers directly. */
#include "arch/x86/cpuid.h"
#include "core/cli.h"
#include "devices/virtio/net.h"
#include "harness.h"
#include "net/slirp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static void check_opts(const struct cli_opts *o, int argc, char **argv)
{
	if (o->help)
		return;
	FUZZ_CHECK(o->m.nr_disks >= 0 && o->m.nr_disks <= CLI_MAX_DISKS);
	for (int i = 0; i < o->m.nr_disks; i++) {
		size_t n = strnlen(o->m.disks[i].path, sizeof(o->m.disks[i].path));

		FUZZ_CHECK(n > 0 && n < sizeof(o->m.disks[i].path));
	}
	FUZZ_CHECK(o->m.nr_nets >= 0 && o->m.nr_nets <= CLI_MAX_NETS);
	for (int i = 0; i < o->m.nr_nets; i++) {
		const struct machine_net *n = &o->m.nets[i];

		FUZZ_CHECK(n->nr_fwd >= 0 && n->nr_fwd <= NET_SLIRP_MAX_FWD);
		FUZZ_CHECK(strnlen(n->tap, sizeof(n->tap)) < sizeof(n->tap));
		FUZZ_CHECK(n->kind == MACHINE_NET_USER || n->tap[0]);
		FUZZ_CHECK(!n->has_mac || !(n->mac[0] & 1));
		for (int k = 0; k < n->nr_fwd; k++)
			FUZZ_CHECK(n->fwd[k].host_port && n->fwd[k].guest_port);
	}
	FUZZ_CHECK(o->m.smp >= 1 && o->m.smp <= 32);
	FUZZ_CHECK(o->m.mem_mib >= 16 && o->m.mem_mib <= 1048576);
	FUZZ_CHECK(!o->m.vsock_path[0] || (o->m.vsock_cid >= 3 && o->m.vsock_cid != 0xffffffffu &&
					   *o->m.vsock_path && strlen(o->m.vsock_path) <= 96));
	FUZZ_CHECK(!o->m.balloon || o->m.balloon_stats_s <= 3600);
	FUZZ_CHECK(o->m.balloon_step_mib <= 1048576);
	FUZZ_CHECK(!o->initrd || o->kernel);
	FUZZ_CHECK(!strcmp(o->guest, "min") || !strcmp(o->guest, "stock"));
	(void)argc;
	(void)argv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *args[MAX_ARGS + 1], *argv[MAX_ARGS + 2];
	static struct cli_opts o;
	char err[256];
	int argc = 0, nargs = 0, ret;
	size_t i = 0;

	while (i < size && nargs < MAX_ARGS) {
		const uint8_t *end = memchr(data + i, 0, size - i);
		size_t len = end ? (size_t)(end - (data + i)) : size - i;

		args[nargs] = malloc(len + 1);
		if (!args[nargs])
			fuzz_fail("out of memory");
		memcpy(args[nargs], data + i, len);
		args[nargs][len] = '\0';
		nargs++;
		i += len + 1;
	}
	argv[argc++] = (char *)"run";
	for (int k = 0; k < nargs; k++)
		argv[argc++] = args[k];
	argv[argc] = NULL;

	err[0] = '\0';
	ret = cli_parse(argc, argv, &o, err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret == -EINVAL);
		if (!err[0])
			fuzz_fail("cli_parse failed without a reason");
	} else {
		check_opts(&o, argc, argv);
	}

	for (int k = 0; k < nargs; k++) {
		struct net_slirp_fwd f;
		enum cpu_template t;
		uint8_t mac[6];

		if (!net_slirp_parse_fwd(args[k], &f))
			FUZZ_CHECK(f.host_port && f.guest_port);
		if (!virtio_net_parse_mac(args[k], mac))
			FUZZ_CHECK(strlen(args[k]) == 17);
		if (!cpuid_parse_template(args[k], &t))
			FUZZ_CHECK(t == CPU_TEMPLATE_AUTO || t == CPU_TEMPLATE_HOST ||
				   t == CPU_TEMPLATE_NO_PV_HC);
	}
	for (int k = 0; k < nargs; k++)
		free(args[k]);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char full[] =
		"--kernel\0/k/bzImage\0--initrd\0/k/initrd\0--disk\0/d/root.img\0--disk\0"
		"/d/data.img,ro\0--cmdline\0console=ttyS0\0--append\0quiet\0--smp\0004\0--mem\0"
		"512\0--no-acpi\0--cpu-template\0no-pv-hypercalls\0--net\0"
		"user,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.15:53,"
		"mac=52:54:00:12:34:56\0--net\0tap=tap0\0--mac\00002:00:00:00:00:01\0--vsock\0"
		"3,/tmp/v.sock\0--balloon=step=64,stats=2\0--no-rng\0--guest\0stock";
	static const char balloon[] = "--balloon\0step=32\0--vsock\0004294967294,/x\0-h";
	static struct fuzz_seed s;

	if (!fuzz_want_seeds())
		return 0;
	seed_bytes(&s, full, sizeof(full) - 1);
	fuzz_seed_save(&s, "full");
	seed_bytes(&s, balloon, sizeof(balloon) - 1);
	fuzz_seed_save(&s, "balloon");
	return 0;
}
