/* The pause rendezvous (core/vcpu_pause.c) without KVM: plain threads play the vCPU loop
 * (park while a pause is asked for, leave when the VM stops); the test is the controller.
 * Tasks (which run vcpu_state_get/set on real vCPUs) are covered by test_dirty_kvm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/vcpu_pause.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#define NR_THREADS 3

struct fixture {
	struct vcpu_pause p;
	enum vm_stop_reason stop;
	pthread_t threads[NR_THREADS];
	unsigned turns[NR_THREADS]; /* loop turns outside a pause (atomic) */
	int kicks;
};

struct arg {
	struct fixture *x;
	unsigned index;
};

static struct arg args[NR_THREADS];

static void *loop(void *opaque)
{
	struct arg *a = opaque;
	struct fixture *x = a->x;

	while (__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE) == VM_STOP_NONE) {
		if (vcpu_pause_requested(&x->p)) {
			vcpu_pause_park(&x->p, NULL); /* no task is posted: no vCPU needed */
			continue;
		}
		__atomic_add_fetch(&x->turns[a->index], 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	vcpu_pause_thread_exits(&x->p);
	return NULL;
}

static void kick(void *ctx)
{
	((struct fixture *)ctx)->kicks++;
}

static void start(struct fixture *x)
{
	for (unsigned i = 0; i < NR_THREADS; i++) {
		args[i] = (struct arg){ x, i };
		vcpu_pause_thread_starting(&x->p);
		assert_int_equal(pthread_create(&x->threads[i], NULL, loop, &args[i]), 0);
	}
}

static unsigned parked(struct fixture *x)
{
	unsigned n;

	pthread_mutex_lock(&x->p.lock);
	n = x->p.parked;
	pthread_mutex_unlock(&x->p.lock);
	return n;
}

static void stop_and_join(struct fixture *x)
{
	__atomic_store_n(&x->stop, VM_STOP_POWEROFF, __ATOMIC_RELEASE);
	vcpu_pause_wake(&x->p);
	for (unsigned i = 0; i < NR_THREADS; i++)
		pthread_join(x->threads[i], NULL);
	assert_false(vcpu_pause_threads(&x->p));
	vcpu_pause_destroy(&x->p);
}

/* A pause returns with every thread parked, and nothing runs until the resume; a second pause
 * is -EALREADY; a task for more vCPUs than run is -ESRCH; the resume lets them all go. */
static void test_pause_resume(void **state)
{
	static struct fixture x;
	unsigned before[NR_THREADS];

	(void)state;
	assert_int_equal(vcpu_pause_init(&x.p, &x.stop), 0);
	assert_false(vcpu_pause_threads(&x.p));
	start(&x);
	assert_true(vcpu_pause_threads(&x.p));
	assert_int_equal(vcpu_pause_all(&x.p, kick, &x), 0);
	assert_int_equal(x.kicks, 1);
	assert_true(vcpu_pause_requested(&x.p));
	assert_int_equal(parked(&x), NR_THREADS);
	for (unsigned i = 0; i < NR_THREADS; i++)
		before[i] = __atomic_load_n(&x.turns[i], __ATOMIC_RELAXED);
	for (int i = 0; i < 1000; i++)
		sched_yield();
	for (unsigned i = 0; i < NR_THREADS; i++)
		assert_int_equal(__atomic_load_n(&x.turns[i], __ATOMIC_RELAXED), before[i]);
	assert_int_equal(vcpu_pause_all(&x.p, kick, &x), -EALREADY);
	assert_int_equal(x.kicks, 1);
	assert_int_equal(vcpu_pause_wait(&x.p), 0);
	assert_int_equal(vcpu_pause_task(&x.p, NULL, false, NR_THREADS + 1), -ESRCH);

	vcpu_pause_resume(&x.p);
	assert_false(vcpu_pause_requested(&x.p));
	assert_int_equal(vcpu_pause_wait(&x.p), -EAGAIN);
	assert_int_equal(vcpu_pause_task(&x.p, NULL, false, NR_THREADS), -EBUSY);
	/* Every thread runs again. */
	for (unsigned i = 0; i < NR_THREADS; i++)
		while (__atomic_load_n(&x.turns[i], __ATOMIC_RELAXED) == before[i])
			sched_yield();

	/* A request from "a vCPU" and a wait from another thread, as the fuzz engine does. */
	vcpu_pause_request(&x.p);
	assert_int_equal(vcpu_pause_wait(&x.p), 0);
	assert_int_equal(parked(&x), NR_THREADS);
	vcpu_pause_resume(&x.p);
	stop_and_join(&x);
}

/* The VM stopping ends every wait: a pause asked for meanwhile is withdrawn (-ESHUTDOWN), and
 * parked threads leave to see the stop. */
static void test_stop_ends_pause(void **state)
{
	static struct fixture x;

	(void)state;
	assert_int_equal(vcpu_pause_init(&x.p, &x.stop), 0);
	start(&x);
	assert_int_equal(vcpu_pause_all(&x.p, kick, &x), 0);
	__atomic_store_n(&x.stop, VM_STOP_POWEROFF, __ATOMIC_RELEASE);
	assert_int_equal(vcpu_pause_wait(&x.p), -ESHUTDOWN);
	vcpu_pause_resume(&x.p);
	assert_int_equal(vcpu_pause_all(&x.p, kick, &x), -ESHUTDOWN);
	assert_false(vcpu_pause_requested(&x.p)); /* withdrawn */
	stop_and_join(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_stop_ends_pause),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
