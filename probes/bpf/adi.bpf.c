// SPDX-License-Identifier: GPL-2.0
/* adi's syscall capture: every socket read and write of watched processes.
 *
 * One raw tracepoint, sys_exit, sees every syscall: the process and the syscall number are
 * checked first, so anything else returns after a lookup and a compare (raw tracepoints skip
 * the perf buffer that each syscalls:sys_exit_* tracepoint fills before its program runs).
 * x86_64 syscall numbers. At exit the real byte count is known and the arguments are still in
 * the saved registers; the fd is resolved to its open file (task->files->fdt->fd[fd]), and a
 * per-connection entry keyed by (tgid, fd) remembers, from the first message on, that the
 * file is a TCP socket, its tuple (private_data->sk, which also covers connections opened
 * before adi started), its role and its capture state. Non-TCP and non-socket fds are
 * dropped, whole request/response exchanges may be sampled out under a rate budget (counted),
 * and at most a per-connection cap of payload is copied into the ring buffer.
 * Unwatched processes return at the first map lookup: nothing of theirs is ever copied.
 * kprobes and fentry do not exist on the target kernel, so only tracepoints are used.
 */
#include "adi_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "adi_events.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115

#ifndef __TARGET_ARCH_x86
#error "syscall numbers and registers below are x86_64's"
#endif
/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_accept4 288
#define NR_recvmmsg 299
#define NR_sendmmsg 307

/* Knobs set by the loader (EbpfLoader::override_global). */
const volatile __u32 watch_all = 0;       /* 1: every process (--all) */
const volatile __u32 self_tgid = 0;       /* adi itself: never traced */
const volatile __u32 capture_bytes = 4096; /* default per-message cap (--capture-bytes) */
const volatile __u32 follow_children = 1; /* children of a watched process are watched */
const volatile __u32 opt_in = 0;          /* 1: watch processes that opt in with ADI_PROFILE */
const volatile __u32 allowed_count = 0;   /* entries used in `allowed_profiles` */
/* The sampling budget (--max-rate): nanoseconds of credit one captured exchange costs on one
 * CPU (possible CPUs / rate, in ns); 0 captures every exchange. */
const volatile __u64 exchange_cost_ns = 0;

/* How a syscall passes its buffer. */
#define VEC_PLAIN 0  /* (buf, count) */
#define VEC_IOV 1    /* (iovec *, iovcnt) */
#define VEC_MSG 2    /* (user_msghdr *) */
#define VEC_MMSG 3   /* (mmsghdr *, vlen) */
#define VEC_NONE 4   /* connect, accept, close: no payload */
#define VEC_FILE 5   /* sendfile: bytes from a file, never in user memory: size only */

/* Exchanges of every connection captured whatever the budget, so that every connection is
 * classified and every dependency is seen (they still spend credit). */
#define ALWAYS_CAPTURED 2
/* Most credit a CPU saves up: one second's worth of its share of the rate. */
#define BURST_NS 1000000000LL

struct adi_scratch {
	struct adi_event_hdr hdr;
	/* Twice the cap, so that `data + off` with off < MAX and len <= MAX is provably in
	 * bounds for the verifier. */
	__u8 data[2 * ADI_MAX_PAYLOAD];
};

/* One CPU's share of the sampling budget: a token bucket counted in nanoseconds. */
struct adi_budget {
	__u64 last_ns;
	__s64 credit_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct adi_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct adi_scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct adi_budget);
} budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ADI_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* ADI_PROFILE_ALLOWED, one value per entry (the first `allowed_count`), filled before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ADI_ALLOWED_MAX);
	__type(key, __u32);
	__type(value, struct adi_profile);
} allowed_profiles SEC(".maps");

/* Bytes read per step while scanning a new program's environment. */
#define ENV_CHUNK 4096
/* Most steps per scan: one per variable, plus one per extra ENV_CHUNK of a long one. */
#define ENV_STEPS 4096

struct adi_envscan {
	__u8 buf[ENV_CHUNK];
	struct adi_profile profile;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct adi_envscan);
} envscan SEC(".maps");

#define RING_BYTES (16 * 1024 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} events SEC(".maps");

