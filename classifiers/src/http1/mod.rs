//! HTTP/1.0 and HTTP/1.1 (RFC 9112 message syntax, RFC 9110 semantics).
//!
//! **Probe.** To the server: a request line `METHOD SP request-target SP HTTP/1.x CRLF` with
//! a known method (RFC 9110 section 9: GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE, RFC
//! 5789 PATCH; WebDAV and DeltaV methods score one band lower). To the client: a status line
//! `HTTP/1.x SP 3DIGIT SP reason CRLF`. Bands: a whole head whose framing fields agree
//! (Content-Length / Transfer-Encoding, RFC 9112 section 6.3) is `CERTAIN`; a whole start
//! line is `STRONG`; a known method followed by an origin-form target (`GET /`) or the
//! `HTTP/1.x ` prefix alone is `WEAK`. Bytes that are the other direction's (a status line
//! sent to the server) match with `observed` set. Random bytes are rejected on the first byte
//! unless it is an upper-case letter, and the method token is at most 16 bytes, so the miss
//! path never scans the buffer.
//!
//! **Look-alikes.** Redis inline commands (`GET key\r\n`: no version), RTSP (`RTSP/1.0`), SIP
//! (`SIP/2.0`), ICAP (`ICAP/1.0`) and the HTTP/2 preface (`PRI * HTTP/2.0`) all fail the
//! version check, and their own methods (`DESCRIBE`, `INVITE`, `REQMOD`, `PRI`) are unknown
//! here. They never reach `WEAK` except a Redis inline command that starts like `GET /`,
//! until its line ends.
//!
//! **Session.** See [`session`]: requests, responses, bodies by Content-Length, chunked or
//! close, pipelining, `1xx` as messages and `101` / `CONNECT` 2xx as protocol switches.

mod parser;
mod session;
#[cfg(test)]
mod tests;

use adi_classify::{
    probe_both_ways, Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId,
};
use nom::Err;

use self::parser::{parse_framing, parse_request_line, parse_status_line};

/// The protocol id.
pub(crate) const HTTP1: ProtocolId = ProtocolId::new("http1");

/// Most bytes the probe reads: enough for the head of ordinary requests and responses (a
/// longer head is still recognised, at `STRONG`).
pub(crate) const PROBE_WINDOW: usize = 2048;

/// The longest method the probe knows (`BASELINE-CONTROL`).
const MAX_METHOD_LEN: usize = 16;

/// Methods of RFC 9110 section 9 and RFC 5789 (PATCH).
const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

/// WebDAV (RFC 4918, 3648, 3744, 4437, 4791, 5323, 5842) and DeltaV (RFC 3253) methods:
/// rarer, so weaker evidence.
const WEBDAV_METHODS: &[&[u8]] = &[
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKCALENDAR",
    b"ACL",
    b"BIND",
    b"UNBIND",
    b"REBIND",
    b"ORDERPATCH",
    b"MKACTIVITY",
    b"MKWORKSPACE",
    b"CHECKOUT",
    b"CHECKIN",
    b"UNCHECKOUT",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"MERGE",
    b"LABEL",
    b"UPDATE",
];

/// `HTTP/1.`: the start of every HTTP/1.x status line (RFC 9112 section 4).
const STATUS_MAGIC: &[u8] = b"HTTP/1.";

/// The HTTP/1.0 and HTTP/1.1 classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http1;

adi_classify::register_classifier!(adi_classify::Registration {
    id: HTTP1,
    category: Category::HTTP,
    description: "HTTP/1.0 and HTTP/1.1 requests and responses",
    default_ports: &[80, 8080, 8000, 8001, 8443],
    probe_window: 1..=PROBE_WINDOW,
    classifier: &Http1,
});

/// How a method is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MethodKind {
    Standard,
    WebDav,
}

fn method_kind(token: &[u8]) -> Option<MethodKind> {
    if METHODS.contains(&token) {
        Some(MethodKind::Standard)
    } else if WEBDAV_METHODS.contains(&token) {
        Some(MethodKind::WebDav)
    } else {
        None
    }
}

