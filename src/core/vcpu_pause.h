/* The pause rendezvous between the threads that control a VM (vm_pause, snapshots, in-place
 * resets) and its vCPU threads, in one place: its lock, its counters and both sides of the
 * protocol.  A controller asks for a pause and kicks the vCPUs; each vCPU thread, on its next
 * loop turn, parks here; while all are parked the controller may run a task on every vCPU
 * thread (save or load its state: KVM wants a vCPU's state ioctls on its own thread); a resume,
 * or the VM stopping, lets them go.  vm.c drives the controller side, vcpu.c the thread side;
 * neither touches the fields. */
#ifndef IGNITION_CORE_VCPU_PAUSE_H
#define IGNITION_CORE_VCPU_PAUSE_H

#include "core/power.h"

#include <pthread.h>
#include <stdbool.h>

struct vcpu;
struct vcpu_state;

struct vcpu_pause {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool init;
	bool req;	    /* a pause is asked for (vCPU threads read it without the lock) */
	unsigned parked;    /* vCPU threads parked */
	unsigned started;   /* vCPU threads started and not yet exited */
	unsigned task_gen;  /* bumped per task */
	unsigned task_done; /* vCPUs that finished the current task */
	int task_err;	    /* first error of the current task */
	bool task_load;	    /* the task loads task_states (in-place reset), else saves */
	struct vcpu_state *task_states;
	/* The VM's stop reason: once it is not VM_STOP_NONE nobody waits here any more. */
	const enum vm_stop_reason *stop_reason;
};

/* Ready the lock and condition; `stop_reason` is read (atomically) to see the VM stopping.
 * 0 or -ENOMEM. */
int vcpu_pause_init(struct vcpu_pause *p, const enum vm_stop_reason *stop_reason)
	__attribute__((warn_unused_result));
/* Free them (safe if init failed or never ran). */
void vcpu_pause_destroy(struct vcpu_pause *p);

/* Controller side. */
/* Ask for a pause, call kick(ctx) (which makes every vCPU leave KVM_RUN) and wait until every
 * started vCPU thread is parked: 0, -EALREADY if a pause was already asked for (nothing
 * waited), -ESHUTDOWN if the VM is stopping (the request is withdrawn). */
int vcpu_pause_all(struct vcpu_pause *p, void (*kick)(void *ctx), void *ctx)
	__attribute__((warn_unused_result));
/* Ask for a pause without waiting (a vCPU thread may ask: it parks once back in its loop). */
void vcpu_pause_request(struct vcpu_pause *p);
/* Wait until every started vCPU thread is parked: 0, -ESHUTDOWN if the VM is stopping,
 * -EAGAIN if the pause was withdrawn (resumed) meanwhile. */
int vcpu_pause_wait(struct vcpu_pause *p) __attribute__((warn_unused_result));
/* Withdraw the pause and wake the parked threads (no-op if none was asked for). */
void vcpu_pause_resume(struct vcpu_pause *p);
/* Whether a pause is asked for (any thread, no lock). */
bool vcpu_pause_requested(struct vcpu_pause *p);
/* Whether any vCPU thread is started (else the controller reads and loads vCPU state from its
 * own thread). */
bool vcpu_pause_threads(struct vcpu_pause *p);
/* With every one of `nr_vcpus` vCPU threads parked: each saves its state into states[index]
 * (load: loads it from there) on its own thread.  0, the first vCPU's -errno, -EBUSY if not
 * all are parked, -ESRCH if not all nr_vcpus threads run, -ESHUTDOWN if the VM stopped. */
int vcpu_pause_task(struct vcpu_pause *p, struct vcpu_state *states, bool load, unsigned nr_vcpus)
	__attribute__((warn_unused_result));
/* Wake parked threads to look at the stop reason (after a stop request). */
void vcpu_pause_wake(struct vcpu_pause *p);

/* vCPU thread side. */
/* Count a vCPU thread as started, before it is created, so a pause never waits for a thread
 * that has not run yet (it parks as soon as it does). */
void vcpu_pause_thread_starting(struct vcpu_pause *p);
/* The thread is gone (or was never created): stop counting it. */
void vcpu_pause_thread_exits(struct vcpu_pause *p);
/* On vCPU v's thread, with its exit complete: park while a pause is asked for, running the
 * tasks the controller posts meanwhile; return when resumed or the VM is stopping. */
void vcpu_pause_park(struct vcpu_pause *p, struct vcpu *v);

#endif
