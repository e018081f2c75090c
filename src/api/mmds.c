/* The MMDS store, its configuration, V2 session tokens and the guest-facing request logic.
 * The HTTP transport (sockets, parsing) is elsewhere: mmds_handle() takes a parsed request
 * and returns the answer, so it can be unit-tested and fuzzed without a network. */
#include "api/mmds.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct mmds_token {
	char text[MMDS_TOKEN_CHARS + 1];
	int64_t expires_ns; /* 0: free slot */
};

struct mmds {
	pthread_mutex_t lock;
	json_t *data; /* an object; NULL until the first PUT/PATCH */
	struct mmds_config cfg;
	struct mmds_jail jail;
	struct mmds_token tokens[MMDS_TOKENS_MAX];
	int64_t (*now)(void);
};

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mmds_create(struct mmds **out)
{
	struct mmds *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->cfg = (struct mmds_config){ .version = 1, .ipv4 = MMDS_DEFAULT_IPV4, .ifaces = 0 };
	m->jail = (struct mmds_jail){ .uid = (uint32_t)-1, .gid = (uint32_t)-1 };
	m->now = monotonic_ns;
	*out = m;
	return 0;
}

void mmds_destroy(struct mmds *m)
{
	if (!m)
		return;
	json_decref(m->data);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void mmds_set_jail(struct mmds *m, const struct mmds_jail *j)
{
	pthread_mutex_lock(&m->lock);
	m->jail = *j;
	pthread_mutex_unlock(&m->lock);
}

void mmds_get_jail(struct mmds *m, struct mmds_jail *j)
{
	pthread_mutex_lock(&m->lock);
	*j = m->jail;
	pthread_mutex_unlock(&m->lock);
}

void mmds_set_clock(struct mmds *m, int64_t (*now)(void))
{
	pthread_mutex_lock(&m->lock);
	m->now = now ? now : monotonic_ns;
	pthread_mutex_unlock(&m->lock);
}

/* --- the store --- */

/* Nesting depth of v, giving up (returning limit + 1) past `limit`: the merge patch and the
 * IMDS walk recurse, so the store never holds anything deeper than MMDS_DEPTH_MAX. */
static unsigned depth_of(json_t *v, unsigned limit)
{
	unsigned max = 0;

	if (limit == 0)
		return json_is_object(v) || json_is_array(v) ? 1 : 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach(v, k, c)
		{
			unsigned d = depth_of(c, limit - 1);

			if (d > max)
				max = d;
			if (max >= limit)
				break;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c)
		{
			unsigned d = depth_of(c, limit - 1);

			if (d > max)
				max = d;
			if (max >= limit)
				break;
		}
		return max + 1;
	}
	return 0;
}

