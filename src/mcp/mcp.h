/* `ignition mcp`: a Model Context Protocol server on stdio whose tools create and drive
 * sandboxes, each a child `ignition run` (a clone of a base snapshot, or a fresh boot) with the
 * guest agent (docs/agent.md) inside.  docs/mcp.md has the tools and a client session.
 *
 * Transport: JSON-RPC 2.0, one message per line on stdin and stdout (MCP 2025-06-18,
 * "Transports: stdio").  Requests other than tools/call are answered on the reading thread;
 * each tools/call runs on a thread of its own, so a long exec never holds up the others. */
#ifndef IGNITION_MCP_MCP_H
#define IGNITION_MCP_MCP_H

#include <stddef.h>

struct mcp;

/* Longest message line taken from the client (a write_file of 16 MiB, JSON-escaped). */
#define MCP_LINE_MAX (96u << 20)
/* Sandboxes at once unless --max-sandboxes says otherwise. */
#define MCP_DEFAULT_MAX_SANDBOXES 8

/* Where answers go: one complete JSON line (with its '\n') per call, never interleaved (the
 * server serialises calls).  0 or -errno. */
typedef int (*mcp_write_fn)(void *ctx, const char *line, size_t len);

struct mcp_config {
	const char *base; /* snapshot directory sandboxes are cloned from; NULL: fresh boots */
	unsigned max_sandboxes; /* 0: MCP_DEFAULT_MAX_SANDBOXES */
	const char *ignition;	/* the ignition binary the sandboxes run (its absolute path) */
	const char *gpu;	/* "WxH": booted sandboxes get a display (--gpu); NULL: none */
	unsigned ready_ms;	/* a new sandbox's agent must answer within this; 0: the default */
	mcp_write_fn write;
	void *write_ctx;
};

/* A server (no thread yet, a private temp directory for the sandboxes).  0 or -errno. */
int mcp_create(const struct mcp_config *cfg, struct mcp **out) __attribute__((warn_unused_result));
/* Handle one message line[0..len) (no '\n'): answers go to cfg->write, now or from a tool
 * thread later.  Malformed input gets a JSON-RPC error answer, never a failure. */
void mcp_handle_line(struct mcp *m, const char *line, size_t len);
/* Cancel every call, wait for the tool threads, kill every sandbox and remove the temp
 * directory, then free the server.  NULL is a no-op. */
void mcp_destroy(struct mcp *m);
/* Wait until no tool call is running (tests). */
void mcp_wait_idle(struct mcp *m);

/* The `ignition mcp` command: parse argv, serve stdin/stdout until stdin closes or SIGTERM,
 * SIGINT, SIGHUP; exit status. */
int mcp_main(int argc, char **argv);

#endif
