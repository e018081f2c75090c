/* Optional parts of ignition built as shared objects and loaded only by the processes that use
 * them (docs/architecture.md, "Modules"): the GUI front ends (ignition-ui.so: SDL2,
 * libvncserver, libpng) and the HTTP servers (ignition-http.so: libmicrohttpd).  Linked into the
 * executable, those libraries and the ~60 they pull in cost every process, a console VM's
 * restore too, ~6.5 ms of mapping and relocation before main() and their private pages. */
#ifndef IGNITION_UTIL_MODULE_H
#define IGNITION_UTIL_MODULE_H

#include <stddef.h>

#include <stdint.h>

/* Load module `file` (found beside the executable, else in ../lib/ignition/ from it, where
 * `make install` puts it) and set *table to its symbol `symbol`, the module's table of entry
 * points, whose first member is a uint32_t interface number that must equal `abi` (a module
 * from another build is refused).  A module stays loaded for the life of the process.  0, or
 * -errno with one line in err naming the file and the loader's reason. */
int module_load(const char *file, const char *symbol, uint32_t abi, const void **table, char *err,
		size_t n) __attribute__((warn_unused_result));

#endif
