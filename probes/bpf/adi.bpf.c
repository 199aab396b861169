// SPDX-License-Identifier: GPL-2.0
/* adi's socket capture: every TCP read and write of watched processes.
 *
 * No syscall is traced. The socket layer's own tracepoints, sock_send_length and
 * sock_recv_length, fire once per sendmsg/recvmsg on a socket, after the bytes moved, with the
 * socket and the real byte count; nothing else a process does pays anything. Both are
 * BTF-typed (tp_btf): the programs read the socket and the task with plain loads. The process
 * is checked first, so unwatched ones return after one lookup. The user buffer is found from
 * the syscall's arguments, still in the registers saved at its entry (bpf_task_pt_regs;
 * x86_64 syscall numbers). A per-connection entry keyed by the socket keeps its tuple, role,
 * owner and capture state; inet_sock_set_state gives the role (connect -> SYN_SENT in the
 * connecting process; SYN_RECV -> ESTABLISHED for accepted ones) and removes the entry at
 * TCP_CLOSE. Whole request/response exchanges may be sampled out under a rate budget
 * (counted), and at most a per-connection cap of payload is copied into the ring buffer.
 * kprobes and fentry do not exist on the target kernel, so only tracepoints are used.
 */
#include "adi_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "adi_ringbuf.h"
#include "adi_events.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6

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
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
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
/* 1: TLS library uprobes may run (--tls-uprobes on|watched): socket reads and writes look
 * for a TLS call in progress on their thread. */
const volatile __u32 tls_plaintext = 0;

/* How a syscall passes its buffer. */
#define VEC_PLAIN 0  /* (buf, count) */
#define VEC_IOV 1    /* (iovec *, iovcnt) */
#define VEC_MSG 2    /* (user_msghdr *) */
#define VEC_FILE 5   /* not in user memory (sendfile) or not found: size only */

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

/* A TLS library call in progress on one thread (SSL_read/SSL_write and their _ex forms),
 * from its entry to its return. */
struct adi_ssl_call {
	__u64 ssl;     /* the SSL object */
	__u64 buf;     /* the caller's plaintext buffer */
	__u64 ex_len;  /* _ex forms: where the library stores the bytes moved; 0 otherwise */
	__u64 sock;    /* the socket the library read or wrote during the call (0: none yet) */
	__u32 dir;     /* ADI_DIR_*, or SSL_HANDSHAKE */
	__u32 pad;
};

/* A call of SSL_do_handshake (SSL_connect and SSL_accept call it): its socket is noted for
 * the SSL object, and its bytes (the handshake) are sent as they are. */
#define SSL_HANDSHAKE 2

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct adi_ssl_call);
} ssl_calls SEC(".maps");

/* The socket an SSL object last used, for calls served from the library's buffer without
 * touching the socket. Pointers are per process: the key holds the tgid too. */
struct adi_ssl_key {
	__u64 tgid;
	__u64 ssl;
};

/* The socket of an SSL object, with the ports it had: an SSL object's address and a socket's
 * are both reused once freed, so a socket whose ports changed is another connection. */
struct adi_ssl_sock {
	__u64 sock;
	__u16 lport;
	__u16 rport;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct adi_ssl_key);
	__type(value, struct adi_ssl_sock);
} ssl_socks SEC(".maps");

/* A Go crypto/tls.(*Conn).Read or Write in progress, keyed by its goroutine: a goroutine may
 * move to another thread during the call (and another run on this one), so the thread says
 * nothing. Go keeps the running goroutine's runtime.g in r14, in its own code and at the
 * syscalls it makes, so on_io finds the call from the registers saved at the syscall. */
struct adi_go_tls_key {
	__u64 tgid;
	__u64 g;
};

