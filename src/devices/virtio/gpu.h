/* virtio-gpu, 2D only (virtio 1.2 §5.7): one scanout the guest draws into through host-side
 * resources, shown through a struct display (src/ui/display.h) that the front ends read.
 * `--gui`, `--vnc` or `--gpu WxH` add it (with the keyboard and tablet of virtio-input). */
#ifndef IGNITION_DEVICES_VIRTIO_GPU_H
#define IGNITION_DEVICES_VIRTIO_GPU_H

#include "devices/virtio/virtio.h"

#include <stdint.h>

struct devmgr;
struct display;
struct virtio_gpu;

#define VIRTIO_ID_GPU 16

/* The virtio ops of the GPU device (register with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_gpu_ops;

/* A new GPU device showing its scanout on `d` (not owned; outlives the device).  It reports
 * d's preferred mode as its display info and installs itself as d's resize handler.
 * -ENOMEM. */
int virtio_gpu_create(struct display *d, struct virtio_gpu **out)
	__attribute__((warn_unused_result));

/* Create the device and register it as "virtio-gpu" on `dm`. */
int virtio_gpu_add(struct devmgr *dm, struct display *d, struct virtio_gpu **out)
	__attribute__((warn_unused_result));

/* Free the device (also virtio_gpu_ops.destroy). */
void virtio_gpu_destroy(struct virtio_gpu *g);

/* ---- Additions of the implementation (virtio 1.2 §5.7) ---- */

struct gmem;

/* Queues (§5.7.2) and their size. */
#define VIRTIO_GPU_Q_CONTROL  0
#define VIRTIO_GPU_Q_CURSOR   1
#define VIRTIO_GPU_QUEUE_SIZE 256u

/* Feature bits (§5.7.3). */
#define VIRTIO_GPU_F_VIRGL 0
#define VIRTIO_GPU_F_EDID  1

/* Config space (§5.7.4): le32 events_read, events_clear, num_scanouts, num_capsets. */
#define VIRTIO_GPU_CFG_EVENTS_READ  0
#define VIRTIO_GPU_CFG_EVENTS_CLEAR 4
#define VIRTIO_GPU_CFG_NUM_SCANOUTS 8
#define VIRTIO_GPU_CFG_NUM_CAPSETS  12
#define VIRTIO_GPU_CFG_SIZE	    16
#define VIRTIO_GPU_EVENT_DISPLAY    (1u << 0)

/* Command and response types (§5.7.6.7). */
#define VIRTIO_GPU_CMD_GET_DISPLAY_INFO		0x0100u
#define VIRTIO_GPU_CMD_RESOURCE_CREATE_2D	0x0101u
#define VIRTIO_GPU_CMD_RESOURCE_UNREF		0x0102u
#define VIRTIO_GPU_CMD_SET_SCANOUT		0x0103u
#define VIRTIO_GPU_CMD_RESOURCE_FLUSH		0x0104u
#define VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D	0x0105u
#define VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING	0x0106u
#define VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING	0x0107u
#define VIRTIO_GPU_CMD_GET_CAPSET_INFO		0x0108u
#define VIRTIO_GPU_CMD_GET_EDID			0x010au
#define VIRTIO_GPU_CMD_UPDATE_CURSOR		0x0300u
#define VIRTIO_GPU_CMD_MOVE_CURSOR		0x0301u
#define VIRTIO_GPU_RESP_OK_NODATA		0x1100u
#define VIRTIO_GPU_RESP_OK_DISPLAY_INFO		0x1101u
#define VIRTIO_GPU_RESP_OK_EDID			0x1104u
#define VIRTIO_GPU_RESP_ERR_UNSPEC		0x1200u
#define VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY	0x1201u
#define VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID	0x1202u
#define VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID 0x1203u
#define VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID	0x1204u
#define VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER	0x1205u
#define VIRTIO_GPU_FLAG_FENCE			(1u << 0)

/* Wire sizes (§5.7.6.7-§5.7.6.10): header, requests, responses, scatter-list entry. */
#define VIRTIO_GPU_HDR_SIZE	     24u
#define VIRTIO_GPU_MAX_SCANOUTS	     16u
#define VIRTIO_GPU_DISPLAY_INFO_SIZE (VIRTIO_GPU_HDR_SIZE + VIRTIO_GPU_MAX_SCANOUTS * 24u)
#define VIRTIO_GPU_EDID_RESP_SIZE    (VIRTIO_GPU_HDR_SIZE + 8u + 1024u)
#define VIRTIO_GPU_MEM_ENTRY_SIZE    16u
#define VIRTIO_GPU_EDID_SIZE	     128u

/* Host-side limits a guest cannot exceed (ERR_INVALID_PARAMETER or ERR_OUT_OF_MEMORY). */
#define VIRTIO_GPU_MAX_RESOURCES   1024u
#define VIRTIO_GPU_MAX_DIM	   16384u	  /* width or height of one resource */
#define VIRTIO_GPU_MAX_HOST_BYTES  (256ull << 20) /* all resources' pixels together */
#define VIRTIO_GPU_MAX_ENTRIES	   65536u	  /* one ATTACH_BACKING: 256 MiB in 4 KiB pages */
#define VIRTIO_GPU_MAX_ALL_ENTRIES (4u * 65536u)  /* backing entries of all resources */

/* Give the device guest memory (virtio_gpu_add does it with the manager's): backing entries
 * are checked against it and read through it. */
void virtio_gpu_set_gmem(struct virtio_gpu *g, const struct gmem *gm);

/* The hardware cursor as the driver last set it on the cursor queue (§5.7.6.10); resource 0
 * means hidden.  For front ends that draw it, and tests. */
struct virtio_gpu_cursor {
	uint32_t resource_id;
	uint32_t x, y;
	uint32_t hot_x, hot_y;
};

/* The cursor state (taken under the transport lock: any thread). */
void virtio_gpu_get_cursor(struct virtio_gpu *g, struct virtio_gpu_cursor *out);

/* Resources the guest holds and the host bytes of their pixels (tests, diagnostics). */
void virtio_gpu_usage(struct virtio_gpu *g, uint32_t *resources, uint64_t *bytes);

/* 128-byte EDID 1.4 block (VESA E-EDID) for a w x h display at 60 Hz: header, checksum, the
 * preferred detailed timing w x h.  Exposed for tests. */
void virtio_gpu_build_edid(uint32_t w, uint32_t h, uint8_t out[VIRTIO_GPU_EDID_SIZE]);

#endif