/* Ring buffer flags and queries (UAPI linux/bpf.h, not included: adi_kernel.h is standalone). */
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0

/* Pending bytes that make the kernel wake the reader (see submit). */
#define WAKEUP_BYTES (256 * 1024)

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);
	if (v)
		*v += 1;
}

static __always_inline bool is_watched(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (watch_all)
		return true;
	return bpf_map_lookup_elem(&watched, &tgid) != 0;
}

static __always_inline __u64 conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/* The open file behind `fd` of the current task, or NULL. Plain loads through the task's
 * BTF pointer (tp_btf programs only), not helper calls: this runs for every socket syscall. */
static __always_inline struct file *file_of(__s32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct files_struct *files = task->files;
	if (!files || fd < 0)
		return 0;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return 0;
	return file;
}

/* The TCP socket (IPv4 or IPv6) of an open file, or NULL. */
static __always_inline struct sock *tcp_sock_of(struct file *file)
{
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return sk;
}

static __always_inline void fill_tuple(struct adi_conn *c, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->family = family;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	c->rport = (__u16)((dport >> 8) | (dport << 8));
	if (family == AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->laddr, &l, 4);
		__builtin_memcpy(c->raddr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* The entry of (tgid, fd) for `file`, made when there is none or the fd now holds another
 * file (closed and reused without a close adi saw): the kernel socket is read once per
 * connection, and every later message reads only the fd table to check the entry still holds.
 * NULL when `file` is not a TCP socket. `role` is what connect/accept say (else unknown). */
static __always_inline struct adi_conn *conn_of(__u64 key, struct file *file, __u32 role, bool fresh)
{
	struct adi_conn *conn = bpf_map_lookup_elem(&conns, &key);
	if (conn && conn->file == (__u64)file && !fresh)
		return conn;
	struct sock *sk = tcp_sock_of(file);
	if (!sk) {
		if (conn)
			bpf_map_delete_elem(&conns, &key);
		return 0;
	}
	struct adi_conn c = {.role = role, .file = (__u64)file};
	fill_tuple(&c, sk);
	bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline struct adi_scratch *new_event(__u32 kind, __s32 fd, __u32 syscall)
{
	__u32 zero = 0;
	struct adi_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct adi_event_hdr *h = &s->hdr;
	/* The scratch buffer is reused: clear every header field so nothing stale leaks. */
	__builtin_memset(h, 0, sizeof(*h));
	h->kind = kind;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->fd = fd;
	h->ts_ns = bpf_ktime_get_ns();
	h->syscall = syscall;
	bpf_get_current_comm(&h->comm, sizeof(h->comm));
	return s;
}

/* Copies the connection's tuple and role into an event header. */
static __always_inline void conn_header(struct adi_event_hdr *h, const struct adi_conn *c)
{
	h->family = c->family;
	h->lport = c->lport;
	h->rport = c->rport;
	h->role = c->role;
	__builtin_memcpy(h->laddr, c->laddr, 16);
	__builtin_memcpy(h->raddr, c->raddr, 16);
}

static __always_inline void submit(struct adi_scratch *s, __u32 payload)
{
	__u64 len = payload;
	if (len > ADI_MAX_PAYLOAD)
		len = ADI_MAX_PAYLOAD;
	/* Re-check on the very register passed to the helper, so the verifier sees the bound
	 * (barrier_var stops clang from reusing a copy taken before the first check). */
	barrier_var(len);
	if (len > ADI_MAX_PAYLOAD)
		return;
	payload = len;
	s->hdr.cap_len = payload;
	/* Wake user space only once a batch is pending: a wakeup per event costs the traced
	 * process more than the copy. User space also polls every few milliseconds. Exec
	 * events wake it at once: it reads the new program's /proc entries while they last. */
	__u64 flags = s->hdr.kind == ADI_EV_EXEC ||
				      bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, s, sizeof(struct adi_event_hdr) + len, flags))
		count(ADI_STAT_RINGBUF_FULL);
	else
		count(ADI_STAT_EVENTS);
}

/* Copies up to `want` bytes from `src` to data[off..]; returns the bytes copied. */
static __always_inline __u32 copy_user(struct adi_scratch *s, __u32 off, const void *src, __u64 want)
{
	if (off >= ADI_MAX_PAYLOAD)
		return 0;
	__u64 room = ADI_MAX_PAYLOAD - off;
	__u64 n = want > room ? room : want;
	barrier_var(n);
	if (n == 0 || n > ADI_MAX_PAYLOAD)
		return 0;
	if (bpf_probe_read_user(&s->data[off], n, src)) {
		count(ADI_STAT_READ_FAILED);
		return 0;
	}
	return n;
}

/* Walks an iovec array, copying at most `limit` bytes in order. */
static __always_inline __u32 copy_iov(struct adi_scratch *s, const struct iovec *iov, __u64 iovcnt, __u64 limit)
{
	__u32 off = 0;
#pragma unroll
	for (int i = 0; i < ADI_MAX_IOV; i++) {
		if (i >= iovcnt || off >= limit)
			break;
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		__u64 want = v.iov_len;
		if (want > limit - off)
			want = limit - off;
		__u32 got = copy_user(s, off, v.iov_base, want);
		if (got < want)
			break;
		off += got;
	}
	return off;
}

/* What one data event is made of. */
struct adi_emit {
	const void *ptr; /* the buffer (VEC_PLAIN) or the iovec array (VEC_IOV) */
	__u64 iovcnt;
	__s64 moved;     /* bytes the syscall really moved */
	__u32 vec;
	__u32 syscall;
	__s32 fd;
	__u32 dir;
};

/* Emits one data event on a TCP socket. A real subprogram, not inlined: sendmmsg/recvmmsg
 * call it per message and unrolled copies would be large. */
static __noinline void emit_data(struct adi_emit *e, struct adi_conn *conn)
{
	if (!conn)
		return;
	/* When user space lags so far that this event might not fit, count it lost now, before
	 * paying for the copies (the traced process is what pays). */
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >
	    RING_BYTES - sizeof(struct adi_event_hdr) - ADI_MAX_PAYLOAD) {
		count(ADI_STAT_RINGBUF_FULL);
		return;
	}
	struct adi_scratch *s = new_event(ADI_EV_DATA, e->fd, e->syscall);
	if (!s)
		return;
	conn_header(&s->hdr, conn);
	s->hdr.dir = e->dir;
	s->hdr.real_len = e->moved;
	if (conn->after_skip) {
		conn->after_skip = 0;
		s->hdr.flags = ADI_DATA_AFTER_SKIP;
	}
	__u64 cap = conn->cap ? conn->cap : capture_bytes;
	if (cap > ADI_MAX_PAYLOAD)
		cap = ADI_MAX_PAYLOAD;
	__u64 moved = e->moved;
	__u64 want = moved < cap ? moved : cap;
	if (moved > cap && e->vec != VEC_FILE)
		count(ADI_STAT_TRUNCATED);
	__u32 got;
	if (e->vec == VEC_FILE)
		got = 0;
	else if (e->vec == VEC_PLAIN)
		got = copy_user(s, 0, e->ptr, want);
	else
		got = copy_iov(s, (const struct iovec *)e->ptr, e->iovcnt, want);
	submit(s, got);
}