struct adi_go_tls_call {
	__u64 conn;  /* the *tls.Conn (Go does not move heap objects) */
	__u64 buf;   /* the caller's plaintext buffer */
	__u64 len;   /* its length */
	__u64 frame; /* g.stack.hi - SP at the entry: the same at the RET even if the stack moved */
	__u64 sock;  /* the socket read or written during the call (0: none yet) */
	__u32 dir;   /* ADI_DIR_* */
	__u32 sent;  /* a Write's plaintext was sent at its first socket write */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct adi_go_tls_key);
	__type(value, struct adi_go_tls_call);
} go_tls_calls SEC(".maps");

/* Entries of ssl_calls and go_tls_calls: TLS library calls in progress. A socket read or write
 * while there are none (every message of a plaintext service, unless a TLS call is under way
 * somewhere) skips the two lookups for one. A new entry counts up, a deleted one down; an
 * entry the LRU evicts is never counted down, which only leaves the lookups on. */
__u64 tls_calls_in_flight = 0;

/* Offset of runtime.g.stack.hi: g starts with its stack bounds {lo, hi} in every Go version. */
#define GO_G_STACK_HI 8

/* The ring buffer's default size; the loader sets the real one (ProbeConfig::ring_bytes) in
 * the map and in `ring_bytes`. */
#define RING_BYTES (16 * 1024 * 1024)
const volatile __u32 ring_bytes = RING_BYTES;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} events SEC(".maps");

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

/* Whether `sk` is a TCP socket over IPv4 or IPv6. Plain loads through the tracepoint's BTF
 * pointer, not helper calls: this runs for every socket read and write of watched processes. */
static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;
	return sk->sk_type == SOCK_STREAM && sk->sk_protocol == IPPROTO_TCP &&
	       (family == AF_INET || family == AF_INET6);
}

static __always_inline void fill_tuple(struct adi_conn *c, const struct sock *sk)
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

/* The entry of socket `key`, made when there is none: a connection adi saw neither connect
 * nor be accepted (opened before adi started), whose role user space works out. */
