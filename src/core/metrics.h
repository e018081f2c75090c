/* Metrics in Firecracker's style: counters kept by the devices, vCPUs, the API and the
 * snapshot code, written as one JSON object per flush (every 60 s once a path is set, on
 * request, and at exit) to --metrics-path (a file, appended to, or a FIFO).
 *
 * Counters are process-global and updated with relaxed atomics from any thread; the JSON
 * layout is described in docs/metrics.md.  Threading: metrics_open/close on the main
 * thread; metrics_flush from any thread (one writer at a time, serialised inside). */
#ifndef IGNITION_CORE_METRICS_H
#define IGNITION_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start writing metrics to `path` (created 0600 if missing; a FIFO is opened for writing
 * without blocking forever).  Once only: a second call is -EALREADY.  0 or -errno with a
 * one-line reason in err[n]. */
int metrics_open(const char *path, char *err, size_t n) __attribute__((warn_unused_result));
/* Write one JSON object (one line) with every counter now; counters that are deltas
 * ("since the last flush") are reset.  -ENOENT when no path is open, else 0 or -errno. */
int metrics_flush(void);
/* True once metrics_open() succeeded (and until metrics_close()). */
bool metrics_is_open(void);
/* Final flush and close (at exit).  No-op when nothing is open. */
void metrics_close(void);
/* The API server counts each request: `route` is the path template ("/drives/{drive_id}"),
 * `status` the HTTP status sent. */
void metrics_api_request(const char *method, const char *route, unsigned status);
/* Snapshot and restore times (microseconds), kept as the latest value. */
void metrics_snapshot_time(uint64_t create_us);
void metrics_restore_time(uint64_t load_us);

/* ---- Counters (docs/metrics.md lists every key).  Every counter below is a delta: the JSON
 * reports what was added since the previous flush, and the flush takes it back to zero with an
 * atomic exchange, so an increment racing with a flush lands in this line or the next, never
 * lost.  Update them with METRIC_INC/METRIC_ADD from any thread. */
#define METRIC_ADD(c, n) __atomic_fetch_add(&(c), (uint64_t)(n), __ATOMIC_RELAXED)
#define METRIC_INC(c)	 METRIC_ADD(c, 1)

/* X-macro lists: one place names a counter for both the struct and the JSON key. */
/* clang-format off */
#define METRICS_BLK_FIELDS(X) \
	X(queue_event_count) X(invalid_reqs_count) X(execute_fails) X(flush_count) \
	X(read_count) X(write_count) X(read_bytes) X(write_bytes) X(discard_count) \
	X(write_zeroes_count)
#define METRICS_NET_FIELDS(X) \
	X(rx_queue_event_count) X(rx_bytes_count) X(rx_packets_count) X(rx_fails) \
	X(rx_dropped_count) X(no_rx_avail_buffer) X(tx_queue_event_count) \
	X(tx_bytes_count) X(tx_packets_count) X(tx_fails) X(tx_malformed_frames) \
	X(tx_dropped_count)
#define METRICS_VSOCK_FIELDS(X) \
	X(rx_queue_event_count) X(tx_queue_event_count) X(rx_bytes_count) \
	X(tx_bytes_count) X(rx_packets_count) X(tx_packets_count) X(conns_added) \
	X(conns_killed) X(conns_removed) X(tx_write_fails) X(rx_read_fails)
#define METRICS_BALLOON_FIELDS(X) \
	X(inflate_count) X(deflate_count) X(stats_updates_count)
#define METRICS_ENTROPY_FIELDS(X) \
	X(entropy_event_count) X(entropy_bytes) X(host_rng_fails)
#define METRICS_VCPU_FIELDS(X) \
	X(exit_io_in) X(exit_io_out) X(exit_mmio_read) X(exit_mmio_write) X(exit_hlt) \
	X(exit_shutdown) X(exit_system_event) X(failures)
/* clang-format on */

#define METRICS_FIELD_(f) uint64_t f;
struct metrics_blk {
	METRICS_BLK_FIELDS(METRICS_FIELD_)
};
struct metrics_net {
	METRICS_NET_FIELDS(METRICS_FIELD_)
};
struct metrics_vsock {
	METRICS_VSOCK_FIELDS(METRICS_FIELD_)
};
struct metrics_balloon {
	METRICS_BALLOON_FIELDS(METRICS_FIELD_)
};
struct metrics_entropy {
	METRICS_ENTROPY_FIELDS(METRICS_FIELD_)
};
struct metrics_vcpu {
	METRICS_VCPU_FIELDS(METRICS_FIELD_)
};

/* The single-instance devices and the vCPUs (all vCPUs share one block, like Firecracker). */
extern struct metrics_vsock metrics_vsock;
extern struct metrics_balloon metrics_balloon;
extern struct metrics_entropy metrics_entropy;
extern struct metrics_vcpu metrics_vcpu;

/* The counters of block device `id` ("block_<id>" in the JSON; "block" sums them all), kept
 * for the process's life: a device created again under the same id (restore, hot swap) goes
 * on counting in the same place.  Never NULL: past METRICS_MAX_DEVICES ids, one spare block
 * counts only into the aggregate. */
#define METRICS_MAX_DEVICES 16
struct metrics_blk *metrics_blk_get(const char *id);
/* The same for network interface `id` ("net_<id>", aggregate "net"). */
struct metrics_net *metrics_net_get(const char *id);

/* Flush every period_ms (0: 60 s) on the event loop `ev` from now on, while a path is open
 * (call once, on the main thread, before the loop runs; metrics_close stops it). */
struct evloop;
int metrics_start_timer(struct evloop *ev, unsigned period_ms) __attribute__((warn_unused_result));
/* A Diff snapshot's creation time (metrics_snapshot_time is a Full one's). */
void metrics_diff_snapshot_time(uint64_t create_us);

#endif
