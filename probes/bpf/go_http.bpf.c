// SPDX-License-Identifier: GPL-2.0
/* adi's Go HTTP uprobes: the requests a Go program makes (net/http.(*Client).do) and serves
 * (net/http.serverHandler.ServeHTTP), read from Go's own structures before TLS, so HTTPS is
 * seen in clear.
 *
 * amd64 Go register ABI (Go 1.17+): Client.do(c, req) has c in RAX and req in RBX;
 * serverHandler.ServeHTTP(sh, rw, req) has sh.srv in RAX, the ResponseWriter interface in
 * RBX (itab) and RCX (data), req in RDI; the running goroutine's runtime.g is in R14.
 *
 * - At the entry (after the stack-bound check of the prologue: a call that grows its stack
 *   runs the prologue twice), the request (method, URL scheme/host/path/raw query, Host, every header
 *   value) is copied into a REQUEST record, and the entry time is remembered per call in
 *   `go_http_calls`, keyed by (tgid, side, goroutine, frame) where frame = g.stack.hi - SP:
 *   Go copies a growing stack to a new place but keeps each frame's distance from the top, so
 *   the key found at a RET is the entry's even if the stack moved, and nested calls on one
 *   goroutine (a RoundTripper that makes its own request) keep apart.
 * - A uprobe on every RET instruction of the function (user space decodes them; uretprobes
 *   patch the return address on the stack, which Go moves: never used) sends a RETURN
 *   record with the status code and the duration.
 * User space pairs the two records by that key.
 *
 * Offsets come from user space per process (`go_http_config`, keyed by tgid): one object
 * serves binaries of every Go version. Header maps are walked in both layouts (buckets up to
 * Go 1.23, with overflow buckets and an unfinished growth; Swiss tables from 1.24) by a
 * bpf_loop callback doing one bounded step at a time. Lengths are clamped, never masked, and
 * whatever is cut is flagged.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16; /* bpf_helper_defs.h names these */
typedef __u32 __be32;
typedef __u32 __wsum;

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
};

#include <bpf/bpf_helpers.h>
#include "adi_ringbuf.h"
#include "go_http_events.h"

#ifndef __TARGET_ARCH_x86
#error "registers below are x86_64's"
#endif

/* The uprobe context: the kernel's x86_64 struct pt_regs (UAPI-stable as bpf_user_pt_regs_t). */
struct go_pt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs,
		flags, sp, ss;
};

/* Slots per bucket or group (abi.OldMapBucketCount, abi.SwissMapGroupSlots). */
#define MAP_SLOTS 8
/* Buckets: tophash values below this mark empty or evacuated slots (runtime.minTopHash). */
#define MIN_TOPHASH 5
/* Buckets: hmap.flags bit of a same-size growth (runtime.sameSizeGrow). */
#define SAME_SIZE_GROW 8
/* Largest bucket count exponent walked (2^12 buckets hold 50k headers). */
#define MAX_B 12
/* Most Swiss directory entries walked. */
#define MAX_DIR 64
/* Most bpf_loop steps per header walk: one per slot, value, group or table. */
#define WALK_STEPS 2048
/* Offset of itab.fun[0] (abi.ITab: Inter, Type, Hash+pad, Fun) in every Go version here. */
#define ITAB_FUN0 24

struct go_http_call_key {
	__u32 tgid;
	__u32 side;
	__u64 goroutine;
	__u64 frame;
};

struct go_http_call {
	__u64 ts_ns;
	__u64 rw_itab; /* server: the ResponseWriter interface */
	__u64 rw_data;
};

/* The header map walk, one bpf_loop step at a time. */
struct go_http_walk {
	__u64 phase;      /* buckets: 0 old buckets, 1 buckets, 2 done; Swiss: 0 tables, 2 done */
	__u64 base;       /* buckets: the bucket array; Swiss: the directory */
	__u64 idx;        /* next bucket or directory entry */
	__u64 count;      /* buckets or directory entries */
	__u64 buckets;    /* buckets: the new bucket array; Swiss: the map (small maps) */
	__u64 nbuckets;   /* buckets: its length */
	__u64 gbase;      /* Swiss: groups of the current table */
	__u64 gidx;
	__u64 gcount;
	__u64 prev_table;
	__u64 cur;        /* address of the loaded group, 0 when none is loaded */
	__u64 slot;       /* next slot of the loaded group */
	__u64 vals;       /* values ([]string data) of the current header */
	__u64 nvals;
	__u64 vi;         /* next value */
	__u64 values;     /* values copied so far */
	__u64 groups;     /* groups loaded so far */
	__u64 done;
	__u8 group[GO_HTTP_MAX_GROUP];
};