static __always_inline struct adi_conn *conn_of(__u64 key)
{
	struct adi_conn *conn = bpf_map_lookup_elem(&conns, &key);
	if (conn)
		return conn;
	struct adi_conn c = {.role = ADI_ROLE_UNKNOWN, .fd = -1};
	bpf_map_update_elem(&conns, &key, &c, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline struct adi_scratch *new_event(__u32 kind, __s32 fd, __u32 syscall, __u64 sock)
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
	h->sock = sock;
	h->ts_ns = bpf_ktime_get_ns();
	h->syscall = syscall;
	/* The process's name (its main thread's), not the calling thread's: threads are often
	 * named by their runtime (grpc's "event_engine", Java's pool threads), and user space
	 * takes a name change for another program. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	bpf_probe_read_kernel_str(&h->comm, sizeof(h->comm), &leader->comm);
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
	/* Wake user space once per WAKEUP_BYTES of pending data (adi_ringbuf.h). Exec events
	 * wake it at once: it reads the new program's /proc entries while they last. */
	__u64 size = sizeof(struct adi_event_hdr) + len;
	__u64 flags = s->hdr.kind == ADI_EV_EXEC ? BPF_RB_FORCE_WAKEUP : wakeup_flags(&events, size);
	if (bpf_ringbuf_output(&events, s, size, flags))
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

/* An iovec array being copied (the state bpf_loop's callback carries). */
struct adi_iov_walk {
	struct adi_scratch *s;
	const struct iovec *iov;
	__u64 iovcnt;
	__u64 limit;
	__u32 off;
};

/* Copies iovec `i` of a walk; 1 stops the walk. */
static long copy_one_iov(__u32 i, void *ctx)
{
	struct adi_iov_walk *w = ctx;
	if (i >= w->iovcnt || w->off >= w->limit)
		return 1;
	struct iovec v = {};
	if (bpf_probe_read_user(&v, sizeof(v), &w->iov[i]))
		return 1;
	__u64 want = v.iov_len;
	if (want > w->limit - w->off)
		want = w->limit - w->off;
	__u32 got = copy_user(w->s, w->off, v.iov_base, want);
	w->off += got;
	return got < want;
}

/* Walks an iovec array, copying at most `limit` bytes in order. bpf_loop, not an unrolled
 * loop: gRPC and other HTTP/2 stacks write one iovec per frame, dozens per sendmsg, and the
 * verifier checks the callback once. */
static __always_inline __u32 copy_iov(struct adi_scratch *s, const struct iovec *iov, __u64 iovcnt, __u64 limit)
{
	struct adi_iov_walk w = {.s = s, .iov = iov, .iovcnt = iovcnt, .limit = limit};
	bpf_loop(ADI_MAX_IOV, copy_one_iov, &w, 0);
	return w.off;
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
	__u32 flags;     /* ADI_DATA_* the event carries (ADI_DATA_TLS) */
	__u64 sock;
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
	    ring_bytes - sizeof(struct adi_event_hdr) - ADI_MAX_PAYLOAD) {
		count(ADI_STAT_RINGBUF_FULL);
		return;
	}
	struct adi_scratch *s = new_event(ADI_EV_DATA, e->fd, e->syscall, e->sock);
	if (!s)
		return;
	conn_header(&s->hdr, conn);
	s->hdr.dir = e->dir;
	s->hdr.real_len = e->moved;
	s->hdr.flags = e->flags;
	if (conn->after_skip) {
		conn->after_skip = 0;
		s->hdr.flags |= ADI_DATA_AFTER_SKIP;
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

/* Notes `sock` as the socket of SSL object `k`, with its ports. */
static __always_inline void note_ssl_sock(struct adi_ssl_key *k, __u64 sock)
{
	if (!sock)
		return;
	struct adi_conn *conn = bpf_map_lookup_elem(&conns, &sock);
	if (!conn)
		return;
	struct adi_ssl_sock v = {.sock = sock, .lport = conn->lport, .rport = conn->rport};
	bpf_map_update_elem(&ssl_socks, k, &v, BPF_ANY);
}

/* Marks a connection whose bytes a TLS library moves: its ciphertext is no longer sent. */
static __always_inline void mark_tls(struct adi_conn *conn)
{
	if (!conn->tls) {
		conn->tls = 1;
		/* A cap chosen for the encrypted bytes (not HTTP) is no cap for the plaintext:
		 * back to the default until user space classifies it. */
		conn->cap = 0;
	}
}

/* Ties a TLS library call in progress to socket `key`: an OpenSSL call on this thread, else a
 * Go crypto/tls call on this goroutine. Their bytes are the call's ciphertext: the call's
 * plaintext is sent tied to this socket (at the call's return, or a Go Write's here), and
 * the ciphertext itself is not. */
static __always_inline void tie_tls_call(struct adi_conn *conn, __u64 key, __u32 tgid,
					 struct pt_regs *regs)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct adi_ssl_call *call = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (call) {
		if (!call->sock)
			call->sock = key;
		/* A handshake's bytes are sent as they are (the server name is in them). */
		if (call->dir == SSL_HANDSHAKE)
			return;
		mark_tls(conn);
		return;
	}
	struct adi_go_tls_key gk = {.tgid = tgid, .g = regs->r14};
	struct adi_go_tls_call *go = bpf_map_lookup_elem(&go_tls_calls, &gk);
	if (!go || go->sock)
		return;
	go->sock = key;
	if (go->dir == SSL_HANDSHAKE)
		return;
	mark_tls(conn);
	/* A Write is sent at its first socket write, not at its return: its goroutine may not
	 * run again before another one has read the peer's answer, which must not come first.
	 * Go's Write writes all of the buffer or fails. */
	if (go->dir == ADI_DIR_SEND && go->len > 0) {
		struct adi_ssl_key k = {.tgid = tgid, .ssl = go->conn};
		note_ssl_sock(&k, key);
		go->sent = 1;
		if (sampled_out(conn, ADI_DIR_SEND))
			return;
		struct adi_emit e = {.ptr = (const void *)go->buf, .moved = go->len,
				     .vec = VEC_PLAIN, .syscall = -1, .fd = conn->fd,
				     .dir = ADI_DIR_SEND, .flags = ADI_DATA_TLS, .sock = key};
		emit_data(&e, conn);
	}
}

/* Whether the current syscall is a 32-bit (ia32) one: its numbers and argument registers
 * are not x86_64's. */
#define TS_COMPAT 0x0002

/* MSG_PEEK: a receive that leaves the bytes in the socket (they are read again later). */
#define MSG_PEEK 2

/* One read or write on a socket, seen by the socket layer's own tracepoints (sock_sendmsg and
 * sock_recvmsg, whatever syscall led there), after the bytes moved. The buffer is found from
 * the syscall's arguments, still in the registers saved at its entry. */
static __always_inline void on_io(struct sock *sk, int ret, int flags, __u32 dir)
{
	if (ret <= 0 || (dir == ADI_DIR_RECV && (flags & MSG_PEEK)))
		return;
	/* Unwatched processes leave at the first lookup, before any memory is read. */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!is_watched(tgid) || !is_tcp(sk))
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return;
	__u64 key = (__u64)sk;
	struct adi_conn *conn = conn_of(key);
	if (!conn)
		return;
	/* A connection opened before adi started, or connected before its tuple was complete. */
	if (conn->family == 0)
		fill_tuple(conn, sk);
	conn->tgid = tgid;
	/* Bytes a TLS library moves for a call in progress on this thread: the call's plaintext
	 * is sent at its return, tied to this socket; the ciphertext itself is not. */
	if (tls_plaintext && tls_calls_in_flight)
		tie_tls_call(conn, key, tgid, (struct pt_regs *)bpf_task_pt_regs(task));
	if (conn->tls) {
		count(ADI_STAT_TLS_CIPHERTEXT);
		return;
	}
	/* Decided before the registers are read: a skipped message costs no more than this. */
	if (sampled_out(conn, dir))
		return;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long id = regs->orig_ax;
	__u32 vec = VEC_FILE, want_dir = dir;
	switch (id) {
	/* (fd, buf, count) */
	case NR_read: case NR_recvfrom: vec = VEC_PLAIN; want_dir = ADI_DIR_RECV; break;
	case NR_write: case NR_sendto: vec = VEC_PLAIN; want_dir = ADI_DIR_SEND; break;
	/* (fd, iov, iovcnt) */
	case NR_readv: vec = VEC_IOV; want_dir = ADI_DIR_RECV; break;
	case NR_writev: vec = VEC_IOV; want_dir = ADI_DIR_SEND; break;
	/* (fd, msghdr, flags) */
	case NR_recvmsg: vec = VEC_MSG; want_dir = ADI_DIR_RECV; break;
	case NR_sendmsg: vec = VEC_MSG; want_dir = ADI_DIR_SEND; break;
	/* sendfile's bytes go from a file to the socket, never through user memory; and one
	 * tracepoint hit of sendmmsg/recvmmsg does not say which of the messages it is: both
	 * report sizes only, so the HTTP session can step over them. */
	case NR_sendfile: case NR_sendmmsg: want_dir = ADI_DIR_SEND; break;
	case NR_recvmmsg: want_dir = ADI_DIR_RECV; break;
	/* io_uring, splice, ...: the buffer is not in the registers. */
	default: id = -1; break;
	}
	if (id == -1 || want_dir != dir || (task->thread_info.status & TS_COMPAT)) {
		vec = VEC_FILE;
		id = -1;
	} else {
		conn->fd = regs->di;
	}
	__u64 ptr = regs->si;
	struct adi_emit e = {.ptr = (const void *)ptr, .moved = ret, .vec = vec,
			     .syscall = id, .fd = conn->fd, .dir = dir, .sock = key};
	if (vec == VEC_IOV)
		e.iovcnt = regs->dx;
	if (vec == VEC_MSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)ptr))
			return;
		e.ptr = m.msg_iov;
		e.iovcnt = m.msg_iovlen;
		e.vec = VEC_IOV;
	}
	emit_data(&e, conn);
}

