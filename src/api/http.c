/* http.h: the HTTP module's table, loaded on first use.  A program that links the module's
 * objects in (the unit tests) has the table already, through the weak reference. */
#include "api/http.h"

#include "util/module.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

extern const struct http_module http_module __attribute__((weak));

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const struct http_module *mod; /* written once, under lock */

static const struct http_module *load(char *err, size_t n)
{
	const void *t = NULL;

	pthread_mutex_lock(&lock);
	if (!mod && &http_module)
		mod = &http_module;
	if (!mod &&
	    module_load("ignition-http.so", "http_module", HTTP_MODULE_ABI, &t, err, n) == 0)
		mod = t;
	pthread_mutex_unlock(&lock);
	return mod;
}

int http_api_start(const char *path, struct api *a, struct api_server **out, char *err, size_t n)
{
	*out = NULL;
	return load(err, n) ? mod->api_server_start(path, a, out, err, n) : -ELIBBAD;
}

/* The calls below take a server or endpoint that one of the two above made: the module is
 * loaded. */
void http_api_filter(struct api_server *s)
{
	if (s)
		mod->api_server_filter(s);
}

void http_api_stop(struct api_server *s)
{
	if (s)
		mod->api_server_stop(s);
}

int http_mmds_create(struct mmds *m, struct mmds_http **out, char *err, size_t n)
{
	*out = NULL;
	return load(err, n) ? mod->mmds_http_create(m, out, err, n) : -ELIBBAD;
}

const char *http_mmds_path(const struct mmds_http *h)
{
	return mod->mmds_http_path(h);
}

int http_mmds_start(struct mmds_http *h, struct evloop *ev)
{
	return mod->mmds_http_start(h, ev);
}

void http_mmds_destroy(struct mmds_http *h)
{
	if (h)
		mod->mmds_http_destroy(h);
}