struct go_http_scratch {
	struct go_http_hdr hdr;
	/* GO_HTTP_MAX_STR of slack: `data + off + 4` with off <= GO_HTTP_MAX_DATA and a length
	 * <= GO_HTTP_MAX_STR is provably in bounds for the verifier. */
	__u8 data[GO_HTTP_MAX_DATA + GO_HTTP_MAX_STR + 8];
	struct go_http_config cfg;
	struct go_http_walk walk;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct go_http_config);
} go_http_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_http_call_key);
	__type(value, struct go_http_call);
} go_http_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct go_http_scratch);
} go_http_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GO_HTTP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} go_http_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} go_http_events SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&go_http_stats, &stat);
	if (v)
		*v += 1;
}

static __always_inline struct go_http_scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&go_http_scratch, &zero);
}

/* Reads a u64 of the process; 0 (and a flag) when the read fails. */
static __always_inline __u64 read_u64(struct go_http_scratch *s, __u64 addr)
{
	__u64 v = 0;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr)) {
		s->hdr.flags |= GO_HTTP_FL_READ_FAILED;
		count(GO_HTTP_STAT_READ_FAILED);
		return 0;
	}
	return v;
}

/* Appends a Go string {ptr, len} to the record: u16 length, u16 tag, bytes. Returns 0 when
 * the data area is full (nothing appended). */
static __always_inline int put_str(struct go_http_scratch *s, __u16 tag, __u64 ptr, __u64 len)
{
	__u32 off = s->hdr.data_len;
	if (off > GO_HTTP_MAX_DATA - 4)
		return 0;
	__u64 room = GO_HTTP_MAX_DATA - 4 - off;
	__u64 n = len;
	if (n > GO_HTTP_MAX_STR)
		n = GO_HTTP_MAX_STR;
	if (n > room)
		n = room;
	if (n < len)
		tag |= GO_HTTP_F_TRUNCATED;
	if (n > 0 && bpf_probe_read_user(&s->data[off + 4], n, (void *)ptr)) {
		n = 0;
		s->hdr.flags |= GO_HTTP_FL_READ_FAILED;
		count(GO_HTTP_STAT_READ_FAILED);
	}
	s->data[off] = n & 0xff;
	s->data[off + 1] = n >> 8;
	s->data[off + 2] = tag & 0xff;
	s->data[off + 3] = tag >> 8;
	s->hdr.data_len = off + 4 + n;
	return 1;
}

/* Appends the Go string whose header {ptr, len} is at `addr`. */
static __always_inline int put_gostr(struct go_http_scratch *s, __u16 tag, __u64 addr)
{
	__u64 str[2] = {};
	if (bpf_probe_read_user(str, sizeof(str), (void *)addr)) {
		s->hdr.flags |= GO_HTTP_FL_READ_FAILED;
		count(GO_HTTP_STAT_READ_FAILED);
	}
	return put_str(s, tag, str[0], str[1]);
}

/* The address of the next bucket or group to read, 0 when the map is done. Buckets: the old
 * array (only slots not yet evacuated count), then the current one; Swiss: each distinct
 * table of the directory, group by group. May take several calls (returns 1 to say "call
 * again") when it steps over a repeated directory entry. */