SEC("tp_btf/sock_send_length")
int adi_sock_send(__u64 *ctx)
{
	on_io((struct sock *)ctx[0], (int)ctx[1], (int)ctx[2], ADI_DIR_SEND);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int adi_sock_recv(__u64 *ctx)
{
	on_io((struct sock *)ctx[0], (int)ctx[1], (int)ctx[2], ADI_DIR_RECV);
	return 0;
}

/* TLS plaintext: uprobes on an OpenSSL-compatible library's SSL_write, SSL_read,
 * SSL_write_ex and SSL_read_ex (entry and return). The entry stashes the call (SSL object,
 * buffer) per thread; a socket read or write during the call ties it to its connection (see
 * on_io); the return sends the plaintext the call moved, as a data event of that connection
 * flagged ADI_DATA_TLS, sampled like any message. A call that touched no socket (served from
 * the library's buffer, as the first read after a handshake often is) uses the socket its SSL
 * object used last, noted by that call or by SSL_do_handshake, if that socket is still the
 * same connection of the same process. */
static __always_inline void ssl_enter(struct pt_regs *ctx, __u32 dir, bool ex)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!is_watched(pid_tgid >> 32))
		return;
	struct adi_ssl_call c = {.ssl = ctx->di, .buf = ctx->si, .dir = dir};
	/* SSL_read_ex(ssl, buf, num, size_t *readbytes): the fourth argument is in rcx. */
	if (ex)
		c.ex_len = ctx->cx;
	if (bpf_map_update_elem(&ssl_calls, &pid_tgid, &c, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&tls_calls_in_flight, 1);
	else /* a call whose return was not seen: replaced, still counted once */
		bpf_map_update_elem(&ssl_calls, &pid_tgid, &c, BPF_ANY);
}

