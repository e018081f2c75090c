/* The Uffd memory backend of a snapshot load (Firecracker's `mem_backend` `Uffd`): guest RAM
 * is anonymous memory registered with a userfaultfd (gmem_alloc_flags GMEM_UFFD), and an
 * external page-fault handler, listening on a Unix socket, fills it.
 *
 * The handshake (docs/api.md, "Page-fault handlers"): ignition connects to the socket and
 * sends one message, a JSON array with one object per guest RAM region, in RAM-offset order
 *   [{"base_host_virt_addr": A, "size": S, "offset": O, "page_size": P, "page_size_kib": P}]
 * (A: the region's host address in ignition; O: where its bytes start in the snapshot's
 * memory file; P: the page size in bytes, 4096 or 2097152 with huge pages, under both names
 * as Firecracker v1.16 sends them), with the userfaultfd as SCM_RIGHTS ancillary data.
 * Nothing else is ever sent.  ignition keeps the connection and its own copy of the
 * userfaultfd open while the VM lives; it watches the handler's process (the socket's
 * SO_PEERCRED pid, through a pidfd; the connection's end where there is no pidfd) and stops
 * the VM with an error when it exits, instead of leaving the guest frozen on a fault that
 * nobody will serve. */
#ifndef IGNITION_CORE_UFFD_H
#define IGNITION_CORE_UFFD_H

#include <stddef.h>

struct gmem;
struct vm;
struct uffd_backend;

/* Write the handshake's JSON for `gm` into buf.  Its length, or -ENOSPC. */
int uffd_mappings_json(const struct gmem *gm, char *buf, size_t size)
	__attribute__((warn_unused_result));

/* Connect to the handler at `path` and send the handshake with gm->uffd; from then on a
 * thread watches the handler until uffd_backend_start().  Call before anything touches guest
 * memory (a touch before it waits for a handler that does not know the VM yet).  0, or
 * -errno with one line in err (-ENOENT: no socket there, -ECONNREFUSED: nobody listens). */
int uffd_backend_connect(struct gmem *gm, const char *path, struct uffd_backend **out, char *err,
			 size_t n) __attribute__((warn_unused_result));

/* The load is done: stop the load-time watcher and watch the handler on vm's event loop
 * (its exit stops the VM with VM_STOP_ERROR).  -EPIPE with one line in err if the handler
 * exited during the load (guest memory is then unusable). */
int uffd_backend_start(struct uffd_backend *b, struct vm *vm, char *err, size_t n)
	__attribute__((warn_unused_result));

/* Forget the handler (closes the connection; NULL is a no-op).  Before the VM's memory is
 * freed; on the main thread, the event loop no longer running. */
void uffd_backend_destroy(struct uffd_backend *b);

#endif