static int parse_object(const char *json, size_t len, json_t **out, char *err, size_t n)
{
	json_error_t je;
	json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);

	if (!v) {
		snprintf(err, n, "invalid JSON: %s (line %d, column %d)", je.text, je.line,
			 je.column);
		return -EINVAL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		snprintf(err, n, "the MMDS data must be a JSON object");
		return -EINVAL;
	}
	if (depth_of(v, MMDS_DEPTH_MAX) > MMDS_DEPTH_MAX) {
		json_decref(v);
		snprintf(err, n, "the MMDS data nests deeper than %d levels", MMDS_DEPTH_MAX);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* RFC 7396 §2: apply `patch` to `target` (both objects), in place.  null deletes a member;
 * an object merges recursively into an object member (replacing a non-object); anything else
 * replaces.  Depth is bounded by the caller's check of the patch. */
static int merge_patch(json_t *target, json_t *patch)
{
	const char *k;
	json_t *v;

	json_object_foreach(patch, k, v)
	{
		if (json_is_null(v)) {
			json_object_del(target, k);
		} else if (json_is_object(v)) {
			json_t *t = json_object_get(target, k);

			if (!json_is_object(t)) {
				t = json_object();
				if (!t || json_object_set_new(target, k, t))
					return -ENOMEM;
			}
			if (merge_patch(t, v))
				return -ENOMEM;
		} else if (json_object_set(target, k, v)) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* Serialised size check (MMDS_DATA_MAX is a bound on the compact JSON). */
static int check_size(json_t *v, char *err, size_t n)
{
	size_t sz = json_dumpb(v, NULL, 0, JSON_COMPACT);

	if (sz == 0) {
		snprintf(err, n, "cannot serialise the MMDS data");
		return -EINVAL;
	}
	if (sz > MMDS_DATA_MAX) {
		snprintf(err, n, "the MMDS data would be %zu bytes, more than the limit of %d", sz,
			 MMDS_DATA_MAX);
		return -EFBIG;
	}
	return 0;
}

int mmds_put(struct mmds *m, const char *json, size_t len, char *err, size_t n)
{
	json_t *v;
	int ret = parse_object(json, len, &v, err, n);

	if (ret)
		return ret;
	ret = check_size(v, err, n);
	if (ret) {
		json_decref(v);
		return ret;
	}
	pthread_mutex_lock(&m->lock);
	json_decref(m->data);
	m->data = v;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int mmds_patch(struct mmds *m, const char *json, size_t len, char *err, size_t n)
{
	json_t *patch, *next;
	int ret = parse_object(json, len, &patch, err, n);

	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	/* Patch a deep copy: the old data stays if the result is too big or memory runs out. */
	next = m->data ? json_deep_copy(m->data) : json_object();
	if (!next || merge_patch(next, patch)) {
		snprintf(err, n, "out of memory");
		ret = -ENOMEM;
	} else if (depth_of(next, MMDS_DEPTH_MAX) > MMDS_DEPTH_MAX) {
		snprintf(err, n, "the MMDS data would nest deeper than %d levels", MMDS_DEPTH_MAX);
		ret = -EINVAL;
	} else {
		ret = check_size(next, err, n);
	}
	if (!ret) {
		json_decref(m->data);
		m->data = next;
		next = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	json_decref(next);
	json_decref(patch);
	return ret;
}

char *mmds_get(struct mmds *m)
{
	char *s;

	pthread_mutex_lock(&m->lock);
	s = m->data ? json_dumps(m->data, JSON_COMPACT) : strdup("{}");
	pthread_mutex_unlock(&m->lock);
	return s;
}

int mmds_config_check(const struct mmds_config *c, char *err, size_t n)
{
	if (c->version != 1 && c->version != 2) {
		snprintf(err, n, "MMDS version %u: only 1 and 2 exist", c->version);
		return -EINVAL;
	}
	/* RFC 3927: the guest reaches MMDS at a link-local address, never a routable one. */
	if ((c->ipv4 & 0xffff0000u) != 0xa9fe0000u) {
		snprintf(err, n, "MMDS address %u.%u.%u.%u is not in 169.254.0.0/16", c->ipv4 >> 24,
			 (c->ipv4 >> 16) & 255, (c->ipv4 >> 8) & 255, c->ipv4 & 255);
		return -EINVAL;
	}
	return 0;
}

int mmds_set_config(struct mmds *m, const struct mmds_config *c, char *err, size_t n)
{
	int ret = mmds_config_check(c, err, n);

	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	m->cfg = *c;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void mmds_get_config(struct mmds *m, struct mmds_config *c)
{
	pthread_mutex_lock(&m->lock);
	*c = m->cfg;
	pthread_mutex_unlock(&m->lock);
}

/* --- session tokens (V2) --- */

/* Lock held.  32 bytes from getrandom(2) as hex: unguessable, and printable in a header. */
static int token_new(struct mmds *m, unsigned ttl_s, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[MMDS_TOKEN_CHARS / 2];
	struct mmds_token *slot = &m->tokens[0];
	int64_t now = m->now();
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	/* A free or expired slot, else the one that expires first. */
	for (unsigned i = 0; i < MMDS_TOKENS_MAX; i++) {
		struct mmds_token *t = &m->tokens[i];

		if (t->expires_ns <= now) {
			slot = t;
			break;
		}
		if (t->expires_ns < slot->expires_ns)
			slot = t;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		slot->text[2 * i] = hex[raw[i] >> 4];
		slot->text[2 * i + 1] = hex[raw[i] & 15];
	}
	slot->text[MMDS_TOKEN_CHARS] = '\0';
	slot->expires_ns = now + (int64_t)ttl_s * 1000000000;
	memcpy(out, slot->text, MMDS_TOKEN_CHARS + 1);
	return 0;
}

/* Lock held.  Compares every byte of every live slot, so timing says nothing about which
 * prefix matched. */
static bool token_valid(struct mmds *m, const char *tok)
{
	int64_t now = m->now();
	bool ok = false;

	if (strlen(tok) != MMDS_TOKEN_CHARS)
		return false;
	for (unsigned i = 0; i < MMDS_TOKENS_MAX; i++) {
		const struct mmds_token *t = &m->tokens[i];
		unsigned diff = 0;

		if (t->expires_ns <= now)
			continue;
		for (unsigned j = 0; j < MMDS_TOKEN_CHARS; j++)
			diff |= (unsigned)(t->text[j] ^ tok[j]);
		ok |= diff == 0;
	}
	return ok;
}

/* --- answers --- */

static int respond(struct mmds_response *rs, unsigned status, const char *ctype, const char *body)
{
	rs->status = status;
	rs->content_type = ctype;
	rs->allow = NULL;
	rs->len = strlen(body);
	rs->body = strdup(body);
	return rs->body ? 0 : -ENOMEM;
}

static int respond_text(struct mmds_response *rs, unsigned status, const char *body)
{
	return respond(rs, status, "text/plain", body);
}

/* "1".."21600" only: digits, no sign, no spaces. */
static bool parse_ttl(const char *s, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 6)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0 || v < 1 || v > MMDS_TTL_MAX)
		return false;
	*out = v;
	return true;
}

static int handle_token(struct mmds *m, const struct mmds_request *rq, struct mmds_response *rs)
{
	char tok[MMDS_TOKEN_CHARS + 1];
	unsigned ttl;
	int ret;

	/* A request relayed by a proxy in the guest is refused: the token is for the guest
	 * itself (Firecracker rejects X-Forwarded-For here for the same reason). */
	if (rq->forwarded)
		return respond_text(rs, 400,
				    "Invalid header. Reason: Unsupported header name. "
				    "Key: X-Forwarded-For");
	if (!rq->ttl)
		return respond_text(rs, 400,
				    "Token time to live value not found. Use "
				    "`X-metadata-token-ttl-seconds` header to specify "
				    "the token's lifetime.");
	if (!parse_ttl(rq->ttl, &ttl))
		return respond_text(rs, 400,
				    "Invalid time to live value provided for token. "
				    "Please provide a value between 1 and 21600.");
	pthread_mutex_lock(&m->lock);
	ret = token_new(m, ttl, tok);
	pthread_mutex_unlock(&m->lock);
	if (ret)
		return respond_text(rs, 500, "Cannot generate a token.");
	return respond_text(rs, 200, tok);
}

/* Walk the '/'-separated path (empty components skipped) from the root.  Lock held. */
static json_t *lookup(json_t *root, const char *path)
{
	json_t *v = root;
	char key[256];

	while (v && *path) {
		size_t len;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		len = strcspn(path, "/");
		if (len >= sizeof(key) || !json_is_object(v))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		v = json_object_get(v, key);
		path += len;
	}
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* IMDS text for an object: its keys in sorted order, one per line, "key/" for sub-objects
 * (how EC2's IMDS lists a directory). */
static char *imds_object(json_t *o)
{
	size_t n = json_object_size(o), i = 0, total = 1;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	const char *k;
	json_t *v;
	char *out, *p;

	if (!keys)
		return NULL;
	json_object_foreach(o, k, v)
	{
		keys[i++] = k;
		total += strlen(k) + 2;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	out = p = malloc(total);
	if (out) {
		for (i = 0; i < n; i++) {
			size_t l = strlen(keys[i]);

			memcpy(p, keys[i], l);
			p += l;
			if (json_is_object(json_object_get(o, keys[i])))
				*p++ = '/';
			if (i + 1 < n)
				*p++ = '\n';
		}
		*p = '\0';
	}
	free(keys);
	return out;
}

static bool wants_json(const char *accept)
{
	return accept && strstr(accept, "application/json");
}

static int handle_get(struct mmds *m, const struct mmds_request *rq, struct mmds_response *rs)
{
	json_t *v;
	char *body = NULL;
	unsigned status = 200;
	const char *ctype = "text/plain", *msg = NULL;

	pthread_mutex_lock(&m->lock);
	/* V2 needs a live session token; V1 serves without one (and ignores one given). */
	if (m->cfg.version == 2 && !rq->token)
		msg = "No MMDS token provided. Use `X-metadata-token` header to specify the "
		      "session token.",
		status = 401;
	else if (m->cfg.version == 2 && !token_valid(m, rq->token))
		msg = "MMDS token not valid.", status = 401;
	else if (!m->data)
		msg = "The MMDS data store is not initialized.", status = 404;
	else if (!(v = lookup(m->data, rq->path)))
		msg = "Resource not found.", status = 404;
	else if (!m->cfg.imds_compat && wants_json(rq->accept))
		body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), ctype = "application/json";
	else if (json_is_string(v))
		body = strndup(json_string_value(v), json_string_length(v));
	else if (json_is_object(v))
		body = imds_object(v);
	else
		/* Numbers, booleans, null and arrays have no IMDS text form. */
		msg = "Cannot retrieve value. The value has an unsupported type.", status = 501;
	pthread_mutex_unlock(&m->lock);
	if (msg)
		return respond_text(rs, status, msg);
	if (!body)
		return -ENOMEM;
	rs->status = status;
	rs->content_type = ctype;
	rs->allow = NULL;
	rs->body = body;
	rs->len = strlen(body);
	return 0;
}

int mmds_handle(struct mmds *m, const struct mmds_request *rq, struct mmds_response *rs)
{
	const char *path = rq->path ? rq->path : "/";

	memset(rs, 0, sizeof(*rs));
	if (rq->method && !strcmp(rq->method, "PUT")) {
		if (strcmp(path, MMDS_TOKEN_PATH))
			return respond_text(rs, 404, "Resource not found.");
		return handle_token(m, rq, rs);
	}
	if (rq->method && !strcmp(rq->method, "GET")) {
		struct mmds_request r = *rq;

		r.path = path;
		return handle_get(m, &r, rs);
	}
	if (respond_text(rs, 405, "Not allowed HTTP method."))
		return -ENOMEM;
	rs->allow = "GET, PUT";
	return 0;
}
