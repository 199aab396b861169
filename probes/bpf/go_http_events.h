/* The wire format between the Go HTTP uprobes (go_http.bpf.c) and user space. Mirrored by
 * probes/src/go/uprobes.rs, which pins the sizes with compile-time asserts: change both
 * together. No implicit padding: every field is explicitly sized, structs are multiples of 8.
 */
#ifndef GO_HTTP_EVENTS_H
#define GO_HTTP_EVENTS_H

/* Record kinds: never reuse a value. */
#define GO_HTTP_EV_REQUEST 1 /* entry of Client.do / serverHandler.ServeHTTP: the request */
#define GO_HTTP_EV_RETURN 2  /* a RET of that function: status code and duration */

/* Which function fired. */
#define GO_HTTP_SIDE_CLIENT 1 /* net/http.(*Client).do */
#define GO_HTTP_SIDE_SERVER 2 /* net/http.serverHandler.ServeHTTP */

/* Bytes of strings a REQUEST record carries after its header. */
#define GO_HTTP_MAX_DATA 8192
/* Longest string copied: longer ones are clamped to this (never masked) and flagged. */
#define GO_HTTP_MAX_STR 1024
/* Most header values (all names together) copied per request. */
#define GO_HTTP_MAX_VALUES 64
/* Most buckets or groups of a header map read per request. */
#define GO_HTTP_MAX_GROUPS 64
/* Largest bucket (buckets: 336 bytes for map[string][]string) or group (Swiss: 328). */
#define GO_HTTP_MAX_GROUP 512

/* The strings of a REQUEST record follow its header, each as a little-endian u16 length
 * (bytes copied), a u16 tag, then the bytes. Header values follow their name. */
#define GO_HTTP_F_METHOD 1
#define GO_HTTP_F_SCHEME 2    /* URL.Scheme (empty on the server side) */
#define GO_HTTP_F_URL_HOST 3  /* URL.Host (empty on the server side) */
#define GO_HTTP_F_PATH 4      /* URL.Path */
#define GO_HTTP_F_QUERY 5     /* URL.RawQuery */
#define GO_HTTP_F_HOST 6      /* Request.Host */
#define GO_HTTP_F_HDR_NAME 7
#define GO_HTTP_F_HDR_VALUE 8
#define GO_HTTP_F_TRUNCATED 0x8000 /* tag bit: the string is longer than its copy */

/* Record flags. */
#define GO_HTTP_FL_HEADERS_CUT 1  /* not every header value was copied (limits reached) */
#define GO_HTTP_FL_TLS 2          /* server: Request.TLS is set (HTTPS) */
#define GO_HTTP_FL_READ_FAILED 4  /* a read of the process's memory failed */
#define GO_HTTP_FL_NO_RESPONSE 8  /* client RET: no *Response (the call returned an error) */
#define GO_HTTP_FL_NO_STATUS 16   /* server RET: a ResponseWriter whose status is not known */

/* Header of every record. */
struct go_http_hdr {
	__u32 kind;        /* GO_HTTP_EV_* */
	__u32 side;        /* GO_HTTP_SIDE_* */
	__u32 tgid;
	__u32 tid;
	__u64 ts_ns;       /* bpf_ktime_get_ns() at the entry (REQUEST) or the RET (RETURN) */
	__u64 goroutine;   /* the runtime.g of the call (R14) */
	__u64 frame;       /* g.stack.hi - SP: equal at entry and RET even after the stack moved */
	__u64 duration_ns; /* RETURN: since the entry */
	__s64 status;      /* RETURN: the status code; 0 when unknown (see flags) */
	__u32 flags;       /* GO_HTTP_FL_* */
	__u32 data_len;    /* REQUEST: bytes of strings following */
};

/* Where the fields are in one process's binary, set by user space per tgid before the uprobes
 * are attached: offsets from DWARF or the built-in table, and runtime addresses. */
struct go_http_config {
	/* net/http.Request */
	__u64 req_method;
	__u64 req_url;
	__u64 req_header;
	__u64 req_host;
	__u64 req_tls;
	/* net/url.URL */
	__u64 url_scheme;
	__u64 url_host;
	__u64 url_path;
	__u64 url_raw_query;
	/* net/http.Response.StatusCode (client) */
	__u64 resp_status_code;
	/* Server: the ResponseWriter is told apart by the first method of its itab (Header,
	 * runtime address) and the status read from the writer behind it. */
	__u64 http1_header_fn;   /* net/http.(*response).Header */
	__u64 http1_status;      /* net/http.response.status */
	__u64 h2_header_fn;      /* (*http2responseWriter).Header, 0 when absent */
	__u64 h2_rws;            /* http2responseWriter.rws */
	__u64 h2_status;         /* http2responseWriterState.status */
	/* runtime.g.stack.hi */
	__u64 g_stack_hi;
	/* http.Header: 1 for Swiss tables, 0 for buckets */
	__u64 swiss;
	/* buckets: runtime.hmap fields and the bucket layout */
	__u64 hmap_flags;
	__u64 hmap_b;
	__u64 hmap_buckets;
	__u64 hmap_oldbuckets;
	__u64 bucket_keys;
	__u64 bucket_elems;
	__u64 bucket_overflow;
	__u64 bucket_size;
	/* Swiss: internal/runtime/maps fields and the group layout */
	__u64 map_dir_ptr;
	__u64 map_dir_len;
	__u64 table_groups_data;
	__u64 table_groups_mask;
	__u64 group_slots;
	__u64 slot_size;
	__u64 slot_elem;
	__u64 group_size;
};

/* Counters kept per CPU (`go_http_stats`). */
#define GO_HTTP_STAT_RINGBUF_FULL 0 /* records lost: the ring buffer was full */
#define GO_HTTP_STAT_RECORDS 1      /* records submitted */
#define GO_HTTP_STAT_CALLS_FULL 2   /* entries not remembered: the calls map was full */
#define GO_HTTP_STAT_NO_ENTRY 3     /* RETs without a remembered entry */
#define GO_HTTP_STAT_READ_FAILED 4  /* reads of process memory that failed */
#define GO_HTTP_STAT_HEADERS_CUT 5  /* requests whose headers were not all copied */
#define GO_HTTP_STAT_MAX 6

#endif
