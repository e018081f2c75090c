/* Token buckets (util/ratelimit.c) on a fake clock. */
#include "util/ratelimit.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define MS UINT64_C(1000000)

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	fake_now = 1000 * MS;
	ratelimit_set_clock(fake_clock);
	return 0;
}

static int teardown(void **state)
{
	ratelimit_set_clock(NULL);
	return 0;
}

static struct ratelimit_cfg bw(uint64_t size, uint64_t burst, uint64_t refill_ms)
{
	return (struct ratelimit_cfg){ .bandwidth = { size, burst, refill_ms } };
}

static void test_validate(void **state)
{
	struct ratelimit_cfg c = { 0 };
	struct ratelimit rl;

	assert_int_equal(ratelimit_validate(&c), 0);
	c = bw(100, 0, 0);
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
	assert_int_equal(ratelimit_init(&rl, &c), -EINVAL);
	c.ops = (struct tbucket_cfg){ 5, 0, 0 };
	c.bandwidth.refill_time_ms = 1;
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
	c.ops.refill_time_ms = 10;
	assert_int_equal(ratelimit_validate(&c), 0);
	/* size 0 with refill 0 does not limit: fine. */
	c = bw(0, 0, 0);
	assert_int_equal(ratelimit_validate(&c), 0);
	c = bw(RATELIMIT_MAX_TOKENS + 1, 0, 1000);
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
	c = bw(1, RATELIMIT_MAX_TOKENS + 1, 1000);
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
	c = bw(1, 0, RATELIMIT_MAX_REFILL_MS + 1);
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
	c = bw(UINT64_MAX, UINT64_MAX, UINT64_MAX);
	assert_int_equal(ratelimit_validate(&c), -EINVAL);
}

static void test_unlimited(void **state)
{
	struct ratelimit_cfg c = { 0 };
	struct ratelimit rl;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_none(&rl));
	for (int i = 0; i < 1000; i++)
		assert_true(ratelimit_consume(&rl, UINT64_MAX, UINT64_MAX, NULL));
	ratelimit_destroy(&rl);
}

/* 1000 bytes per 1000 ms: full at start, then refills continuously at 1 byte/ms. */
static void test_refill(void **state)
{
	struct ratelimit_cfg c = bw(1000, 0, 1000);
	struct ratelimit rl;
	uint64_t wait = 0;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_false(ratelimit_none(&rl));
	assert_true(ratelimit_consume(&rl, 600, 0, NULL));
	assert_true(ratelimit_consume(&rl, 400, 0, NULL));
	assert_false(ratelimit_consume(&rl, 1, 0, &wait));
	assert_int_equal(wait, 1 * MS);
	assert_false(ratelimit_consume(&rl, 250, 0, &wait));
	assert_int_equal(wait, 250 * MS);
	fake_now += 249 * MS;
	assert_false(ratelimit_consume(&rl, 250, 0, &wait));
	assert_int_equal(wait, 1 * MS);
	fake_now += 1 * MS;
	assert_true(ratelimit_consume(&rl, 250, 0, NULL));
	/* Refill stops at size. */
	fake_now += 100000 * MS;
	assert_true(ratelimit_consume(&rl, 1000, 0, NULL));
	assert_false(ratelimit_consume(&rl, 1, 0, NULL));
	ratelimit_destroy(&rl);
}

/* Many refills shorter than one token's worth still add up (no drift). */
static void test_refill_remainder(void **state)
{
	struct ratelimit_cfg c = bw(3, 0, 1000); /* one token per 333.3 ms */
	struct ratelimit rl;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 3, 0, NULL));
	for (int i = 0; i < 10; i++) {
		fake_now += 100 * MS;
		(void)ratelimit_consume(&rl, 0, 0, NULL); /* refill in 100 ms steps */
	}
	/* 1000 ms: all three back. */
	assert_true(ratelimit_consume(&rl, 3, 0, NULL));
	ratelimit_destroy(&rl);
}

/* The one-time burst goes first and never comes back. */
static void test_burst(void **state)
{
	struct ratelimit_cfg c = bw(100, 500, 1000);
	struct ratelimit rl;
	uint64_t wait;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 450, 0, NULL)); /* burst 50 left, budget 100 */
	assert_true(ratelimit_consume(&rl, 120, 0, NULL)); /* 50 from burst, 70 from budget */
	assert_false(ratelimit_consume(&rl, 31, 0, &wait));
	assert_int_equal(wait, 10 * MS); /* 1 token per 10 ms */
	assert_true(ratelimit_consume(&rl, 30, 0, NULL));
	fake_now += 10000 * MS;
	assert_true(ratelimit_consume(&rl, 100, 0, NULL));
	assert_false(ratelimit_consume(&rl, 1, 0, NULL)); /* no burst any more */
	ratelimit_destroy(&rl);
}