/* Spends one exchange's worth of this CPU's credit; whether there was enough. `always`: the
 * exchange is captured anyway and only spends (the credit may go into debt, down to one
 * burst, so that new connections cannot carry the rate past the budget for long). */
static __always_inline bool take_credit(bool always)
{
	__u32 zero = 0;
	struct adi_budget *b = bpf_map_lookup_elem(&budget, &zero);
	if (!b)
		return true;
	__u64 now = bpf_ktime_get_ns();
	__s64 credit = b->credit_ns + (__s64)(now - b->last_ns);
	if (credit > BURST_NS || b->last_ns == 0)
		credit = BURST_NS;
	b->last_ns = now;
	bool enough = credit >= (__s64)exchange_cost_ns;
	if (enough || always)
		credit -= exchange_cost_ns;
	if (credit < -BURST_NS)
		credit = -BURST_NS;
	b->credit_ns = credit;
	return enough || always;
}

/* Whether this message is sampled out. Messages are runs of one direction; an exchange starts
 * with a message in the request direction (sent by a client, received by a server) and the
 * decision made there holds for its response too, so that user space sees whole exchanges.
 * Connections whose role is unknown (opened before adi started, until user space tells) are
 * never sampled. */
static __always_inline bool sampled_out(struct adi_conn *conn, __u32 dir)
{
	__u8 d = dir + 1;
	if (conn->last_dir == d)
		return conn->skipping;
	conn->last_dir = d;
	__u8 request = conn->role == ADI_ROLE_CLIENT ? ADI_DIR_SEND + 1 :
		       conn->role == ADI_ROLE_SERVER ? ADI_DIR_RECV + 1 : 0;
	if (exchange_cost_ns == 0 || request == 0) {
		conn->skipping = 0;
		return false;
	}
	if (d == request) {
		if (conn->exchanges < 0xffffffff)
			conn->exchanges++;
		conn->skipping = !take_credit(conn->exchanges <= ALWAYS_CAPTURED);
	}
	if (conn->skipping) {
		count(ADI_STAT_SAMPLED);
		conn->after_skip = 1;
	}
	return conn->skipping;
}

