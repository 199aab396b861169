/* The wire format between adi's BPF programs and user space. Mirrored by
 * probes/src/raw.rs, which pins the sizes with compile-time asserts: change both together.
 * No implicit padding: every field is explicitly sized and the struct is a multiple of 8.
 */
#ifndef ADI_EVENTS_H
#define ADI_EVENTS_H

/* Hard cap of payload bytes per event; --capture-bytes picks a smaller per-message cap.
 * Twice this plus the header must fit a per-CPU map value (32 KiB). */
#define ADI_MAX_PAYLOAD 8192
/* Most iovec entries walked per readv/writev/sendmsg/recvmsg (bytes beyond are a gap). */
#define ADI_MAX_IOV 64

/* Event kinds: never reuse a value. */
#define ADI_EV_DATA 1
#define ADI_EV_CONNECT 2 /* a watched process's connection is established (role client) */
#define ADI_EV_ACCEPT 3  /* retired: accepted connections show with their first message */
#define ADI_EV_CLOSE 4   /* a known connection reached TCP_CLOSE */
#define ADI_EV_EXEC 5  /* a process exec'd: real_len carries ADI_EXEC_* flags */
#define ADI_EV_EXIT 6  /* a watched process exited (its last thread) */

/* Flags of an ADI_EV_EXEC event, in `real_len`. */
#define ADI_EXEC_WATCHED 1    /* the kernel now watches the process */
#define ADI_EXEC_WAS_WATCHED 2 /* it was watched before the exec */
#define ADI_EXEC_UNDECIDED 4  /* the environment could not be read: user space decides */

/* Longest ADI_PROFILE value compared in the kernel, and most ADI_PROFILE_ALLOWED entries. */
#define ADI_PROFILE_MAX 64
#define ADI_ALLOWED_MAX 16

/* Direction, as seen by the traced process. */
#define ADI_DIR_SEND 0
#define ADI_DIR_RECV 1

/* Connection role, as known by the kernel side. */
#define ADI_ROLE_UNKNOWN 0
#define ADI_ROLE_CLIENT 1
#define ADI_ROLE_SERVER 2

/* Per-CPU counters in the `stats` map. */
#define ADI_STAT_RINGBUF_FULL 0 /* events lost: ring buffer reserve/output failed */
#define ADI_STAT_TRUNCATED 1    /* data events whose payload was cut to the cap */
#define ADI_STAT_READ_FAILED 2  /* payload copies from user memory that failed */
#define ADI_STAT_EVENTS 3       /* events submitted */
/* 4: retired (syscalls not followed when the enter/exit stash was full; there is no stash) */
#define ADI_STAT_WATCH_FULL 5   /* children not followed: the watched-process map was full */
#define ADI_STAT_ENV_UNREAD 6  /* execs whose environment the kernel could not read whole */
#define ADI_STAT_SAMPLED 7      /* messages not copied: their exchange was sampled out (--max-rate) */
#define ADI_STAT_TLS_CIPHERTEXT 8 /* encrypted messages not sent: their plaintext is captured */
#define ADI_STAT_TLS_UNTIED 9   /* TLS plaintext not sent: no connection known for its SSL object */
#define ADI_STAT_GO_TLS_NESTED 10 /* Go TLS calls not read: one began inside another on its goroutine */
#define ADI_STAT_MAX 11

struct adi_event_hdr {
	__u32 kind;      /* ADI_EV_* */
	__u32 tgid;      /* process id */
	__u32 tid;       /* thread id */
	__s32 fd;        /* socket fd in that process, -1 when the syscall did not say */
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 real_len;  /* bytes the syscall really moved (data events) */
	__u64 sock;      /* the kernel socket's address: the connection's id while it lives */
	__u32 cap_len;   /* payload bytes following this header */
	__u32 dir;       /* ADI_DIR_* */
	__u32 syscall;   /* syscall number (-1: not a syscall adi reads, e.g. io_uring) */
	__u16 family;    /* AF_INET (2) or AF_INET6 (10) */
	__u16 lport;     /* local port, host order */
	__u16 rport;     /* remote port, host order */
	__u16 role;      /* ADI_ROLE_* */
	__u32 flags;     /* ADI_DATA_* */
	__u8 laddr[16];  /* local address: IPv4 in the first 4 bytes, network order */
	__u8 raddr[16];  /* remote address */
	char comm[16];   /* the process's comm (its main thread's) */
};

/* Flags of a data event. */
#define ADI_DATA_AFTER_SKIP 1 /* whole messages of this connection were sampled out just before */
#define ADI_DATA_TLS 2        /* plaintext a TLS library read or wrote, not the socket's bytes */

/* Per-connection state shared with user space, keyed by the kernel socket's address (entries
 * go when the socket reaches TCP_CLOSE). User space sets `role` and `cap` (read, modify,
 * write); the kernel owns the rest. */
struct adi_conn {
	__u32 role;      /* ADI_ROLE_* */
	__u32 cap;       /* per-message payload cap for this connection; 0 = the default */
	__u32 tgid;      /* the watched process that last used it (0: none yet) */
	__s32 fd;        /* its fd there, -1 when unknown */
	__u32 exchanges; /* request/response exchanges started (saturates) */
	__u8 last_dir;   /* direction of the last message: ADI_DIR_* + 1, 0 before any */
	__u8 skipping;   /* the current exchange is sampled out */
	__u8 after_skip; /* messages were skipped since the last event sent */
	__u8 tls;        /* 1 once a TLS library's plaintext was seen: its ciphertext is not sent */
	__u16 family;    /* the socket's tuple, read once it is complete (0: not yet) */
	__u16 lport;
	__u16 rport;
	__u16 pad2;      /* zero */
	__u8 laddr[16];
	__u8 raddr[16];
};

/* One ADI_PROFILE value, zero-padded, so values compare as whole words. */
struct adi_profile {
	__u32 len;       /* bytes used in val */
	__u32 pad;       /* zero */
	__u8 val[ADI_PROFILE_MAX];
};

#endif
