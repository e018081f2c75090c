#include "core/vcpu_pause.h"

#include "core/vcpu.h"
#include "core/vcpu_state.h"

#include <errno.h>
#include <string.h>

int vcpu_pause_init(struct vcpu_pause *p, const enum vm_stop_reason *stop_reason)
{
	memset(p, 0, sizeof(*p));
	p->stop_reason = stop_reason;
	if (pthread_mutex_init(&p->lock, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&p->cond, NULL)) {
		pthread_mutex_destroy(&p->lock);
		return -ENOMEM;
	}
	p->init = true;
	return 0;
}

void vcpu_pause_destroy(struct vcpu_pause *p)
{
	if (!p->init)
		return;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	p->init = false;
}

static bool stopping(const struct vcpu_pause *p)
{
	return __atomic_load_n(p->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE;
}

int vcpu_pause_all(struct vcpu_pause *p, void (*kick)(void *ctx), void *ctx)
{
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	if (p->req) {
		ret = -EALREADY;
		goto out;
	}
	__atomic_store_n(&p->req, true, __ATOMIC_RELEASE);
	kick(ctx);
	while (p->parked < p->started && !stopping(p))
		pthread_cond_wait(&p->cond, &p->lock);
	if (stopping(p)) {
		__atomic_store_n(&p->req, false, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&p->cond);
		ret = -ESHUTDOWN;
	}
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void vcpu_pause_request(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->req, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->lock);
}

int vcpu_pause_wait(struct vcpu_pause *p)
{
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	while (p->req && p->parked < p->started && !stopping(p))
		pthread_cond_wait(&p->cond, &p->lock);
	if (stopping(p))
		ret = -ESHUTDOWN;
	else if (!p->req)
		ret = -EAGAIN;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void vcpu_pause_resume(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

bool vcpu_pause_requested(struct vcpu_pause *p)
{
	return __atomic_load_n(&p->req, __ATOMIC_ACQUIRE);
}

bool vcpu_pause_threads(struct vcpu_pause *p)
{
	bool threads;

	pthread_mutex_lock(&p->lock);
	threads = p->started > 0;
	pthread_mutex_unlock(&p->lock);
	return threads;
}

int vcpu_pause_task(struct vcpu_pause *p, struct vcpu_state *states, bool load, unsigned nr_vcpus)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	if (!p->req || p->parked < p->started) {
		pthread_mutex_unlock(&p->lock);
		return -EBUSY;
	}
	if (p->started < nr_vcpus) {
		/* Not running yet (or some threads gone): the caller reads from its thread. */
		pthread_mutex_unlock(&p->lock);
		return -ESRCH;
	}
	p->task_states = states;
	p->task_load = load;
	p->task_err = 0;
	p->task_done = 0;
	p->task_gen++;
	pthread_cond_broadcast(&p->cond);
	while (p->task_done < p->started && !stopping(p))
		pthread_cond_wait(&p->cond, &p->lock);
	ret = p->task_done < p->started ? -ESHUTDOWN : p->task_err;
	p->task_states = NULL;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void vcpu_pause_wake(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_thread_starting(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	p->started++;
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_thread_exits(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	p->started--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_park(struct vcpu_pause *p, struct vcpu *v)
{
	unsigned gen;

	pthread_mutex_lock(&p->lock);
	gen = p->task_gen;
	p->parked++;
	pthread_cond_broadcast(&p->cond);
	while (p->req && !stopping(p)) {
		if (p->task_gen != gen) {
			int ret;

			gen = p->task_gen;
			pthread_mutex_unlock(&p->lock);
			ret = p->task_load ? vcpu_state_set(v, &p->task_states[v->index])
					   : vcpu_state_get(v, &p->task_states[v->index]);
			pthread_mutex_lock(&p->lock);
			if (ret && !p->task_err)
				p->task_err = ret;
			p->task_done++;
			pthread_cond_broadcast(&p->cond);
			continue;
		}
		pthread_cond_wait(&p->cond, &p->lock);
	}
	p->parked--;
	pthread_mutex_unlock(&p->lock);
}