static __always_inline __u64 next_group(struct go_http_scratch *s, __u64 *again)
{
	struct go_http_walk *w = &s->walk;
	struct go_http_config *c = &s->cfg;
	*again = 0;
	if (!c->swiss) {
		if (w->idx < w->count)
			return w->base + w->idx++ * c->bucket_size;
		if (w->phase == 0 && w->buckets) {
			w->phase = 1;
			w->base = w->buckets;
			w->count = w->nbuckets;
			w->idx = 0;
			*again = 1;
		}
		return 0;
	}
	if (w->gidx < w->gcount)
		return w->gbase + w->gidx++ * c->group_size;
	if (w->idx >= w->count || w->idx >= MAX_DIR)
		return 0;
	__u64 table = read_u64(s, w->base + w->idx++ * 8);
	*again = 1;
	/* A table of local depth d fills 2^(globalDepth-d) consecutive directory entries. */
	if (!table || table == w->prev_table)
		return 0;
	w->prev_table = table;
	w->gbase = read_u64(s, table + c->table_groups_data);
	w->gcount = read_u64(s, table + c->table_groups_mask) + 1;
	w->gidx = 0;
	return 0;
}

/* One step of the header walk: copy one value, or look at one slot, or load one group. */
static long walk_step(__u64 i, void *unused)
{
	struct go_http_scratch *s = scratch();
	if (!s)
		return 1;
	struct go_http_walk *w = &s->walk;
	struct go_http_config *c = &s->cfg;

	if (w->vi < w->nvals) {
		if (w->values >= GO_HTTP_MAX_VALUES) {
			s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
			return 1;
		}
		if (!put_gostr(s, GO_HTTP_F_HDR_VALUE, w->vals + w->vi * 16)) {
			s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
			return 1;
		}
		w->vi++;
		w->values++;
		return 0;
	}

	if (w->cur && w->slot < MAP_SLOTS) {
		__u64 slot = w->slot++;
		__u64 key, elem;
		if (c->swiss) {
			/* ctrl word: byte i is slot i; full slots have the high bit clear. */
			if (w->group[slot & (MAP_SLOTS - 1)] & 0x80)
				return 0;
			key = c->group_slots + slot * c->slot_size;
			elem = key + c->slot_elem;
		} else {
			/* tophash[i]: below MIN_TOPHASH is empty or evacuated. */
			if (w->group[slot & (MAP_SLOTS - 1)] < MIN_TOPHASH)
				return 0;
			key = c->bucket_keys + slot * 16;
			elem = c->bucket_elems + slot * 24;
		}
		if (key > GO_HTTP_MAX_GROUP - 16 || elem > GO_HTTP_MAX_GROUP - 24)
			return 1;
		__u64 *k = (__u64 *)&w->group[key];
		__u64 *v = (__u64 *)&w->group[elem];
		if (!put_str(s, GO_HTTP_F_HDR_NAME, k[0], k[1])) {
			s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
			return 1;
		}
		w->vals = v[0];
		w->nvals = v[1];
		w->vi = 0;
		return 0;
	}

	__u64 next = 0;
	if (w->cur && !c->swiss) {
		__u64 ov = c->bucket_overflow;
		if (ov > GO_HTTP_MAX_GROUP - 8)
			return 1;
		next = *(__u64 *)&w->group[ov];
	}
	if (!next) {
		__u64 again = 0;
		next = next_group(s, &again);
		if (!next) {
			w->cur = 0;
			return again ? 0 : (w->done = 1);
		}
	}
	if (w->groups >= GO_HTTP_MAX_GROUPS) {
		s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
		return 1;
	}
	__u64 size = c->swiss ? c->group_size : c->bucket_size;
	if (size > GO_HTTP_MAX_GROUP)
		size = GO_HTTP_MAX_GROUP;
	if (bpf_probe_read_user(w->group, size, (void *)next)) {
		s->hdr.flags |= GO_HTTP_FL_READ_FAILED;
		count(GO_HTTP_STAT_READ_FAILED);
		return 1;
	}
	w->groups++;
	w->cur = next;
	w->slot = 0;
	return 0;
}

