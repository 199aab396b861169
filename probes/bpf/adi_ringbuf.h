/* When a BPF ring buffer wakes its reader: shared by adi.bpf.c and go_http.bpf.c.
 * Include after <bpf/bpf_helpers.h>. */
#ifndef ADI_RINGBUF_H
#define ADI_RINGBUF_H

/* bpf_ringbuf_query / output flags (include/uapi/linux/bpf.h, not included: the programs'
 * headers are standalone). */
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0

/* Pending bytes per wakeup of the reader. */
#define WAKEUP_BYTES (256 * 1024)

/* The flags for a record of `size` bytes on `ring`: a wakeup when the record makes the
 * pending data cross a multiple of WAKEUP_BYTES, none otherwise. A wakeup is an
 * inter-processor interrupt, a VM exit in a guest: forcing one per record while user space
 * lagged behind cost the traced processes about a microsecond per message. A crossing two
 * CPUs miss together is caught at the next multiple; user space also polls. */
static __always_inline __u64 wakeup_flags(void *ring, __u64 size)
{
	__u64 pending = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	return pending / WAKEUP_BYTES != (pending + size) / WAKEUP_BYTES ?
		       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

#endif