static __always_inline void send_plaintext(struct adi_ssl_key *k, __u64 sock, __u64 buf,
					   __u64 moved, __u32 dir);

static __always_inline void ssl_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct adi_ssl_call *found = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (!found)
		return;
	struct adi_ssl_call call = *found;
	if (bpf_map_delete_elem(&ssl_calls, &pid_tgid) == 0)
		__sync_fetch_and_add(&tls_calls_in_flight, -1);
	struct adi_ssl_key k = {.tgid = pid_tgid >> 32, .ssl = call.ssl};
	if (call.dir == SSL_HANDSHAKE) {
		note_ssl_sock(&k, call.sock);
		return;
	}
	/* SSL_read/SSL_write return the bytes moved (<= 0: nothing, or an error to retry);
	 * the _ex forms return 1 on success and store the bytes moved. */
	int ret = (int)ctx->ax;
	__u64 moved = 0;
	if (call.ex_len) {
		if (ret != 1 || bpf_probe_read_user(&moved, sizeof(moved), (const void *)call.ex_len))
			return;
	} else if (ret > 0) {
		moved = ret;
	}
	if (moved == 0)
		return;
	send_plaintext(&k, call.sock, call.buf, moved, call.dir);
}

/* Sends `moved` bytes of plaintext at `buf` that TLS object `k` moved in direction `dir`, as a
 * data event of the connection of `sock` (the socket the call touched), else of the socket
 * the object used last if it is still the same connection of this process. */
static __always_inline void send_plaintext(struct adi_ssl_key *k, __u64 sock, __u64 buf,
					   __u64 moved, __u32 dir)
{
	struct adi_conn *conn = 0;
	if (sock) {
		note_ssl_sock(k, sock);
		conn = bpf_map_lookup_elem(&conns, &sock);
	} else {
		/* Served from the library's buffer: the socket this object used last, if it is
		 * still the same connection of this process. */
		struct adi_ssl_sock *last = bpf_map_lookup_elem(&ssl_socks, k);
		if (last) {
			sock = last->sock;
			conn = bpf_map_lookup_elem(&conns, &sock);
			if (conn && (conn->tgid != k->tgid || conn->lport != last->lport ||
				     conn->rport != last->rport))
				conn = 0;
		}
	}
	if (!conn) {
		count(ADI_STAT_TLS_UNTIED);
		return;
	}
	conn->tls = 1;
	if (sampled_out(conn, dir))
		return;
	struct adi_emit e = {.ptr = (const void *)buf, .moved = moved, .vec = VEC_PLAIN,
			     .syscall = -1, .fd = conn->fd, .dir = dir,
			     .flags = ADI_DATA_TLS, .sock = sock};
	emit_data(&e, conn);
}

