#ifndef IGNITION_CORE_KVM_STATS_H
#define IGNITION_CORE_KVM_STATS_H

/* KVM's own counters for a VM or a vCPU (exits, interrupt injections, halts, page faults...),
 * read from the binary statistics file descriptor (Linux 5.14+, KVM_GET_STATS_FD,
 * Documentation/virt/kvm/api.rst).  The control socket's `kvm_stats` command shows them: they
 * tell where a slow guest's time goes (an interrupt storm, emulated instructions, halts)
 * without a debugger, and debugfs is not readable in every container. */

#include <jansson.h>

/* The statistics fd of a VM or vCPU fd (in this process: KVM refuses other processes);
 * -errno (-ENOTTY/-EINVAL on kernels without binary statistics). */
int kvm_stats_open(int kvm_obj_fd);

/* Add every single-valued statistic of `stats_fd` (cumulative, instant and peak values;
 * histograms are left out) to `obj` as "name": value.  0 or -errno (-EINVAL for a file that
 * is not a KVM statistics file: sizes and offsets are checked before use). */
int kvm_stats_read(int stats_fd, json_t *obj);

#endif
