/* One sandbox of `ignition mcp`: a child `ignition run` in a private directory, reached through
 * its control socket (src/core/control.h) and its guest agent (src/agent/client.h). */
#ifndef IGNITION_MCP_SANDBOX_H
#define IGNITION_MCP_SANDBOX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/client.h"

/* Paths inside a sandbox directory. */
#define SANDBOX_VSOCK	"vsock.sock"
#define SANDBOX_CONTROL "control.sock"
#define SANDBOX_CONSOLE "console.log"
#define SANDBOX_DISK	"disk.ext4"

struct sandbox_spec {
	const char *ignition; /* binary to run */
	const char *base;     /* snapshot to restore; NULL: boot guest_dir's kernel and rootfs */
	const char *dir;      /* the sandbox's own (existing, empty) directory */
	uint32_t cid;	      /* guest CID (a restore keeps the snapshot's) */
	int ready_ms;	      /* how long to wait for the agent to answer */
	int cancel_fd;	      /* readable: give up (-ECANCELED); -1: none */
	const char *gpu;      /* a booted sandbox's display mode "WxH" (--gpu); NULL: none */
};

/* Start the VM and wait until its agent answers a ping; *pid gets the child as soon as it
 * exists (also on failure: the caller kills it).  0 or -errno with err[n] saying why (with the console's last line). */
int sandbox_start(const struct sandbox_spec *s, pid_t *pid, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Send one command (a JSON object) to the control socket in `dir` and return its answer
 * (*answer, a new reference) when "ok" is true; -errno and err[n] otherwise. */
int sandbox_control(const char *dir, json_t *cmd, int timeout_ms, json_t **answer, char *err,
		    size_t n) __attribute__((warn_unused_result));
/* One request to the agent of the sandbox in `dir` (its vsock socket dir/SANDBOX_VSOCK): the
 * frame(s) in req, the answer into *r (agent_reply_free) unless it is an error.  An AGENT_ERROR
 * answer is -EIO with its message in err[n]; other failures as agent_call. */
int sandbox_agent_call(const char *dir, const struct agent_buf *req, int timeout_ms, int cancel_fd,
		       struct agent_reply *r, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Ping the agent of the sandbox in `dir` until it answers (0) or timeout_ms pass (-errno). */
int sandbox_wait_agent(const char *dir, int timeout_ms, int cancel_fd, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Fork and exec argv (a child `ignition run`) in its own process group, in directory dir, with
 * stdin from /dev/null and stdout and stderr appended to dir/console.log.  0 or -errno. */
int sandbox_spawn(const char *dir, const char *const argv[], pid_t *pid)
	__attribute__((warn_unused_result));
/* The last non-empty line of dir/console.log into buf[n] (empty when there is none). */
void sandbox_console_tail(const char *dir, char *buf, size_t n);
/* SIGTERM, up to 3 s for a clean exit, then SIGKILL; reaps the child. */
void sandbox_kill(pid_t pid);
/* Remove a directory tree (best effort); 0 or the first -errno. */
int sandbox_rmtree(const char *dir);
/* The vsock CID in a snapshot's manifest.json (config.vsock.cid); -errno when it has none. */
int sandbox_base_cid(const char *base, uint32_t *cid) __attribute__((warn_unused_result));

#endif
