/* The guest agent's frame codec (src/agent/proto.c, docs/agent.md): every message round-trips
 * through encode and decode; truncated, over-long and malformed payloads (missing or inner
 * NULs, bad flags, counts past the caps, trailing bytes) are refused; the header's length cap
 * holds; and the client against a fake vsock socket that answers CONNECT and a frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/client.h"
#include "agent/proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void hdr_of(const struct agent_buf *b, uint8_t *type, uint32_t *len)
{
	assert_true(b->len >= AGENT_HDR_LEN);
	assert_int_equal(agent_hdr_decode(b->p, type, len), 0);
	assert_int_equal(*len, b->len - AGENT_HDR_LEN);
}

static void test_exec_roundtrip(void **state)
{
	struct agent_buf b = { 0 };
	struct agent_exec_req r = { .flags = 0,
				    .timeout_ms = 1500,
				    .max_output = 4096,
				    .argc = 3,
				    .argv = { "ls", "-l", "/tmp", NULL },
				    .in = (const uint8_t *)"ab\0c",
				    .in_len = 4 };
	struct agent_exec_req d;
	uint8_t type;
	uint32_t len;
	assert_int_equal(agent_exec_encode(&b, &r), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(type, AGENT_EXEC);
	assert_int_equal(agent_exec_decode(b.p + AGENT_HDR_LEN, len, &d), 0);
	assert_int_equal(d.timeout_ms, 1500);
	assert_int_equal(d.max_output, 4096);
	assert_int_equal(d.argc, 3);
	assert_string_equal(d.argv[0], "ls");
	assert_string_equal(d.argv[2], "/tmp");
	assert_null(d.argv[3]);
	assert_int_equal(d.in_len, 4);
	assert_memory_equal(d.in, "ab\0c", 4);
	/* Every truncation is refused, as is one trailing byte. */
	for (uint32_t cut = 0; cut < len; cut++)
		assert_int_equal(agent_exec_decode(b.p + AGENT_HDR_LEN, cut, &d), -EBADMSG);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, b.p + AGENT_HDR_LEN, len);
	longer[len] = 0;
	assert_int_equal(agent_exec_decode(longer, len + 1, &d), -EBADMSG);
	free(longer);
	agent_buf_free(&b);
}

static void test_exec_refused(void **state)
{
	struct agent_buf b = { 0 };
	struct agent_exec_req r = { .flags = AGENT_EXEC_SHELL,
				    .timeout_ms = 10,
				    .max_output = 1,
				    .argc = 1,
				    .argv = { "true", NULL } };
	struct agent_exec_req d;
	assert_int_equal(agent_exec_encode(&b, &r), 0);
	uint8_t *p = b.p + AGENT_HDR_LEN;
	size_t len = b.len - AGENT_HDR_LEN;
	assert_int_equal(agent_exec_decode(p, len, &d), 0);
	/* Unknown flag bit. */
	p[0] = 3;
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[0] = 1;
	/* timeout 0 */
	memset(p + 4, 0, 4);
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[4] = 10;
	/* max_output past the cap */
	memset(p + 8, 0xff, 4);
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	memset(p + 8, 0, 4);
	/* argc 2 for a shell command, then a huge argc */
	p[12] = 2;
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	memset(p + 12, 0xff, 4);
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[12] = 1, p[13] = p[14] = p[15] = 0;
	/* The string "true\0" at 16: length 5; its NUL replaced, then a NUL inside. */
	assert_int_equal(p[16], 5);
	p[20 + 4] = 'x';
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[20 + 4] = 0;
	p[20 + 1] = 0;
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[20 + 1] = 'r';
	/* A string length past the payload. */
	p[16] = 200;
	assert_int_equal(agent_exec_decode(p, len, &d), -EBADMSG);
	p[16] = 5;
	assert_int_equal(agent_exec_decode(p, len, &d), 0);
	agent_buf_free(&b);
	/* The encoder refuses what the decoder would. */
	r.argc = 0;
	assert_int_equal(agent_exec_encode(&b, &r), -EINVAL);
	r.argc = 1, r.timeout_ms = 0;
	assert_int_equal(agent_exec_encode(&b, &r), -EINVAL);
	r.timeout_ms = 1, r.max_output = AGENT_OUTPUT_MAX + 1;
	assert_int_equal(agent_exec_encode(&b, &r), -EINVAL);
	assert_int_equal(b.len, 0);
	agent_buf_free(&b);
}

static void test_header_cap(void **state)
{
	uint8_t h[AGENT_HDR_LEN] = { 0xff, 0xff, 0xff, 0xff, AGENT_EXEC };
	uint8_t type;
	uint32_t len;
	assert_int_equal(agent_hdr_decode(h, &type, &len), -EMSGSIZE);
	uint32_t max = AGENT_FRAME_MAX;
	h[0] = (uint8_t)max, h[1] = (uint8_t)(max >> 8), h[2] = (uint8_t)(max >> 16),
	h[3] = (uint8_t)(max >> 24);
	assert_int_equal(agent_hdr_decode(h, &type, &len), 0);
	assert_int_equal(len, AGENT_FRAME_MAX);
	assert_int_equal(type, AGENT_EXEC);
}