SEC("uprobe")
int adi_ssl_write(struct pt_regs *ctx)
{
	ssl_enter(ctx, ADI_DIR_SEND, false);
	return 0;
}

SEC("uprobe")
int adi_ssl_read(struct pt_regs *ctx)
{
	ssl_enter(ctx, ADI_DIR_RECV, false);
	return 0;
}

SEC("uprobe")
int adi_ssl_write_ex(struct pt_regs *ctx)
{
	ssl_enter(ctx, ADI_DIR_SEND, true);
	return 0;
}

SEC("uprobe")
int adi_ssl_read_ex(struct pt_regs *ctx)
{
	ssl_enter(ctx, ADI_DIR_RECV, true);
	return 0;
}

SEC("uprobe")
int adi_ssl_handshake(struct pt_regs *ctx)
{
	ssl_enter(ctx, SSL_HANDSHAKE, false);
	return 0;
}

SEC("uretprobe")
int adi_ssl_return(struct pt_regs *ctx)
{
	ssl_return(ctx);
	return 0;
}

/* Go crypto/tls: uprobes on (*Conn).Write, (*Conn).Read and (*Conn).handshakeContext, at the entry (past the
 * stack-bound check, which a call that grows its stack runs twice) and at each RET instruction
 * (uretprobes patch the return address on the stack, which Go moves). Register ABI: the
 * receiver in ax, the slice in bx (pointer) and cx (length); the RET has n in ax. The call is
 * kept per goroutine; a socket read or write on that goroutine during it ties it to its
 * connection (on_io), else the socket the Conn used last; the RET sends the plaintext like
 * SSL_read/SSL_write's. A Read served from the Conn's buffer touches no socket. */
static __always_inline __u64 go_frame(struct pt_regs *ctx)
{
	__u64 hi = 0;
	if (bpf_probe_read_user(&hi, sizeof(hi), (void *)(ctx->r14 + GO_G_STACK_HI)))
		return 0;
	return hi - ctx->sp;
}

static __always_inline void go_tls_enter(struct pt_regs *ctx, __u32 dir)
{
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!is_watched(tgid) || !ctx->r14)
		return;
	struct adi_go_tls_key k = {.tgid = tgid, .g = ctx->r14};
	struct adi_go_tls_call c = {.conn = ctx->ax, .buf = ctx->bx, .len = ctx->cx,
				    .frame = go_frame(ctx), .dir = dir};
	if (bpf_map_lookup_elem(&go_tls_calls, &k)) {
		/* A handshake that a Read or Write makes first: the call ties itself to the
		 * handshake's socket. */
		if (dir == SSL_HANDSHAKE)
			return;
		/* A Conn over another Conn (TLS inside a TLS tunnel): the outer call is not read. */
		count(ADI_STAT_GO_TLS_NESTED);
		bpf_map_update_elem(&go_tls_calls, &k, &c, BPF_ANY);
		return;
	}
	if (bpf_map_update_elem(&go_tls_calls, &k, &c, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&tls_calls_in_flight, 1);
}

SEC("uprobe")
int adi_go_tls_write(struct pt_regs *ctx)
{
	go_tls_enter(ctx, ADI_DIR_SEND);
	return 0;
}

SEC("uprobe")
int adi_go_tls_read(struct pt_regs *ctx)
{
	go_tls_enter(ctx, ADI_DIR_RECV);
	return 0;
}

/* The handshake (explicit, as net/http's client and server make it, or at a first Read or
 * Write): its bytes go out as they are (the server name is in them) and its socket is noted
 * for the Conn, whose first Read is often served from records the handshake read. */
