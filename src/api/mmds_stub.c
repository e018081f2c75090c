/* Placeholder for MMDS (src/api/mmds.h) so the REST API links before the MMDS work lands:
 * every function fails with -ENOSYS.  Deleted when the real mmds.c is merged. */
#include "api/mmds.h"

#include <errno.h>
#include <stdio.h>

int mmds_create(struct mmds **out)
{
	*out = NULL;
	return -ENOSYS;
}

void mmds_destroy(struct mmds *m)
{
	(void)m;
}

int mmds_put(struct mmds *m, const char *json, size_t len, char *err, size_t n)
{
	(void)m;
	(void)json;
	(void)len;
	snprintf(err, n, "MMDS is not implemented yet");
	return -ENOSYS;
}

int mmds_patch(struct mmds *m, const char *json, size_t len, char *err, size_t n)
{
	return mmds_put(m, json, len, err, n);
}

char *mmds_get(struct mmds *m)
{
	(void)m;
	return NULL;
}

int mmds_set_config(struct mmds *m, const struct mmds_config *c, char *err, size_t n)
{
	(void)m;
	(void)c;
	snprintf(err, n, "MMDS is not implemented yet");
	return -ENOSYS;
}

void mmds_get_config(struct mmds *m, struct mmds_config *c)
{
	(void)m;
	c->version = 1;
	c->ipv4 = MMDS_DEFAULT_IPV4;
	c->ifaces = 0;
}