/* Whether the current syscall is a 32-bit (ia32) one: its numbers and argument registers
 * are not x86_64's, so it is not ours. */
#define TS_COMPAT 0x0002
static __always_inline bool compat_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
}

/* close(fd): report and forget a known connection. Seen at exit, when the fd is already free:
 * if the fd table holds the entry's very file again, another thread of the process reused the
 * number for a connection adi already recorded, and the entry is that one's. */
static __always_inline void on_close(__u32 tgid, __s32 fd)
{
	__u64 key = conn_key(tgid, fd);
	struct adi_conn *conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return;
	struct file *now = file_of(fd);
	if (now && (__u64)now == conn->file)
		return;
	struct adi_scratch *s = new_event(ADI_EV_CLOSE, fd, NR_close);
	if (s) {
		conn_header(&s->hdr, conn);
		submit(s, 0);
	}
	bpf_map_delete_elem(&conns, &key);
}

/* Every syscall's exit. The arguments are read from the registers saved at entry, which
 * x86_64 syscalls leave as they were (only ax takes the result): no per-syscall state is
 * kept between entry and exit, and nothing runs at entry. */
SEC("tp_btf/sys_exit")
int adi_sys_exit(__u64 *ctx)
{
	/* Unwatched processes leave at the first lookup, before any memory is read. */
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!is_watched(tgid))
		return 0;
	/* A BTF-typed raw tracepoint: (struct pt_regs *regs, long ret), read with plain loads. */
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long id = regs->orig_ax;
	__u32 kind = ADI_EV_DATA, vec, dir;
	switch (id) {
	/* (fd, buf, count) */
	case NR_read: case NR_recvfrom: vec = VEC_PLAIN; dir = ADI_DIR_RECV; break;
	case NR_write: case NR_sendto: vec = VEC_PLAIN; dir = ADI_DIR_SEND; break;
	/* (fd, iov, iovcnt) */
	case NR_readv: vec = VEC_IOV; dir = ADI_DIR_RECV; break;
	case NR_writev: vec = VEC_IOV; dir = ADI_DIR_SEND; break;
	/* (fd, msghdr, flags) */
	case NR_recvmsg: vec = VEC_MSG; dir = ADI_DIR_RECV; break;
	case NR_sendmsg: vec = VEC_MSG; dir = ADI_DIR_SEND; break;
	/* (fd, mmsghdr, vlen, ...) */
	case NR_recvmmsg: vec = VEC_MMSG; dir = ADI_DIR_RECV; break;
	case NR_sendmmsg: vec = VEC_MMSG; dir = ADI_DIR_SEND; break;
	/* (out_fd, in_fd, offset, count): the file's bytes go straight to the socket; the event
	 * carries their count only, so the HTTP session can step over a body sent this way. */
	case NR_sendfile: vec = VEC_FILE; dir = ADI_DIR_SEND; break;
	/* (fd, addr, addrlen[, flags]): for accept, the new fd is the return value */
	case NR_connect: kind = ADI_EV_CONNECT; vec = VEC_NONE; dir = ADI_DIR_SEND; break;
	case NR_accept: case NR_accept4: kind = ADI_EV_ACCEPT; vec = VEC_NONE; dir = ADI_DIR_RECV; break;
	case NR_close: kind = ADI_EV_CLOSE; vec = VEC_NONE; dir = ADI_DIR_SEND; break;
	default:
		return 0;
	}
	if (compat_syscall())
		return 0;
	__s64 ret = ctx[1];
	__s32 fd = regs->di;
	__u32 syscall = id;

	if (kind == ADI_EV_CLOSE) {
		on_close(tgid, fd);
		return 0;
	}
	if (kind == ADI_EV_CONNECT) {
		if (ret != 0 && ret != -EINPROGRESS)
			return 0;
	} else if (kind == ADI_EV_ACCEPT) {
		if (ret < 0)
			return 0;
		fd = ret;
	} else if (ret <= 0) {
		return 0;
	}
	struct file *file = file_of(fd);
	if (!file)
		return 0;
	__u64 key = conn_key(tgid, fd);

	if (kind != ADI_EV_DATA) {
		__u32 role = kind == ADI_EV_CONNECT ? ADI_ROLE_CLIENT : ADI_ROLE_SERVER;
		struct adi_conn *conn = conn_of(key, file, role, true);
		if (!conn)
			return 0;
		struct adi_scratch *s = new_event(kind, fd, syscall);
		if (!s)
			return 0;
		conn_header(&s->hdr, conn);
		submit(s, 0);
		return 0;
	}

	/* A connection opened before adi started, or by an untraced syscall, gets an entry on
	 * its first message, so that its close is reported. User space works out its role. */
	struct adi_conn *conn = conn_of(key, file, ADI_ROLE_UNKNOWN, false);
	if (!conn || sampled_out(conn, dir))
		return 0;
	__u64 ptr = regs->si;
	struct adi_emit e = {.ptr = (const void *)ptr, .moved = ret, .vec = vec,
			     .syscall = syscall, .fd = fd, .dir = dir};
	if (vec == VEC_IOV)
		e.iovcnt = regs->dx;
	if (vec == VEC_PLAIN || vec == VEC_IOV || vec == VEC_FILE) {
		emit_data(&e, conn);
	} else if (vec == VEC_MSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)ptr))
			return 0;
		e.ptr = m.msg_iov;
		e.iovcnt = m.msg_iovlen;
		e.vec = VEC_IOV;
		emit_data(&e, conn);
	} else if (vec == VEC_MMSG) {
		/* ret is the number of messages; each has its own length. */
#pragma unroll
		for (int i = 0; i < ADI_MAX_MMSG; i++) {
			if (i >= ret)
				break;
			struct mmsghdr mm = {};
			if (bpf_probe_read_user(&mm, sizeof(mm), (const struct mmsghdr *)ptr + i))
				break;
			if (mm.msg_len == 0)
				continue;
			e.ptr = mm.msg_hdr.msg_iov;
			e.iovcnt = mm.msg_hdr.msg_iovlen;
			e.moved = mm.msg_len;
			e.vec = VEC_IOV;
			emit_data(&e, conn);
		}
	}
	return 0;
}