static void test_files_and_results(void **state)
{
	struct agent_buf b = { 0 };
	uint8_t type;
	uint32_t len;
	struct agent_file_req w = { .path = "/root/x",
				    .mode = 0755,
				    .data = (const uint8_t *)"hi",
				    .data_len = 2 },
			      d;
	assert_int_equal(agent_file_encode(&b, AGENT_WRITE_FILE, &w), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(agent_file_decode(type, b.p + AGENT_HDR_LEN, len, &d), 0);
	assert_string_equal(d.path, "/root/x");
	assert_int_equal(d.mode, 0755);
	assert_int_equal(d.data_len, 2);
	/* A write payload read as a read request has trailing bytes. */
	assert_int_equal(agent_file_decode(AGENT_READ_FILE, b.p + AGENT_HDR_LEN, len, &d),
			 -EBADMSG);
	assert_int_equal(agent_file_decode(AGENT_EXEC, b.p + AGENT_HDR_LEN, len, &d), -EBADMSG);
	agent_buf_free(&b);
	struct agent_file_req rq = { .path = "/etc/hostname", .max = 100 };
	assert_int_equal(agent_file_encode(&b, AGENT_READ_FILE, &rq), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(agent_file_decode(type, b.p + AGENT_HDR_LEN, len, &d), 0);
	assert_int_equal(d.max, 100);
	agent_buf_free(&b);
	rq.path = "";
	assert_int_equal(agent_file_encode(&b, AGENT_READ_FILE, &rq), -EINVAL);
	rq.path = "/x", rq.max = AGENT_DATA_MAX + 1;
	assert_int_equal(agent_file_encode(&b, AGENT_READ_FILE, &rq), -EINVAL);

	struct agent_exec_result er = { .kind = AGENT_SIGNALED,
					.code = 9,
					.timed_out = true,
					.err_truncated = true,
					.out = (const uint8_t *)"o",
					.out_len = 1,
					.err = (const uint8_t *)"ee",
					.err_len = 2 },
				 ed;
	assert_int_equal(agent_exec_result_encode(&b, &er), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(type, AGENT_EXEC_RESULT);
	assert_int_equal(agent_exec_result_decode(b.p + AGENT_HDR_LEN, len, &ed), 0);
	assert_int_equal(ed.kind, AGENT_SIGNALED);
	assert_int_equal(ed.code, 9);
	assert_true(ed.timed_out && ed.err_truncated && !ed.out_truncated);
	assert_memory_equal(ed.err, "ee", 2);
	for (uint32_t cut = 0; cut < len; cut++)
		assert_int_equal(agent_exec_result_decode(b.p + AGENT_HDR_LEN, cut, &ed), -EBADMSG);
	agent_buf_free(&b);

	struct agent_error e = { .err = ENOENT, .msg = "no such file" }, ee;
	assert_int_equal(agent_error_encode(&b, &e), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(type, AGENT_ERROR);
	assert_int_equal(agent_error_decode(b.p + AGENT_HDR_LEN, len, &ee), 0);
	assert_int_equal(ee.err, ENOENT);
	assert_string_equal(ee.msg, "no such file");
	agent_buf_free(&b);

	struct agent_read_result rr = { .truncated = true,
					.data = (const uint8_t *)"abc",
					.data_len = 3 },
				 rd;
	assert_int_equal(agent_read_result_encode(&b, &rr), 0);
	hdr_of(&b, &type, &len);
	assert_int_equal(agent_read_result_decode(b.p + AGENT_HDR_LEN, len, &rd), 0);
	assert_true(rd.truncated);
	assert_int_equal(rd.data_len, 3);
	agent_buf_free(&b);
}

/* A fake hybrid-vsock socket: answers "CONNECT 52" with "OK 1", reads one frame, answers with
 * a PONG, or (mode 1) closes at once after the CONNECT line, or (mode 2) says nothing. */
struct fake {
	int lfd;
	int mode;
};

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	int c = accept(f->lfd, NULL, NULL);
	char line[32] = { 0 };
	size_t n = 0;
	while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 && line[n] != '\n')
		n++;
	if (f->mode == 1 || strncmp(line, "CONNECT 52", 10)) {
		close(c);
		return NULL;
	}
	if (f->mode == 2) {
		usleep(500000);
		close(c);
		return NULL;
	}
	(void)!write(c, "OK 1\n", 5);
	uint8_t hdr[5];
	if (read(c, hdr, 5) == 5) {
		struct agent_buf b = { 0 };
		if (!agent_empty_encode(&b, AGENT_PONG))
			(void)!write(c, b.p, b.len);
		agent_buf_free(&b);
	}
	close(c);
	return NULL;
}

static void run_client(int mode, int want, uint8_t want_type)
{
	char path[] = "/tmp/test-agent-XXXXXX";
	int tfd = mkstemp(path);
	close(tfd);
	unlink(path);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, path);
	struct fake f = { .mode = mode };
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	pthread_t t;
	pthread_create(&t, NULL, fake_server, &f);
	struct agent_buf b = { 0 };
	assert_int_equal(agent_empty_encode(&b, AGENT_PING), 0);
	struct agent_reply r;
	char err[128];
	int ret = agent_call(path, AGENT_PORT, b.p, b.len, 200, -1, &r, err, sizeof(err));
	assert_int_equal(ret, want);
	if (!ret) {
		assert_int_equal(r.type, want_type);
		assert_int_equal(r.len, 0);
		agent_reply_free(&r);
	} else {
		assert_non_null(strstr(err, "agent"));
	}
	pthread_join(t, NULL);
	agent_buf_free(&b);
	close(f.lfd);
	unlink(path);
}

static void test_client(void **state)
{
	run_client(0, 0, AGENT_PONG);
	run_client(1, -ECONNREFUSED, 0); /* the device closes a refused connection */
	run_client(2, -ETIMEDOUT, 0);
	struct agent_reply r;
	char err[128];
	assert_int_equal(agent_call("/nonexistent/sock", AGENT_PORT, (const uint8_t *)"", 0, 100,
				    -1, &r, err, sizeof(err)),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_roundtrip), cmocka_unit_test(test_exec_refused),
		cmocka_unit_test(test_header_cap),     cmocka_unit_test(test_files_and_results),
		cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
