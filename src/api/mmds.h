/* MMDS: the microVM metadata service.  A JSON document set by the host (REST API `PUT|PATCH
 * /mmds`, the config file) and served to the guest over HTTP at a link-local address
 * (169.254.169.254 unless configured) on the network interfaces named in `/mmds/config`:
 *   V1: plain GETs;  V2: a session token first (`PUT /latest/api/token` with
 *   `X-metadata-token-ttl-seconds`), then GETs carrying `X-metadata-token`.
 * Answers are JSON (`Accept: application/json`) or IMDS text (a leaf's value, or an object's
 * keys one per line, sub-objects with a trailing '/'); always text with imds_compat.
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
	bool imds_compat; /* answer IMDS text whatever the Accept header asks (as EC2's IMDS) */
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
/* The check mmds_set_config makes: 0, or -EINVAL with the reason in err[n]. */
int mmds_config_check(const struct mmds_config *c, char *err, size_t n)
	__attribute__((warn_unused_result));
void mmds_get_config(struct mmds *m, struct mmds_config *c);

/* Where the process will live once it jails itself (--chroot, --uid/--gid): the guest side's
 * socket (mmds_http.h) is then made inside `root` and owned by the ids, because slirp
 * connects to it by path for every guest connection, after the jail is entered. */
struct mmds_jail {
	char root[256];	   /* "": no chroot */
	uint32_t uid, gid; /* (uint32_t)-1: not changed (chown(2)'s convention) */
};
void mmds_set_jail(struct mmds *m, const struct mmds_jail *j);
void mmds_get_jail(struct mmds *m, struct mmds_jail *j);

/* --- The guest side (added with the implementation; see docs/mmds.md) --- */

#define MMDS_TOKEN_PATH	 "/latest/api/token"
#define MMDS_TTL_MAX	 21600u /* seconds, the longest session token (Firecracker's bound) */
#define MMDS_TOKENS_MAX	 64	/* live tokens kept; a new one replaces the soonest to expire */
#define MMDS_TOKEN_CHARS 64	/* hex digits of a token (32 random bytes) */
#define MMDS_DEPTH_MAX	 64	/* nesting of objects and arrays the store accepts */

/* One guest HTTP request, as the HTTP layer parsed it.  Header values are NULL when absent. */
struct mmds_request {
	const char *method; /* "GET", "PUT"... */
	const char *path;   /* the URL path, without the query */
	const char *accept; /* Accept */
	const char *token;  /* X-metadata-token */
	const char *ttl;    /* X-metadata-token-ttl-seconds */
	bool forwarded;	    /* an X-Forwarded-For header was present */
};

/* The answer: status, Content-Type, a malloc'd body (the caller frees) and, for 405, Allow. */
struct mmds_response {
	unsigned status;
	const char *content_type;
	const char *allow; /* NULL, or the Allow header's value */
	char *body;
	size_t len;
};

/* Answer one guest request (pure apart from the store, the token table and the clock):
 * 0, or -ENOMEM (then no response exists). */
int mmds_handle(struct mmds *m, const struct mmds_request *rq, struct mmds_response *rs)
	__attribute__((warn_unused_result));
/* Tests: replace CLOCK_MONOTONIC (nanoseconds) with `now`; NULL restores it. */
void mmds_set_clock(struct mmds *m, int64_t (*now)(void));

#endif
