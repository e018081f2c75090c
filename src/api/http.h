/* The HTTP servers, for the rest of ignition: the REST API's (server.h) and the guest's MMDS
 * endpoint (mmds_http.h).  They live in the HTTP module (build/ignition-http.so, linked with
 * libmicrohttpd; util/module.h says why), loaded by the first http_api_start() or
 * http_mmds_create(): both run before any jail is entered (fc_main.c, the machine's build).
 * Each call below forwards to the function of the same name without "http_" in server.h or
 * mmds_http.h, which document them. */
#ifndef IGNITION_API_HTTP_H
#define IGNITION_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct api;
struct api_server;
struct evloop;
struct mmds;
struct mmds_http;

/* Bump when the module's table or a structure it is passed changes. */
#define HTTP_MODULE_ABI 1

/* The module's table (defined in server.c). */
struct http_module {
	uint32_t abi; /* HTTP_MODULE_ABI of the module's build; first (module_load checks it) */
	int (*api_server_start)(const char *path, struct api *a, struct api_server **out, char *err,
				size_t n);
	void (*api_server_filter)(struct api_server *s);
	void (*api_server_stop)(struct api_server *s);
	int (*mmds_http_create)(struct mmds *m, struct mmds_http **out, char *err, size_t n);
	const char *(*mmds_http_path)(const struct mmds_http *h);
	int (*mmds_http_start)(struct mmds_http *h, struct evloop *ev);
	void (*mmds_http_destroy)(struct mmds_http *h);
};

int http_api_start(const char *path, struct api *a, struct api_server **out, char *err, size_t n)
	__attribute__((warn_unused_result));
void http_api_filter(struct api_server *s);
void http_api_stop(struct api_server *s);
int http_mmds_create(struct mmds *m, struct mmds_http **out, char *err, size_t n)
	__attribute__((warn_unused_result));
const char *http_mmds_path(const struct mmds_http *h);
int http_mmds_start(struct mmds_http *h, struct evloop *ev) __attribute__((warn_unused_result));
void http_mmds_destroy(struct mmds_http *h);

#endif
