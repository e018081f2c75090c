/* vCPU state: KVM get/set and the snapshot record (layout in docs/snapshots.md). */
#include "core/vcpu_state.h"

#include "core/vcpu.h"
#include "core/vm.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define VCPU_STATE_VERSION 1
#define MSR_TSC_AUX	   0xc0000103u

int vcpu_state_msr_list(int kvm_fd, uint32_t *out, unsigned max)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *list;
	unsigned n = 0;
	bool have_aux = false;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	list = calloc(1, sizeof(*list) + (probe.nmsrs + 1) * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int ret = -errno;

		free(list);
		return ret;
	}
	for (uint32_t i = 0; i < list->nmsrs && n < max; i++) {
		out[n++] = list->indices[i];
		have_aux |= list->indices[i] == MSR_TSC_AUX;
	}
	if (!have_aux && n < max)
		out[n++] = MSR_TSC_AUX;
	free(list);
	return (int)n;
}

/* KVM_GET_MSRS stops at the first MSR this vCPU cannot read: drop that one and go on.  The
 * vCPU's own buffer (struct vcpu's msr_buf, VCPU_STATE_MAX_MSRS entries): this runs on its
 * thread, as does set_msrs. */
static int get_msrs(struct vcpu *v, struct vcpu_state *st)
{
	struct kvm_msrs *buf = v->msr_buf;
	unsigned n = 0, want = v->vm->nr_msr_index;
	const uint32_t *idx = v->vm->msr_index;
	int ret = 0;

	if (want > VCPU_STATE_MAX_MSRS)
		return -E2BIG;
	for (unsigned i = 0; i < want;) {
		int got;

		buf->nmsrs = want - i;
		buf->pad = 0;
		for (unsigned j = 0; j < want - i; j++) {
			buf->entries[j].index = idx[i + j];
			buf->entries[j].reserved = 0;
			buf->entries[j].data = 0;
		}
		got = ioctl(v->fd, KVM_GET_MSRS, buf);
		if (got < 0) {
			ret = -errno;
			break;
		}
		for (int j = 0; j < got; j++)
			st->msrs[n++] = buf->entries[j];
		i += (unsigned)got + 1; /* skip the unreadable one */
	}
	st->nr_msrs = n;
	return ret;
}

int vcpu_state_get(struct vcpu *v, struct vcpu_state *st)
{
	struct kvm_xsave *xs;
	int ret;

	memset(st, 0, offsetof(struct vcpu_state, xsave));
	if (ioctl(v->fd, KVM_GET_MP_STATE, &st->mp) < 0 ||
	    ioctl(v->fd, KVM_GET_REGS, &st->regs) < 0)
		return -errno;
	if (v->vm->has_sregs2) {
		struct kvm_sregs2 s2;

		if (ioctl(v->fd, KVM_GET_SREGS2, &s2) < 0)
			return -errno;
		memcpy(&st->sregs, &s2, offsetof(struct kvm_sregs, interrupt_bitmap));
		st->sregs2_flags = s2.flags;
		memcpy(st->pdptrs, s2.pdptrs, sizeof(st->pdptrs));
	} else if (ioctl(v->fd, KVM_GET_SREGS, &st->sregs) < 0) {
		return -errno;
	}
	/* XSAVE2 size (>= 4096) as the VM reported it; plain XSAVE is the 4096-byte area. */
	st->xsave_size = (uint32_t)v->vm->xsave_size;
	if (st->xsave_size < sizeof(struct kvm_xsave) || st->xsave_size > VCPU_STATE_MAX_XSAVE)
		return -EINVAL;
	xs = (struct kvm_xsave *)(void *)st->xsave;
	if (ioctl(v->fd,
		  v->vm->xsave_size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2
								    : KVM_GET_XSAVE,
		  xs) < 0)
		return -errno;
	if (ioctl(v->fd, KVM_GET_XCRS, &st->xcrs) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &st->dregs) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &st->lapic) < 0)
		return -errno;
	ret = get_msrs(v, st);
	if (ret)
		return ret;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &st->events) < 0)
		return -errno;
	return 0;
}

static int set_msrs(struct vcpu *v, const struct vcpu_state *st)
{
	struct kvm_msrs *buf = v->msr_buf;
	int got;

	if (st->nr_msrs > VCPU_STATE_MAX_MSRS)
		return -EINVAL;
	buf->nmsrs = st->nr_msrs;
	buf->pad = 0;
	memcpy(buf->entries, st->msrs, st->nr_msrs * sizeof(st->msrs[0]));
	got = ioctl(v->fd, KVM_SET_MSRS, buf);
	if (got < 0)
		return -errno;
	/* KVM sets them in order and stops at one it refuses: a snapshot from a host with MSRs
	 * this one lacks cannot be resumed faithfully. */
	return (uint32_t)got == st->nr_msrs ? 0 : -EINVAL;
}

