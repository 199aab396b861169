/* A hand-kept subset of the kernel types adi's BPF programs read, with the kernel's own field
 * names and nesting. `preserve_access_index` makes every access a CO-RE relocation, so the
 * real offsets come from the running kernel's BTF (/sys/kernel/btf/vmlinux) at load time:
 * only the names must match, not the layout. Regenerate nothing: edit by hand, checking
 * names against `bpftool btf dump file /sys/kernel/btf/vmlinux format c`.
 */
#ifndef ADI_KERNEL_H
#define ADI_KERNEL_H

typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef unsigned short umode_t;
typedef int pid_t;
typedef long unsigned int size_t;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	short unsigned int skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	u16 sk_type;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long env_start; /* the environment strings, in the process's own memory */
	unsigned long env_end;
} __attribute__((preserve_access_index));

/* x86: `status` holds TS_COMPAT while a 32-bit (ia32) syscall runs. */
struct thread_info {
	__u32 status;
} __attribute__((preserve_access_index));

/* task_struct.flags: a kernel thread (its sockets are the kernel's: NFS, iSCSI, ...). */
#define PF_KTHREAD 0x00200000

struct task_struct {
	struct thread_info thread_info;
	unsigned int flags;
	pid_t pid;
	pid_t tgid;
	struct mm_struct *mm;
	struct task_struct *group_leader;
	char comm[16];
} __attribute__((preserve_access_index));

/* sched_process_exec's record: `old_pid` is the id of the thread that called execve, which
 * becomes the process's leader (they differ when a non-leader thread exec'd). */
struct trace_event_raw_sched_process_exec {
	pid_t pid;
	pid_t old_pid;
} __attribute__((preserve_access_index));

/* sched_process_exit's record: `group_dead` (6.x) says the last thread of the process is
 * exiting; read with CO-RE and only where the field exists. */
struct trace_event_raw_sched_process_exit {
	pid_t pid;
	bool group_dead;
} __attribute__((preserve_access_index));

/* User-space ABI structs: plain layouts, read with bpf_probe_read_user (no CO-RE). */
struct iovec {
	void *iov_base;
	size_t iov_len;
};

struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	size_t msg_iovlen;
	void *msg_control;
	size_t msg_controllen;
	unsigned int msg_flags;
};

/* The context of raw tracepoints: sched_process_fork gets (struct task_struct *parent,
 * struct task_struct *child). */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* x86_64 registers saved at syscall entry (bpf_task_pt_regs): the arguments are in di, si,
 * dx, r10, r8, r9 and the syscall number in orig_ax. A uprobe's context is the same struct:
 * Go's register ABI passes arguments in ax, bx, cx, di and keeps the goroutine in r14. */
struct pt_regs {
	unsigned long r14;
	unsigned long bx;
	unsigned long r10;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long sp;
} __attribute__((preserve_access_index));

#endif