/* A watched process's children are watched from their first instruction: servers that fork
 * a worker per connection (PostgreSQL) or at start (nginx) are covered by their parent's pid.
 * A raw tracepoint, for the child's task: new threads share their process's entry and take
 * none of their own. */
SEC("raw_tracepoint/sched_process_fork")
int adi_sched_fork(struct bpf_raw_tracepoint_args *ctx)
{
	if (!follow_children || watch_all)
		return 0;
	struct task_struct *child_task = (struct task_struct *)ctx->args[1];
	__u32 child = BPF_CORE_READ(child_task, pid);
	if (child != (__u32)BPF_CORE_READ(child_task, tgid))
		return 0;
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&watched, &parent))
		return 0;
	__u32 one = 1;
	if (bpf_map_update_elem(&watched, &child, &one, BPF_ANY))
		count(ADI_STAT_WATCH_FULL);
	return 0;
}

/* Variable-name prefixes compared as little-endian words, without branches per byte (the
 * verifier bounds the branches along one path): "ADI_PROF" "ILE=" and "ADI_PROF" "ILE_DISA"
 * "BLED" "=". */
#define W_ADI_PROF 0x464f52505f494441ULL /* "ADI_PROF" */
#define W_ILE_EQ 0x3d454c49U             /* "ILE=" */
#define W_ILE_DISA 0x415349445f454c49ULL /* "ILE_DISA" */
#define W_BLED 0x44454c42U               /* "BLED" */
#define PROFILE_PREFIX 12                /* strlen("ADI_PROFILE=") */
#define DISABLED_PREFIX 21               /* strlen("ADI_PROFILE_DISABLED=") */