fn is_method_prefix(token: &[u8]) -> bool {
    METHODS
        .iter()
        .chain(WEBDAV_METHODS)
        .any(|m| m.starts_with(token))
}

/// Looks for a request head at the start of `buf`.
fn looks_like_request(buf: &[u8]) -> Probe {
    // Method: upper-case letters (and `-` for DeltaV), at most MAX_METHOD_LEN of them.
    let Some(&first) = buf.first() else {
        return Probe::NeedMore;
    };
    if !first.is_ascii_uppercase() {
        return Probe::NoMatch;
    }
    let head = buf
        .get(..buf.len().min(MAX_METHOD_LEN + 1))
        .unwrap_or_default();
    let Some(end) = head
        .iter()
        .position(|&c| !(c.is_ascii_uppercase() || c == b'-'))
    else {
        return if head.len() <= MAX_METHOD_LEN && is_method_prefix(head) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    let (token, after) = head.split_at(end);
    let Some(kind) = method_kind(token) else {
        return Probe::NoMatch;
    };
    if after.first() != Some(&b' ') {
        return Probe::NoMatch;
    }
    // request-target (RFC 9112 section 3.2): origin-form `/`, asterisk-form `*`,
    // absolute-form `scheme:`, authority-form `host:port` (CONNECT).
    let target_first = buf.get(end + 1).copied();
    let origin_form = matches!(target_first, Some(b'/' | b'*'));
    if target_first.is_some_and(|c| !(origin_form || c.is_ascii_alphanumeric() || c == b'[')) {
        return Probe::NoMatch;
    }
    let weak = if origin_form && kind == MethodKind::Standard {
        Probe::matched(Confidence::WEAK, "HTTP method and request target")
    } else {
        Probe::NeedMore
    };
    let rest = match parse_request_line(buf) {
        Ok((rest, _)) => rest,
        Err(Err::Incomplete(_)) => return weak,
        Err(_) => return Probe::NoMatch,
    };
    let (line, head) = match kind {
        MethodKind::Standard => (Confidence::STRONG, Confidence::CERTAIN),
        MethodKind::WebDav => (Confidence::WEAK, Confidence::STRONG),
    };
    match parse_framing(rest) {
        Ok((_, framing)) if framing.request_is_consistent() => {
            Probe::matched(head, "HTTP/1.x request line and headers")
        }
        Ok(_) | Err(Err::Incomplete(_)) => Probe::matched(line, "HTTP/1.x request line"),
        Err(_) => Probe::NoMatch,
    }
}

/// Looks for a response head at the start of `buf`.
fn looks_like_response(buf: &[u8]) -> Probe {
    let n = buf.len().min(STATUS_MAGIC.len());
    if buf.get(..n) != STATUS_MAGIC.get(..n) {
        return Probe::NoMatch;
    }
    let rest = match parse_status_line(buf) {
        Ok((rest, _)) => rest,
        // `HTTP/1.x ` read: the version is right, the status code is still to come.
        Err(Err::Incomplete(_)) if buf.len() > STATUS_MAGIC.len() + 1 => {
            return Probe::matched(Confidence::WEAK, "HTTP/1.x version prefix");
        }
        Err(Err::Incomplete(_)) => return Probe::NeedMore,
        Err(_) => return Probe::NoMatch,
    };
    match parse_framing(rest) {
        Ok((_, framing)) if framing.response_is_consistent() => {
            Probe::matched(Confidence::CERTAIN, "HTTP/1.x status line and headers")
        }
        Ok(_) | Err(Err::Incomplete(_)) => {
            Probe::matched(Confidence::STRONG, "HTTP/1.x status line")
        }
        Err(_) => Probe::NoMatch,
    }
}

impl Classifier for Http1 {
    fn probe(&self, buf: &[u8], dir: Direction, _ports: PortHint) -> Probe {
        let buf = buf.get(..buf.len().min(PROBE_WINDOW)).unwrap_or_default();
        probe_both_ways(dir, || looks_like_request(buf), || looks_like_response(buf))
    }

    fn session(&self) -> Box<dyn adi_classify::Session> {
        Box::new(session::Http1Session::default())
    }
}