/* A request larger than the bucket waits for a full bucket, passes, and leaves a debt. */
static void test_debt(void **state)
{
	struct ratelimit_cfg c = bw(100, 0, 1000);
	struct ratelimit rl;
	uint64_t wait;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 50, 0, NULL));
	assert_false(ratelimit_consume(&rl, 300, 0, &wait));
	assert_int_equal(wait, 500 * MS); /* until full */
	fake_now += 500 * MS;
	assert_true(ratelimit_consume(&rl, 300, 0, NULL)); /* budget now -200 */
	assert_false(ratelimit_consume(&rl, 1, 0, &wait));
	assert_int_equal(wait, 2010 * MS); /* 201 tokens at 10 ms each */
	fake_now += 2000 * MS;
	assert_false(ratelimit_consume(&rl, 1, 0, NULL));
	fake_now += 10 * MS;
	assert_true(ratelimit_consume(&rl, 1, 0, NULL));
	/* Forced takes go into debt too (a frame already read). */
	fake_now += 10000 * MS;
	ratelimit_force(&rl, 150, 0);
	assert_false(ratelimit_check(&rl, 1, 0, &wait));
	assert_int_equal(wait, 510 * MS);
	ratelimit_destroy(&rl);
}

/* Both buckets or neither; the wait is the longer one. */
static void test_two_buckets(void **state)
{
	struct ratelimit_cfg c = { .bandwidth = { 1000, 0, 1000 }, .ops = { 2, 0, 100 } };
	struct ratelimit rl;
	uint64_t wait;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 100, 1, NULL));
	assert_true(ratelimit_consume(&rl, 100, 1, NULL));
	assert_false(ratelimit_consume(&rl, 100, 1, &wait));
	assert_int_equal(wait, 50 * MS); /* an op every 50 ms */
	fake_now += 50 * MS;
	/* Bandwidth: 800 + 50 = 850 left; 900 more bytes wait 50 ms more. */
	assert_false(ratelimit_consume(&rl, 900, 1, &wait));
	assert_int_equal(wait, 50 * MS);
	/* Nothing was taken by the refusal: the op is still there. */
	assert_true(ratelimit_consume(&rl, 850, 1, NULL));
	ratelimit_destroy(&rl);
}

/* Reconfiguration: a changed bucket starts over full, an unchanged one keeps its state, a
 * bad config changes nothing. */
static void test_update(void **state)
{
	struct ratelimit_cfg c = { .bandwidth = { 100, 0, 1000 }, .ops = { 10, 0, 1000 } };
	struct ratelimit_cfg bad = bw(100, 0, 0);
	struct ratelimit rl;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 100, 10, NULL));
	assert_false(ratelimit_consume(&rl, 1, 0, NULL));
	assert_int_equal(ratelimit_update(&rl, &bad), -EINVAL);
	assert_false(ratelimit_consume(&rl, 1, 0, NULL));
	c.bandwidth.size = 200;
	assert_int_equal(ratelimit_update(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 200, 0, NULL));
	assert_false(ratelimit_consume(&rl, 0, 1, NULL)); /* ops unchanged: still empty */
	c = (struct ratelimit_cfg){ 0 };
	assert_int_equal(ratelimit_update(&rl, &c), 0);
	assert_true(ratelimit_none(&rl));
	assert_true(ratelimit_consume(&rl, 1 << 30, 1000, NULL));
	ratelimit_destroy(&rl);
}

/* Extreme values within the bounds: no overflow, waits saturate sensibly. */
static void test_overflow(void **state)
{
	struct ratelimit_cfg c =
		bw(RATELIMIT_MAX_TOKENS, RATELIMIT_MAX_TOKENS, RATELIMIT_MAX_REFILL_MS);
	struct ratelimit rl;
	uint64_t wait = 0;

	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, UINT64_MAX, 0, NULL)); /* clamped, into debt */
	assert_false(ratelimit_consume(&rl, UINT64_MAX, 0, &wait));
	assert_true(wait > 0);
	fake_now = UINT64_MAX / 2;
	assert_true(ratelimit_consume(&rl, 1, 0, NULL)); /* a long time later: refilled */
	ratelimit_destroy(&rl);

	/* A tiny bucket with the longest refill time: one token takes ~35 years. */
	c = bw(1, 0, RATELIMIT_MAX_REFILL_MS);
	assert_int_equal(ratelimit_init(&rl, &c), 0);
	assert_true(ratelimit_consume(&rl, 1, 0, NULL));
	assert_false(ratelimit_consume(&rl, 1, 0, &wait));
	assert_int_equal(wait, RATELIMIT_MAX_REFILL_MS * MS);
	ratelimit_destroy(&rl);
}

/* The timerfd expires after the wait and reads as such (real clock). */
static void test_timer(void **state)
{
	struct ratelimit_cfg c = bw(10, 0, 10);
	struct ratelimit rl;
	struct pollfd p;
	int fd;

	ratelimit_set_clock(NULL);
	assert_int_equal(ratelimit_init(&rl, &c), 0);
	fd = ratelimit_timer_fd(&rl);
	assert_true(fd >= 0);
	assert_int_equal(ratelimit_timer_fd(&rl), fd);
	assert_int_equal(ratelimit_arm(&rl, 2 * MS), 0);
	assert_true(rl.armed);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1);
	ratelimit_timer_ack(&rl);
	assert_false(rl.armed);
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(ratelimit_arm(&rl, 1000 * MS), 0);
	ratelimit_disarm(&rl);
	assert_int_equal(poll(&p, 1, 20), 0);
	ratelimit_destroy(&rl);
	assert_int_equal(rl.timer_fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlimited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refill_remainder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