int vcpu_state_set(struct vcpu *v, const struct vcpu_state *st)
{
	struct kvm_vcpu_events ev = st->events;

	if (st->xsave_size > (uint32_t)v->vm->xsave_size && v->vm->xsave_size > 0)
		return -EINVAL;
	if (ioctl(v->fd, KVM_SET_MP_STATE, &st->mp) < 0 ||
	    ioctl(v->fd, KVM_SET_REGS, &st->regs) < 0)
		return -errno;
	if (v->vm->has_sregs2) {
		struct kvm_sregs2 s2;

		memset(&s2, 0, sizeof(s2));
		memcpy(&s2, &st->sregs, offsetof(struct kvm_sregs, interrupt_bitmap));
		s2.flags = st->sregs2_flags;
		memcpy(s2.pdptrs, st->pdptrs, sizeof(s2.pdptrs));
		if (ioctl(v->fd, KVM_SET_SREGS2, &s2) < 0)
			return -errno;
	} else if (ioctl(v->fd, KVM_SET_SREGS, &st->sregs) < 0) {
		return -errno;
	}
	/* KVM_SET_XSAVE reads the XSAVE2 size the VM reported; a smaller saved area is padded
	 * with zeroes (the components it lacks are in their init state). */
	if (ioctl(v->fd, KVM_SET_XSAVE, st->xsave) < 0 ||
	    ioctl(v->fd, KVM_SET_XCRS, &st->xcrs) < 0 ||
	    ioctl(v->fd, KVM_SET_DEBUGREGS, &st->dregs) < 0 ||
	    ioctl(v->fd, KVM_SET_LAPIC, &st->lapic) < 0)
		return -errno;
	if (set_msrs(v, st))
		return -EINVAL;
	/* Restore every part of the events that KVM saved (NMI, SIPI, shadow, SMM, payload). */
	ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		    KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |
		    KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		    KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	return 0;
}

static void put_seg(struct snap_writer *w, const struct kvm_segment *s)
{
	snap_put_u64(w, s->base);
	snap_put_u32(w, s->limit);
	snap_put_u16(w, s->selector);
	snap_put_u8(w, s->type);
	snap_put_u8(w, s->present);
	snap_put_u8(w, s->dpl);
	snap_put_u8(w, s->db);
	snap_put_u8(w, s->s);
	snap_put_u8(w, s->l);
	snap_put_u8(w, s->g);
	snap_put_u8(w, s->avl);
	snap_put_u8(w, s->unusable);
}

static void get_seg(struct snap_reader *r, struct kvm_segment *s)
{
	s->base = snap_get_u64(r);
	s->limit = snap_get_u32(r);
	s->selector = snap_get_u16(r);
	s->type = snap_get_u8(r);
	s->present = snap_get_u8(r);
	s->dpl = snap_get_u8(r);
	s->db = snap_get_u8(r);
	s->s = snap_get_u8(r);
	s->l = snap_get_u8(r);
	s->g = snap_get_u8(r);
	s->avl = snap_get_u8(r);
	s->unusable = snap_get_u8(r);
	if (s->type > 15 || s->present > 1 || s->dpl > 3 || s->db > 1 || s->s > 1 || s->l > 1 ||
	    s->g > 1 || s->avl > 1 || s->unusable > 1)
		snap_fail(r);
}

static void put_dt(struct snap_writer *w, const struct kvm_dtable *d)
{
	snap_put_u64(w, d->base);
	snap_put_u16(w, d->limit);
}

static void get_dt(struct snap_reader *r, struct kvm_dtable *d)
{
	d->base = snap_get_u64(r);
	d->limit = snap_get_u16(r);
}

/* The general-purpose registers in struct kvm_regs order (named, not indexed past a field). */
#define NR_GPRS 18
#define GPRS(r)                                                                                    \
	{                                                                                          \
		&(r)->rax, &(r)->rbx, &(r)->rcx, &(r)->rdx, &(r)->rsi, &(r)->rdi, &(r)->rsp,       \
			&(r)->rbp, &(r)->r8, &(r)->r9, &(r)->r10, &(r)->r11, &(r)->r12, &(r)->r13, \
			&(r)->r14, &(r)->r15, &(r)->rip, &(r)->rflags                              \
	}

