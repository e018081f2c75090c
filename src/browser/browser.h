/* `ignition browser`: a disposable web browser.  Each session is a fresh clone of a warm base
 * snapshot of the browser guest (Firefox ESR in cage, guest/browser), shown in a window,
 * headless or over VNC, and discarded at exit.  The base is made once, by a cold boot of the
 * browser guest that asks for its own snapshot when Firefox has drawn its start page, and made
 * again when the guest image is newer.  docs/browser.md. */
#ifndef IGNITION_BROWSER_BROWSER_H
#define IGNITION_BROWSER_BROWSER_H

#include <stdbool.h>
#include <stddef.h>

/* The longest URL given (bytes; "http://" may then be put in front). */
#define BROWSER_URL_MAX 2000

struct browser_opts {
	const char *url;       /* the page the clone shows (http:// or https://); NULL: the start
				* page */
	const char *base;      /* the warm base's directory; NULL: guest/out/browser-base */
	const char *gui;       /* the child's --gui mode ("sdl", "headless"); NULL: sdl */
	const char *vnc;       /* the child's --vnc argument; NULL: none */
	const char *control;   /* the child's --control socket; NULL: one in the session dir */
	const char *net;       /* the child's --net (the clone's); NULL: the base's own (user) */
	bool make_base;	       /* make (or refresh) the base, then exit without a session */
	bool rebuild;	       /* make the base again even when it is current */
	unsigned base_timeout; /* seconds the base's cold boot may take */
	char url_buf[BROWSER_URL_MAX + 8]; /* url: its scheme in lower case, or http:// added */
};

/* Parse argv (argv[0] is "browser").  0, 1 when --help was printed, -EINVAL with err[n]. */
int browser_parse(int argc, char **argv, struct browser_opts *o, char *err, size_t n)
	__attribute__((warn_unused_result));
int browser_main(int argc, char **argv);

#endif