static __always_inline __u64 word64(const __u8 *p)
{
	__u64 w;
	__builtin_memcpy(&w, p, 8);
	return w;
}

static __always_inline __u32 word32(const __u8 *p)
{
	__u32 w;
	__builtin_memcpy(&w, p, 4);
	return w;
}

/* Copies the value after "ADI_PROFILE=" into `p`, zero-padded to ADI_PROFILE_MAX, one word
 * at a time (bytes past `len` in the buffer are left over from earlier reads: masked). */
static __always_inline void copy_profile(struct adi_profile *p, const __u8 *value, __u32 len)
{
	__u64 *out = (__u64 *)p->val;
#pragma unroll
	for (int w = 0; w < ADI_PROFILE_MAX / 8; w++) {
		__u64 word = word64(value + 8 * w);
		__u32 start = 8 * w;
		if (len <= start)
			word = 0;
		else if (len < start + 8)
			word &= (1ULL << (8 * (len - start))) - 1;
		out[w] = word;
	}
}

/* Whether the allowed list admits `p` (an empty list admits any value). */
static __always_inline bool profile_allowed(const struct adi_profile *p)
{
	if (allowed_count == 0)
		return true;
	if (p->len > ADI_PROFILE_MAX)
		return false;
#pragma unroll
	for (__u32 k = 0; k < ADI_ALLOWED_MAX; k++) {
		if (k >= allowed_count)
			break;
		__u32 key = k;
		const struct adi_profile *a = bpf_map_lookup_elem(&allowed_profiles, &key);
		if (!a || a->len != p->len)
			continue;
		bool same = true;
		const __u64 *x = (const __u64 *)a->val, *y = (const __u64 *)p->val;
#pragma unroll
		for (int w = 0; w < ADI_PROFILE_MAX / 8; w++)
			if (x[w] != y[w])
				same = false;
		if (same)
			return true;
	}
	return false;
}

/* The state of one environment scan, passed to each bpf_loop step. */
struct env_scan {
	__u64 pos;      /* next byte to read */
	__u64 end;      /* end of the environment */
	bool found;     /* ADI_PROFILE seen */
	bool disabled;  /* ADI_PROFILE_DISABLED=1 (the last one seen) */
	bool mid;       /* pos is inside a variable longer than ENV_CHUNK */
	bool failed;    /* a read failed */
};

/* One step: reads the variable at `pos` (or ENV_CHUNK - 1 bytes of it) and notes what it
 * says. A bpf_loop callback, so the verifier checks it once, not once per step. */
static long env_step(__u64 index, void *data)
{
	struct env_scan *c = data;
	if (c->pos >= c->end)
		return 1;
	__u32 zero = 0;
	struct adi_envscan *e = bpf_map_lookup_elem(&envscan, &zero);
	if (!e)
		return 1;
	long n = bpf_probe_read_user_str(e->buf, ENV_CHUNK, (const void *)c->pos);
	if (n <= 0 || n > ENV_CHUNK) {
		c->failed = true;
		return 1;
	}
	/* n counts the NUL; n == ENV_CHUNK means the variable may go on in the next step. */
	bool starts = !c->mid;
	c->mid = n == ENV_CHUNK;
	c->pos += c->mid ? ENV_CHUNK - 1 : n;
	if (!starts || n <= PROFILE_PREFIX || word64(e->buf) != W_ADI_PROF)
		return 0;
	__u32 rest = word32(e->buf + 8);
	if (rest == W_ILE_EQ) {
		c->found = true;
		/* Value bytes, without the NUL. A value longer than the kernel compares can match
		 * no allowed entry. */
		__u32 len = c->mid ? ADI_PROFILE_MAX + 1 : n - 1 - PROFILE_PREFIX;
		e->profile.len = len;
		copy_profile(&e->profile, e->buf + PROFILE_PREFIX, len);
	} else if (rest == (__u32)W_ILE_DISA && word64(e->buf + 8) == W_ILE_DISA &&
		   word32(e->buf + 16) == W_BLED && e->buf[20] == '=') {
		c->disabled = n == DISABLED_PREFIX + 2 && e->buf[DISABLED_PREFIX] == '1';
	}
	return 0;
}