/* Sets up the walk of the http.Header map at `m` (a *hmap or *maps.Map; nil is empty). */
static __always_inline void walk_headers(struct go_http_scratch *s, __u64 m)
{
	struct go_http_walk *w = &s->walk;
	struct go_http_config *c = &s->cfg;
	__builtin_memset(w, 0, sizeof(*w) - sizeof(w->group));
	if (!m)
		return;
	if (c->swiss) {
		__u64 dir = read_u64(s, m + c->map_dir_ptr);
		__u64 len = read_u64(s, m + c->map_dir_len);
		if (!dir)
			return;
		if (len == 0) {
			/* A small map: dirPtr is its only group. */
			w->gbase = dir;
			w->gcount = 1;
		} else {
			w->base = dir;
			w->count = len;
			if (len > MAX_DIR)
				s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
		}
	} else {
		__u8 fb[2] = {};
		if (bpf_probe_read_user(fb, 1, (void *)(m + c->hmap_flags)) ||
		    bpf_probe_read_user(&fb[1], 1, (void *)(m + c->hmap_b))) {
			s->hdr.flags |= GO_HTTP_FL_READ_FAILED;
			return;
		}
		__u64 b = fb[1];
		if (b > MAX_B) {
			b = MAX_B;
			s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
		}
		w->buckets = read_u64(s, m + c->hmap_buckets);
		w->nbuckets = w->buckets ? 1ULL << b : 0;
		__u64 old = read_u64(s, m + c->hmap_oldbuckets);
		if (old) {
			/* Growing: slots of the old array not yet evacuated are still live. */
			w->base = old;
			w->count = (fb[0] & SAME_SIZE_GROW) || b == 0 ? 1ULL << b : 1ULL << (b - 1);
		} else {
			w->phase = 1;
			w->base = w->buckets;
			w->count = w->nbuckets;
		}
	}
	bpf_loop(WALK_STEPS, walk_step, 0, 0);
	if (!w->done)
		s->hdr.flags |= GO_HTTP_FL_HEADERS_CUT;
}

/* The frame key of the running call: (tgid, side, g, g.stack.hi - SP). */
static __always_inline int call_key(struct go_pt_regs *ctx, struct go_http_config *c, __u32 tgid,
				    __u32 side, struct go_http_call_key *key)
{
	__u64 g = ctx->r14;
	__u64 hi = 0;
	if (!g || bpf_probe_read_user(&hi, sizeof(hi), (void *)(g + c->g_stack_hi))) {
		count(GO_HTTP_STAT_READ_FAILED);
		return 0;
	}
	key->tgid = tgid;
	key->side = side;
	key->goroutine = g;
	key->frame = hi - ctx->sp;
	return 1;
}

static __always_inline int on_entry(struct go_pt_regs *ctx, __u32 side, __u64 req, __u64 rw_itab,
				    __u64 rw_data)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct go_http_config *cfg = bpf_map_lookup_elem(&go_http_config, &tgid);
	if (!cfg || !req)
		return 0;
	struct go_http_call_key key = {};
	if (!call_key(ctx, cfg, tgid, side, &key))
		return 0;
	struct go_http_scratch *s = scratch();
	if (!s)
		return 0;
	s->cfg = *cfg;
	struct go_http_config *c = &s->cfg;
	s->hdr.kind = GO_HTTP_EV_REQUEST;
	s->hdr.side = side;
	s->hdr.tgid = tgid;
	s->hdr.tid = (__u32)pid_tgid;
	s->hdr.ts_ns = now;
	s->hdr.goroutine = key.goroutine;
	s->hdr.frame = key.frame;
	s->hdr.duration_ns = 0;
	s->hdr.status = 0;
	s->hdr.flags = 0;
	s->hdr.data_len = 0;

	put_gostr(s, GO_HTTP_F_METHOD, req + c->req_method);
	__u64 url = read_u64(s, req + c->req_url);
	if (url) {
		put_gostr(s, GO_HTTP_F_SCHEME, url + c->url_scheme);
		put_gostr(s, GO_HTTP_F_URL_HOST, url + c->url_host);
		put_gostr(s, GO_HTTP_F_PATH, url + c->url_path);
		put_gostr(s, GO_HTTP_F_QUERY, url + c->url_raw_query);
	}
	put_gostr(s, GO_HTTP_F_HOST, req + c->req_host);
	if (side == GO_HTTP_SIDE_SERVER && read_u64(s, req + c->req_tls))
		s->hdr.flags |= GO_HTTP_FL_TLS;
	walk_headers(s, read_u64(s, req + c->req_header));
	if (s->hdr.flags & GO_HTTP_FL_HEADERS_CUT)
		count(GO_HTTP_STAT_HEADERS_CUT);

	__u64 len = sizeof(s->hdr) + s->hdr.data_len;
	if (len > sizeof(s->hdr) + GO_HTTP_MAX_DATA)
		len = sizeof(s->hdr) + GO_HTTP_MAX_DATA;
	if (bpf_ringbuf_output(&go_http_events, s, len, wakeup_flags(&go_http_events, len))) {
		count(GO_HTTP_STAT_RINGBUF_FULL);
	} else {
		count(GO_HTTP_STAT_RECORDS);
	}
	struct go_http_call call = {.ts_ns = now, .rw_itab = rw_itab, .rw_data = rw_data};
	if (bpf_map_update_elem(&go_http_calls, &key, &call, BPF_ANY))
		count(GO_HTTP_STAT_CALLS_FULL);
	return 0;
}