void vcpu_state_save(const struct vcpu_state *st, struct snap_writer *w, const char *id)
{
	const __u64 *gpr[NR_GPRS] = GPRS(&st->regs);
	const struct kvm_sregs *s = &st->sregs;
	const struct kvm_vcpu_events *e = &st->events;

	snap_rec_begin(w, SNAP_REC_VCPU, VCPU_STATE_VERSION, id);
	snap_put_u32(w, st->mp.mp_state);
	for (int i = 0; i < NR_GPRS; i++)
		snap_put_u64(w, *gpr[i]);
	put_seg(w, &s->cs);
	put_seg(w, &s->ds);
	put_seg(w, &s->es);
	put_seg(w, &s->fs);
	put_seg(w, &s->gs);
	put_seg(w, &s->ss);
	put_seg(w, &s->tr);
	put_seg(w, &s->ldt);
	put_dt(w, &s->gdt);
	put_dt(w, &s->idt);
	snap_put_u64(w, s->cr0);
	snap_put_u64(w, s->cr2);
	snap_put_u64(w, s->cr3);
	snap_put_u64(w, s->cr4);
	snap_put_u64(w, s->cr8);
	snap_put_u64(w, s->efer);
	snap_put_u64(w, s->apic_base);
	for (int i = 0; i < 4; i++)
		snap_put_u64(w, s->interrupt_bitmap[i]);
	snap_put_u64(w, st->sregs2_flags);
	for (int i = 0; i < 4; i++)
		snap_put_u64(w, st->pdptrs[i]);
	/* XSAVE area: the architecture's own little-endian layout, kept as bytes. */
	snap_put_u32(w, st->xsave_size);
	snap_put_bytes(w, st->xsave, st->xsave_size <= VCPU_STATE_MAX_XSAVE ? st->xsave_size : 0);
	snap_put_u32(w, st->xcrs.nr_xcrs);
	snap_put_u32(w, st->xcrs.flags);
	for (uint32_t i = 0; i < st->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
		snap_put_u32(w, st->xcrs.xcrs[i].xcr);
		snap_put_u64(w, st->xcrs.xcrs[i].value);
	}
	for (int i = 0; i < 4; i++)
		snap_put_u64(w, st->dregs.db[i]);
	snap_put_u64(w, st->dregs.dr6);
	snap_put_u64(w, st->dregs.dr7);
	snap_put_u64(w, st->dregs.flags);
	/* The LAPIC register page: the architecture's layout, kept as bytes. */
	snap_put_bytes(w, st->lapic.regs, sizeof(st->lapic.regs));
	snap_put_u32(w, st->nr_msrs);
	for (uint32_t i = 0; i < st->nr_msrs && i < VCPU_STATE_MAX_MSRS; i++) {
		snap_put_u32(w, st->msrs[i].index);
		snap_put_u64(w, st->msrs[i].data);
	}
	snap_put_u8(w, e->exception.injected);
	snap_put_u8(w, e->exception.nr);
	snap_put_u8(w, e->exception.has_error_code);
	snap_put_u8(w, e->exception.pending);
	snap_put_u32(w, e->exception.error_code);
	snap_put_u8(w, e->interrupt.injected);
	snap_put_u8(w, e->interrupt.nr);
	snap_put_u8(w, e->interrupt.soft);
	snap_put_u8(w, e->interrupt.shadow);
	snap_put_u8(w, e->nmi.injected);
	snap_put_u8(w, e->nmi.pending);
	snap_put_u8(w, e->nmi.masked);
	snap_put_u32(w, e->sipi_vector);
	snap_put_u32(w, e->flags);
	snap_put_u8(w, e->smi.smm);
	snap_put_u8(w, e->smi.pending);
	snap_put_u8(w, e->smi.smm_inside_nmi);
	snap_put_u8(w, e->smi.latched_init);
	snap_put_u8(w, e->triple_fault.pending);
	snap_put_u8(w, e->exception_has_payload);
	snap_put_u64(w, e->exception_payload);
}

