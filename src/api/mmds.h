/* MMDS: the microVM metadata service.  A JSON document set by the host (REST API `PUT|PATCH
 * /mmds`, the config file) and served to the guest over HTTP at a link-local address
 * (169.254.169.254 unless configured) on the network interfaces named in `/mmds/config`:
 *   V1: plain GETs;  V2: a session token first (`PUT /latest/api/token` with
 *   `X-metadata-token-ttl-seconds`), then GETs carrying `X-metadata-token`.
 * Answers are JSON (`Accept: application/json`) or IMDS text (a leaf's value, or an object's
 * keys one per line, sub-objects with a trailing '/').
 *
 * Threading: every function may be called from any thread (one mutex inside); the guest side
 * is served on the event-loop thread. */
#ifndef IGNITION_API_MMDS_H
#define IGNITION_API_MMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMDS_DATA_MAX	  (51200) /* bytes of serialised JSON the store holds (Firecracker's default) */
#define MMDS_DEFAULT_IPV4 0xa9fea9feu /* 169.254.169.254, host order */

struct mmds;

struct mmds_config {
	unsigned version; /* 1 or 2 */
	uint32_t ipv4;	  /* host order; link-local 169.254.0.0/16 */
	uint32_t ifaces;  /* bit i: eth i answers MMDS; 0: MMDS is not reachable */
};

int mmds_create(struct mmds **out) __attribute__((warn_unused_result));
void mmds_destroy(struct mmds *m);
/* Replace the whole store with the JSON object in json[len] (PUT) / merge it in as an RFC 7396
 * merge patch (PATCH).  -EINVAL (not a JSON object, too deep), -EFBIG (over MMDS_DATA_MAX);
 * a one-line reason in err[n].  The old data stays on any error. */
int mmds_put(struct mmds *m, const char *json, size_t len, char *err, size_t n)
	__attribute__((warn_unused_result));
int mmds_patch(struct mmds *m, const char *json, size_t len, char *err, size_t n)
	__attribute__((warn_unused_result));
/* The store as compact JSON (malloc'd, the caller frees; "{}" when empty); NULL: -ENOMEM. */
char *mmds_get(struct mmds *m);
/* Set / read the configuration.  -EINVAL with a reason for a version other than 1 or 2 or an
 * address outside 169.254.0.0/16. */
int mmds_set_config(struct mmds *m, const struct mmds_config *c, char *err, size_t n)
	__attribute__((warn_unused_result));
void mmds_get_config(struct mmds *m, struct mmds_config *c);

#endif
