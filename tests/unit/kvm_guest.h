/* A few instructions of hand-written 64-bit guest code under real KVM, for the unit tests
 * that need a real VM (milliseconds, no kernel): an emitter for the handful of instructions
 * they use, the set-up that lets the code run (identity-mapped page tables, vCPU 0 entering
 * 64-bit mode at KVM_GUEST_CODE_GPA) and a vCPU driven from the test's own thread. */
#ifndef IGNITION_TESTS_KVM_GUEST_H
#define IGNITION_TESTS_KVM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gmem;
struct machine;
struct machine_config;
struct machine_env;
struct vcpu;

#define KVM_GUEST_CODE_GPA 0x100000ull

/* General-purpose registers by their encoding. */
enum kvm_guest_reg { KG_RAX = 0, KG_RCX = 1, KG_RDX = 2, KG_RBX = 3, KG_RSI = 6, KG_RDI = 7 };

struct kvm_guest_code {
	uint8_t buf[1024];
	size_t n;
};

/* The error of vm_create/machine_create that means "no usable /dev/kvm here": skip. */
bool kvm_guest_unavailable(int ret);
/* machine_create, or a cmocka skip where kvm_guest_unavailable (env->console_fd is closed
 * first); any other error fails the test, naming `what`. */
void kvm_guest_machine_or_skip(struct machine *m, const struct machine_config *cfg,
			       struct machine_env *env, const char *what);
/* Append raw bytes (the test fails if the buffer is full). */
void kg_bytes(struct kvm_guest_code *c, const void *p, size_t n);
/* mov reg, imm64 */
void kg_mov64(struct kvm_guest_code *c, enum kvm_guest_reg reg, uint64_t imm);
/* mov byte [rax], imm8 */
void kg_store8_rax(struct kvm_guest_code *c, uint8_t imm);
/* mov edx, port; out dx, al: an exit the test sees (kvm_guest_run) with al as its value. */
void kg_out(struct kvm_guest_code *c, uint16_t port, uint8_t al);
/* jmp $ */
void kg_spin(struct kvm_guest_code *c);

/* Copy the code to KVM_GUEST_CODE_GPA and write the boot page tables with their accessed and
 * dirty bits already set: the CPU (or KVM's shadow MMU) would otherwise set them on the first
 * walk, a guest-memory write the dirty log would show besides the code's own stores. */
int kvm_guest_install(const struct gmem *gm, const struct kvm_guest_code *c);

/* Run vCPU v on this thread (no vCPU thread: vm->pause.started stays 0) until the guest writes an
 * I/O port, then complete that exit (a KVM_RUN with immediate_exit, as vm_pause does) so the
 * vCPU is at a clean instruction boundary, RIP past the OUT.  *port and *value (al) say what
 * was written.  0, -EIO on any other exit (its reason in *port), or -errno. */
int kvm_guest_run(struct vcpu *v, uint16_t *port, uint8_t *value);

#endif