int vcpu_state_load(struct vcpu_state *st, const struct snap_file *f, const char *id)
{
	struct snap_reader r;
	__u64 *gpr[NR_GPRS] = GPRS(&st->regs);
	struct kvm_sregs *s = &st->sregs;
	struct kvm_vcpu_events *e = &st->events;

	if (snap_file_find(f, SNAP_REC_VCPU, id, &r))
		return -ENOENT;
	if (r.version != VCPU_STATE_VERSION)
		return -EINVAL;
	memset(st, 0, offsetof(struct vcpu_state, xsave));
	st->mp.mp_state = snap_get_u32(&r);
	if (st->mp.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
		snap_fail(&r);
	for (int i = 0; i < NR_GPRS; i++)
		*gpr[i] = snap_get_u64(&r);
	get_seg(&r, &s->cs);
	get_seg(&r, &s->ds);
	get_seg(&r, &s->es);
	get_seg(&r, &s->fs);
	get_seg(&r, &s->gs);
	get_seg(&r, &s->ss);
	get_seg(&r, &s->tr);
	get_seg(&r, &s->ldt);
	get_dt(&r, &s->gdt);
	get_dt(&r, &s->idt);
	s->cr0 = snap_get_u64(&r);
	s->cr2 = snap_get_u64(&r);
	s->cr3 = snap_get_u64(&r);
	s->cr4 = snap_get_u64(&r);
	s->cr8 = snap_get_u64(&r);
	s->efer = snap_get_u64(&r);
	s->apic_base = snap_get_u64(&r);
	for (int i = 0; i < 4; i++)
		s->interrupt_bitmap[i] = snap_get_u64(&r);
	st->sregs2_flags = snap_get_u64(&r);
	for (int i = 0; i < 4; i++)
		st->pdptrs[i] = snap_get_u64(&r);
	st->xsave_size = snap_get_u32(&r);
	if (st->xsave_size < sizeof(struct kvm_xsave) || st->xsave_size > VCPU_STATE_MAX_XSAVE) {
		snap_fail(&r);
		return -EINVAL;
	}
	memset(st->xsave, 0, sizeof(st->xsave));
	snap_get_bytes(&r, st->xsave, st->xsave_size);
	st->xcrs.nr_xcrs = snap_get_u32(&r);
	st->xcrs.flags = snap_get_u32(&r);
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return -EINVAL;
	for (uint32_t i = 0; i < st->xcrs.nr_xcrs; i++) {
		st->xcrs.xcrs[i].xcr = snap_get_u32(&r);
		st->xcrs.xcrs[i].value = snap_get_u64(&r);
	}
	for (int i = 0; i < 4; i++)
		st->dregs.db[i] = snap_get_u64(&r);
	st->dregs.dr6 = snap_get_u64(&r);
	st->dregs.dr7 = snap_get_u64(&r);
	st->dregs.flags = snap_get_u64(&r);
	snap_get_bytes(&r, st->lapic.regs, sizeof(st->lapic.regs));
	st->nr_msrs = snap_get_u32(&r);
	if (st->nr_msrs > VCPU_STATE_MAX_MSRS)
		return -EINVAL;
	for (uint32_t i = 0; i < st->nr_msrs; i++) {
		st->msrs[i].index = snap_get_u32(&r);
		st->msrs[i].data = snap_get_u64(&r);
	}
	e->exception.injected = snap_get_u8(&r);
	e->exception.nr = snap_get_u8(&r);
	e->exception.has_error_code = snap_get_u8(&r);
	e->exception.pending = snap_get_u8(&r);
	e->exception.error_code = snap_get_u32(&r);
	e->interrupt.injected = snap_get_u8(&r);
	e->interrupt.nr = snap_get_u8(&r);
	e->interrupt.soft = snap_get_u8(&r);
	e->interrupt.shadow = snap_get_u8(&r);
	e->nmi.injected = snap_get_u8(&r);
	e->nmi.pending = snap_get_u8(&r);
	e->nmi.masked = snap_get_u8(&r);
	e->sipi_vector = snap_get_u32(&r);
	e->flags = snap_get_u32(&r);
	e->smi.smm = snap_get_u8(&r);
	e->smi.pending = snap_get_u8(&r);
	e->smi.smm_inside_nmi = snap_get_u8(&r);
	e->smi.latched_init = snap_get_u8(&r);
	e->triple_fault.pending = snap_get_u8(&r);
	e->exception_has_payload = snap_get_u8(&r);
	e->exception_payload = snap_get_u64(&r);
	/* Exception vectors are < 32; flags only those KVM defines. */
	if (e->exception.nr >= 32 || e->exception.injected > 1 || e->exception.pending > 1 ||
	    e->interrupt.injected > 1 || e->nmi.injected > 1 || e->nmi.pending > 1 ||
	    e->nmi.masked > 1 || (e->flags & ~0x3fu))
		snap_fail(&r);
	return snap_reader_done(&r);
}
