/* Metrics in Firecracker's style: counters kept by the devices, vCPUs, the API and the
 * snapshot code, written as one JSON object per flush (every 60 s once a path is set, on
 * request, and at exit) to --metrics-path (a file, appended to, or a FIFO).
 *
 * Counters are process-global and updated with relaxed atomics from any thread; the JSON
 * layout is described in docs/api.md ("Metrics").  Threading: metrics_open/close on the main
 * thread; metrics_flush from any thread (one writer at a time, serialised inside). */
#ifndef IGNITION_CORE_METRICS_H
#define IGNITION_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Start writing metrics to `path` (created 0600 if missing; a FIFO is opened for writing
 * without blocking forever).  Once only: a second call is -EALREADY.  0 or -errno with a
 * one-line reason in err[n]. */
int metrics_open(const char *path, char *err, size_t n) __attribute__((warn_unused_result));
/* Write one JSON object (one line) with every counter now; counters that are deltas
 * ("since the last flush") are reset.  -ENOENT when no path is open, else 0 or -errno. */
int metrics_flush(void);
/* Final flush and close (at exit).  No-op when nothing is open. */
void metrics_close(void);
/* The API server counts each request: `route` is the path template ("/drives/{drive_id}"),
 * `status` the HTTP status sent. */
void metrics_api_request(const char *method, const char *route, unsigned status);
/* Snapshot and restore times (microseconds), kept as the latest value. */
void metrics_snapshot_time(uint64_t create_us);
void metrics_restore_time(uint64_t load_us);

#endif