SEC("uprobe")
int adi_go_tls_handshake(struct pt_regs *ctx)
{
	go_tls_enter(ctx, SSL_HANDSHAKE);
	return 0;
}

SEC("uprobe")
int adi_go_tls_return(struct pt_regs *ctx)
{
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;
	struct adi_go_tls_key k = {.tgid = tgid, .g = ctx->r14};
	struct adi_go_tls_call *found = bpf_map_lookup_elem(&go_tls_calls, &k);
	/* Another frame's call: the outer one of a nested pair, already overwritten. */
	if (!found || found->frame != go_frame(ctx))
		return 0;
	struct adi_go_tls_call call = *found;
	if (bpf_map_delete_elem(&go_tls_calls, &k) == 0)
		__sync_fetch_and_add(&tls_calls_in_flight, -1);
	struct adi_ssl_key sk = {.tgid = tgid, .ssl = call.conn};
	if (call.dir == SSL_HANDSHAKE) {
		note_ssl_sock(&sk, call.sock);
		return 0;
	}
	__s64 n = ctx->ax;
	if (n <= 0 || call.sent)
		return 0;
	send_plaintext(&sk, call.sock, call.buf, n, call.dir);
	return 0;
}

/* TCP states (include/net/tcp_states.h). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7

/* A TCP connection changes state. Connecting (-> SYN_SENT) runs in the connecting process:
 * a watched one gets an entry with the client role and its fd; the connection's event follows
 * at ESTABLISHED, once the tuple is complete. An accepted connection (SYN_RECV ->
 * ESTABLISHED, in softirq, before any process owns it) gets an entry with the server role.
 * At CLOSE the entry goes, and the process that last used it is told. */
SEC("tp_btf/inet_sock_set_state")
int adi_sock_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	int old = (int)ctx[1], state = (int)ctx[2];
	if (!is_tcp(sk))
		return 0;
	__u64 key = (__u64)sk;
	if (state == TCP_SYN_SENT) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!is_watched(tgid))
			return 0;
		struct task_struct *task = bpf_get_current_task_btf();
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
		struct adi_conn c = {.role = ADI_ROLE_CLIENT, .tgid = tgid, .fd = -1};
		if (regs->orig_ax == NR_connect)
			c.fd = regs->di;
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
	} else if (state == TCP_ESTABLISHED && old == TCP_SYN_SENT) {
		struct adi_conn *conn = bpf_map_lookup_elem(&conns, &key);
		if (!conn)
			return 0;
		fill_tuple(conn, sk);
		struct adi_scratch *s = new_event(ADI_EV_CONNECT, conn->fd, NR_connect, key);
		if (!s)
			return 0;
		/* Softirq, most likely: the event is the connecting process's, not current's. */
		s->hdr.tgid = conn->tgid;
		s->hdr.tid = conn->tgid;
		conn_header(&s->hdr, conn);
		submit(s, 0);
	} else if (state == TCP_ESTABLISHED && old == TCP_SYN_RECV) {
		struct adi_conn c = {.role = ADI_ROLE_SERVER, .fd = -1};
		fill_tuple(&c, sk);
		bpf_map_update_elem(&conns, &key, &c, BPF_NOEXIST);
	} else if (state == TCP_CLOSE) {
		struct adi_conn *conn = bpf_map_lookup_elem(&conns, &key);
		if (!conn)
			return 0;
		if (conn->tgid) {
			struct adi_scratch *s = new_event(ADI_EV_CLOSE, conn->fd, NR_close, key);
			if (s) {
				s->hdr.tgid = conn->tgid;
				s->hdr.tid = conn->tgid;
				conn_header(&s->hdr, conn);
				submit(s, 0);
			}
		}
		bpf_map_delete_elem(&conns, &key);
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

/* The ADI_PROFILE opt-in rule (docs/live-capture.md) on the task's environment, read where the
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
	struct adi_scratch *s = new_event(kind, -1, 0, 0);
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
