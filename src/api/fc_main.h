/* ignition as Firecracker: the `firecracker` command line (--api-sock, --config-file...), the
 * REST API server and the instance's lifecycle (docs/api.md). */
#ifndef IGNITION_API_FC_MAIN_H
#define IGNITION_API_FC_MAIN_H

#include <stddef.h>

struct machine;
struct ratelimit_cfg;

/* The whole program in Firecracker mode; returns the exit status. */
int fc_main(int argc, char **argv);

/* Change a running device's rate limiter (PATCH /drives, /network-interfaces): `kind` "drive"
 * (rl) or "net" (rl = rx, tx), `index` the device's machine index.  On the event-loop thread.
 * The new limits also go into m->cfg, so a later snapshot keeps them. */
int api_apply_ratelimit(struct machine *m, const char *kind, int index,
			const struct ratelimit_cfg *rl, const struct ratelimit_cfg *tx, char *err,
			size_t n) __attribute__((warn_unused_result));

/* Put running disk `index` on the image open as `fd` (taken over, closed on failure too),
 * found at `path` (PATCH /drives path_on_host).  On the event-loop thread.  The new path goes
 * into m->cfg, so a later snapshot copies that image; a failure leaves the old one in use. */
int api_swap_drive(struct machine *m, int index, int fd, const char *path, char *err, size_t n)
	__attribute__((warn_unused_result));

#endif
