/* virtio-blk (virtio 1.2 §5.2) over a raw image file or block device: `--disk PATH[,ro]`. */
#ifndef IGNITION_DEVICES_VIRTIO_BLK_H
#define IGNITION_DEVICES_VIRTIO_BLK_H

#include "devices/virtio/virtio.h"

#include <stdbool.h>
#include <stdint.h>

/* Feature bits (virtio 1.2 §5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_GEOMETRY	  4
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_CONFIG_WCE	  11
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flag (§5.2.6): may deallocate. */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

#define VIRTIO_BLK_SECTOR_SIZE 512u
#define VIRTIO_BLK_ID_BYTES    20u /* GET_ID answer: serial, NUL-padded */
#define VIRTIO_BLK_QUEUE_SIZE  256u
/* Largest data transfer of one request; bigger ones fail with IOERR. */
#define VIRTIO_BLK_MAX_REQUEST (64u << 20)
/* Discard / write-zeroes limits advertised in config space. */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB */
#define VIRTIO_BLK_MAX_DISCARD_SEG     32u

/* Config space layout (§5.2.4), byte offsets. */
#define VIRTIO_BLK_CFG_CAPACITY		   0
#define VIRTIO_BLK_CFG_SIZE_MAX		   8
#define VIRTIO_BLK_CFG_SEG_MAX		   12
#define VIRTIO_BLK_CFG_BLK_SIZE		   20
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG	   40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT   44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS	   48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG	   52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP	   56
#define VIRTIO_BLK_CFG_SIZE		   60

struct virtio_blk;

/* The virtio ops of a block device (register it with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_blk_ops;

/* Open `path` (O_RDONLY when read_only) as a disk whose GET_ID answer is `serial` (at most 20
 * bytes used; NULL: "ignition").  -errno from open (-ENOENT, -EACCES...), -EINVAL for an image
 * smaller than one sector. */
int virtio_blk_create(const char *path, bool read_only, const char *serial, struct virtio_blk **out)
	__attribute__((warn_unused_result));

/* Capacity in 512-byte sectors. */
uint64_t virtio_blk_capacity(const struct virtio_blk *b);

/* Close the image and free the device (also virtio_blk_ops.destroy). */
void virtio_blk_destroy(struct virtio_blk *b);

#endif