static __always_inline __s64 read_status(__u64 addr)
{
	__s64 v = 0;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr)) {
		count(GO_HTTP_STAT_READ_FAILED);
		return 0;
	}
	return v;
}

static __always_inline int on_ret(struct go_pt_regs *ctx, __u32 side)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct go_http_config *c = bpf_map_lookup_elem(&go_http_config, &tgid);
	if (!c)
		return 0;
	struct go_http_call_key key = {};
	if (!call_key(ctx, c, tgid, side, &key))
		return 0;
	struct go_http_call *call = bpf_map_lookup_elem(&go_http_calls, &key);
	if (!call) {
		count(GO_HTTP_STAT_NO_ENTRY);
		return 0;
	}
	__s64 status = 0;
	__u32 flags = 0;
	if (side == GO_HTTP_SIDE_CLIENT) {
		/* Results (*Response, error) in RAX, RBX, RCX. */
		__u64 resp = ctx->ax;
		if (resp)
			status = read_status(resp + c->resp_status_code);
		else
			flags |= GO_HTTP_FL_NO_RESPONSE;
	} else {
		__u64 fun0 = 0;
		if (call->rw_itab)
			bpf_probe_read_user(&fun0, sizeof(fun0), (void *)(call->rw_itab + ITAB_FUN0));
		if (fun0 && fun0 == c->http1_header_fn) {
			status = read_status(call->rw_data + c->http1_status);
		} else if (fun0 && fun0 == c->h2_header_fn) {
			__u64 rws = 0;
			bpf_probe_read_user(&rws, sizeof(rws), (void *)(call->rw_data + c->h2_rws));
			if (rws)
				status = read_status(rws + c->h2_status);
			else
				flags |= GO_HTTP_FL_NO_STATUS;
		} else {
			flags |= GO_HTTP_FL_NO_STATUS;
		}
	}
	__u64 ts = call->ts_ns;
	bpf_map_delete_elem(&go_http_calls, &key);

	struct go_http_hdr *e = bpf_ringbuf_reserve(&go_http_events, sizeof(*e), 0);
	if (!e) {
		count(GO_HTTP_STAT_RINGBUF_FULL);
		return 0;
	}
	e->kind = GO_HTTP_EV_RETURN;
	e->side = side;
	e->tgid = tgid;
	e->tid = (__u32)pid_tgid;
	e->ts_ns = now;
	e->goroutine = key.goroutine;
	e->frame = key.frame;
	e->duration_ns = now - ts;
	e->status = status;
	e->flags = flags;
	e->data_len = 0;
	bpf_ringbuf_submit(e, wakeup_flags(&go_http_events, sizeof(*e)));
	count(GO_HTTP_STAT_RECORDS);
	return 0;
}

SEC("uprobe")
int go_client_entry(struct go_pt_regs *ctx)
{
	return on_entry(ctx, GO_HTTP_SIDE_CLIENT, ctx->bx, 0, 0);
}

SEC("uprobe")
int go_client_ret(struct go_pt_regs *ctx)
{
	return on_ret(ctx, GO_HTTP_SIDE_CLIENT);
}

SEC("uprobe")
int go_server_entry(struct go_pt_regs *ctx)
{
	return on_entry(ctx, GO_HTTP_SIDE_SERVER, ctx->di, ctx->bx, ctx->cx);
}

SEC("uprobe")
int go_server_ret(struct go_pt_regs *ctx)
{
	return on_ret(ctx, GO_HTTP_SIDE_SERVER);
}

char LICENSE[] SEC("license") = "GPL";
