/* The guest agent's wire protocol (docs/agent.md): one request and one answer per connection,
 * each a frame of a 5-byte header (u32 little-endian payload length, one type byte) and the
 * payload.  Integers are u32 little-endian; a string is a u32 length counting a final NUL that
 * must be there (and no other NUL), so a decoded string points into the payload as a C string;
 * bytes are a u32 length and the bytes.  Every length is capped below.
 *
 * Pure code (no I/O, libc only): the host client (src/agent/client.c), the guest agent
 * (guest/agent/ign-agent.c, built static into the rootfs) and the unit tests share it. */
#ifndef IGNITION_AGENT_PROTO_H
#define IGNITION_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The AF_VSOCK port the agent listens on (arbitrary; below 1024 so only root can bind it). */
#define AGENT_PORT    52
#define AGENT_HDR_LEN 5
/* Largest payload of any frame: the biggest answer is an exec result with two full outputs. */
#define AGENT_FRAME_MAX (17u << 20)
/* Caps on the parts of a request. */
#define AGENT_ARGV_MAX	     256
#define AGENT_STR_MAX	     65536
#define AGENT_OUTPUT_MAX     (8u << 20)	 /* each of stdout and stderr */
#define AGENT_DATA_MAX	     (16u << 20) /* stdin of exec, write_file and read_file data */
#define AGENT_TIMEOUT_MAX_MS (24u * 3600 * 1000)

enum agent_type {
	AGENT_EXEC = 1,
	AGENT_WRITE_FILE = 2,
	AGENT_READ_FILE = 3,
	AGENT_PING = 4,
	AGENT_EXEC_RESULT = 0x81,
	AGENT_WRITE_RESULT = 0x82,
	AGENT_READ_RESULT = 0x83,
	AGENT_PONG = 0x84,
	AGENT_ERROR = 0xff,
};

/* exec flags */
#define AGENT_EXEC_SHELL 1u /* argv[0] is a command for /bin/sh -c */

struct agent_exec_req {
	uint32_t flags;
	uint32_t timeout_ms; /* 1 .. AGENT_TIMEOUT_MAX_MS */
	uint32_t max_output; /* bytes kept of each of stdout and stderr, <= AGENT_OUTPUT_MAX */
	uint32_t argc;	     /* 1 .. AGENT_ARGV_MAX */
	const char *argv[AGENT_ARGV_MAX + 1]; /* NULL-terminated */
	const uint8_t *in;
	uint32_t in_len;
};

enum agent_exit_kind {
	AGENT_EXITED = 0,   /* code = exit status */
	AGENT_SIGNALED = 1, /* code = signal number */
};

struct agent_exec_result {
	uint32_t kind;
	uint32_t code;
	bool timed_out, out_truncated, err_truncated;
	const uint8_t *out, *err;
	uint32_t out_len, err_len;
};

struct agent_file_req {
	const char *path;
	uint32_t mode; /* write_file: permission bits (& 07777) */
	uint32_t max;  /* read_file: bytes at most, <= AGENT_DATA_MAX */
	const uint8_t *data;
	uint32_t data_len;
};

struct agent_read_result {
	bool truncated;
	const uint8_t *data;
	uint32_t data_len;
};

struct agent_error {
	uint32_t err; /* a positive errno */
	const char *msg;
};

/* A growable output buffer; the encoders append one whole frame to it. */
struct agent_buf {
	uint8_t *p;
	size_t len, cap;
};

/* Free the buffer's memory and empty it. */
void agent_buf_free(struct agent_buf *b);

/* Check a frame header: its type into *type and payload length into *len.  -EMSGSIZE when the
 * length exceeds AGENT_FRAME_MAX. */
int agent_hdr_decode(const uint8_t hdr[AGENT_HDR_LEN], uint8_t *type, uint32_t *len)
	__attribute__((warn_unused_result));

/* Encoders: append one frame.  -EINVAL for a request outside the caps, -ENOMEM. */
int agent_exec_encode(struct agent_buf *b, const struct agent_exec_req *r)
	__attribute__((warn_unused_result));
/* write_file (type AGENT_WRITE_FILE) or read_file (AGENT_READ_FILE). */
int agent_file_encode(struct agent_buf *b, uint8_t type, const struct agent_file_req *r)
	__attribute__((warn_unused_result));
int agent_exec_result_encode(struct agent_buf *b, const struct agent_exec_result *r)
	__attribute__((warn_unused_result));
int agent_read_result_encode(struct agent_buf *b, const struct agent_read_result *r)
	__attribute__((warn_unused_result));
int agent_error_encode(struct agent_buf *b, const struct agent_error *e)
	__attribute__((warn_unused_result));
/* A frame without payload (PING, PONG, WRITE_RESULT). */
int agent_empty_encode(struct agent_buf *b, uint8_t type) __attribute__((warn_unused_result));

/* Decoders: parse payload p[0..len) of a frame of the matching type.  Pointers in the result
 * point into p.  -EBADMSG for anything malformed (short, trailing bytes, a string without its
 * NUL or with one inside, a value outside the caps). */
int agent_exec_decode(const uint8_t *p, size_t len, struct agent_exec_req *r)
	__attribute__((warn_unused_result));
int agent_file_decode(uint8_t type, const uint8_t *p, size_t len, struct agent_file_req *r)
	__attribute__((warn_unused_result));
int agent_exec_result_decode(const uint8_t *p, size_t len, struct agent_exec_result *r)
	__attribute__((warn_unused_result));
int agent_read_result_decode(const uint8_t *p, size_t len, struct agent_read_result *r)
	__attribute__((warn_unused_result));
int agent_error_decode(const uint8_t *p, size_t len, struct agent_error *e)
	__attribute__((warn_unused_result));

#endif