/* The seed's opt-in rule (SPEC section 6) on the current task's environment, read where the
 * kernel put it at exec (mm->env_start..env_end, what /proc/PID/environ shows): 1 when the
 * process opts in, 0 when it does not, -1 when the environment could not be read whole (user
 * space then decides from /proc). A repeated variable: the last one counts, as in user space. */
static __always_inline int env_opts_in(void)
{
	__u32 zero = 0;
	struct adi_envscan *e = bpf_map_lookup_elem(&envscan, &zero);
	if (!e)
		return -1;
	__builtin_memset(&e->profile, 0, sizeof(e->profile));
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct env_scan c = {
		.pos = BPF_CORE_READ(task, mm, env_start),
		.end = BPF_CORE_READ(task, mm, env_end),
	};
	bpf_loop(ENV_STEPS, env_step, &c, 0);
	if (c.failed || c.pos < c.end)
		return -1;
	return c.found && e->profile.len > 0 && !c.disabled && profile_allowed(&e->profile);
}

static __always_inline void process_event(__u32 kind, __u64 flags)
{
	struct adi_scratch *s = new_event(kind, -1, 0);
	if (!s)
		return;
	s->hdr.real_len = flags;
	submit(s, 0);
}

/* A new program starts in this process. With the ADI_PROFILE opt-in, the decision is made
 * here, before the program's first instruction, so nothing of a process that does not opt in
 * is ever copied and nothing of one that does is missed; user space is told, re-checks from
 * /proc and writes the environment inventory. With --pid, a watched process stays watched. */
SEC("tracepoint/sched/sched_process_exec")
int adi_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	if (watch_all)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return 0;
	/* A non-leader thread exec'd: it took the leader's id, and its own goes unused. */
	__u32 old_pid = BPF_CORE_READ(ctx, old_pid);
	if (old_pid != tgid)
		bpf_map_delete_elem(&watched, &old_pid);
	__u64 flags = bpf_map_lookup_elem(&watched, &tgid) ? ADI_EXEC_WAS_WATCHED : 0;
	if (!opt_in) {
		if (flags)
			process_event(ADI_EV_EXEC, flags | ADI_EXEC_WATCHED);
		return 0;
	}
	int verdict = env_opts_in();
	if (verdict == 1) {
		__u32 one = 1;
		if (bpf_map_update_elem(&watched, &tgid, &one, BPF_ANY)) {
			count(ADI_STAT_WATCH_FULL);
			verdict = -1;
		} else {
			flags |= ADI_EXEC_WATCHED;
		}
	}
	if (verdict != 1)
		bpf_map_delete_elem(&watched, &tgid);
	if (verdict == -1) {
		count(ADI_STAT_ENV_UNREAD);
		flags |= ADI_EXEC_UNDECIDED;
	}
	if (flags)
		process_event(ADI_EV_EXEC, flags);
	return 0;
}

/* A task exits: forget its id, so a reused pid is not watched by accident. The process's own
 * entry goes with its last thread (`group_dead`; where the kernel lacks that field, with the
 * thread-group leader), not with a leader that exits before its other threads; user space is
 * told, so it can forget the process. */
SEC("tracepoint/sched/sched_process_exit")
int adi_sched_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	if (watch_all)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	bool group_dead = tid == tgid;
	if (bpf_core_field_exists(ctx->group_dead))
		group_dead = BPF_CORE_READ(ctx, group_dead);
	if (tid != tgid)
		bpf_map_delete_elem(&watched, &tid);
	if (group_dead && bpf_map_delete_elem(&watched, &tgid) == 0)
		process_event(ADI_EV_EXIT, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
