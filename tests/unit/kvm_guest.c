/* Hand-written guest code under real KVM (kvm_guest.h). */
#include "kvm_guest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "core/gmem.h"
#include "core/machine.h"
#include "core/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

bool kvm_guest_unavailable(int ret)
{
	return ret == -ENOENT || ret == -EACCES || ret == -EPERM;
}

void kvm_guest_machine_or_skip(struct machine *m, const struct machine_config *cfg,
			       struct machine_env *env, const char *what)
{
	char err[512] = "";
	int ret = machine_create(m, cfg, env, err, sizeof(err));

	if (kvm_guest_unavailable(ret)) {
		close(env->console_fd);
		print_message("no usable /dev/kvm (%s): skipping\n", err);
		skip();
	}
	if (ret)
		fail_msg("%s: machine_create: %s", what, err);
}

void kg_bytes(struct kvm_guest_code *c, const void *p, size_t n)
{
	assert_true(n <= sizeof(c->buf) - c->n);
	memcpy(c->buf + c->n, p, n);
	c->n += n;
}

void kg_mov64(struct kvm_guest_code *c, enum kvm_guest_reg reg, uint64_t imm)
{
	uint8_t op[10] = { 0x48, (uint8_t)(0xb8 + reg) }; /* REX.W B8+r io */

	memcpy(op + 2, &imm, 8);
	kg_bytes(c, op, sizeof(op));
}

void kg_store8_rax(struct kvm_guest_code *c, uint8_t imm)
{
	kg_bytes(c, (const uint8_t[]){ 0xc6, 0x00, imm }, 3);
}

void kg_out(struct kvm_guest_code *c, uint16_t port, uint8_t al)
{
	kg_bytes(c, (const uint8_t[]){ 0xb0, al }, 2); /* mov al, imm8 */
	kg_bytes(c, (const uint8_t[]){ 0xba, (uint8_t)port, (uint8_t)(port >> 8), 0, 0 }, 5);
	kg_bytes(c, (const uint8_t[]){ 0xee }, 1); /* out dx, al */
}

void kg_spin(struct kvm_guest_code *c)
{
	kg_bytes(c, (const uint8_t[]){ 0xeb, 0xfe }, 2);
}

int kvm_guest_install(const struct gmem *gm, const struct kvm_guest_code *c)
{
	uint64_t *pml4, *pdpt, *pd;
	uint8_t *code;
	int ret;

	ret = boot_setup_page_tables(gm);
	if (ret)
		return ret;
	pml4 = gmem_ptr(gm, LAYOUT_PML4_ADDR, 0x1000);
	pdpt = gmem_ptr(gm, LAYOUT_PDPT_ADDR, 0x1000);
	pd = gmem_ptr(gm, LAYOUT_PD_ADDR, 4 * 0x1000);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	/* Accessed (bit 5) on every level, dirty (bit 6) on the 2 MiB leaves (SDM vol. 3,
	 * 4.8 "Accessed and Dirty Flags"): set bits are never written again. */
	pml4[0] |= 0x20;
	for (int i = 0; i < 4; i++)
		pdpt[i] |= 0x20;
	for (int i = 0; i < 4 * 512; i++)
		pd[i] |= 0x60;
	/* Not gmem_write: the set-up is no VMM write a dirty-log consumer should see. */
	code = gmem_ptr(gm, KVM_GUEST_CODE_GPA, c->n);
	if (!code)
		return -EFAULT;
	memcpy(code, c->buf, c->n);
	return 0;
}

int kvm_guest_run(struct vcpu *v, uint16_t *port, uint8_t *value)
{
	struct kvm_run *run = v->run;

	/* A guest that never writes its port is a broken test, not a hang. */
	for (int i = 0; i < 1000; i++) {
		run->immediate_exit = 0;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT) {
			*port = run->io.port;
			*value = *((uint8_t *)run + run->io.data_offset);
			run->immediate_exit = 1;
			if (ioctl(v->fd, KVM_RUN, 0) == 0 || errno != EINTR)
				return -EIO;
			run->immediate_exit = 0;
			return 0;
		}
		if (run->exit_reason != KVM_EXIT_INTR) {
			*port = (uint16_t)run->exit_reason;
			return -EIO;
		}
	}
	return -ETIMEDOUT;
}
