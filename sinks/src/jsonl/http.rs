//! The JSON line of an `http` event, written field by field.
//!
//! The bytes are the ones serde writes for `Event::Http` (a property test in `tests.rs` pins
//! it over random events): the same keys in the same order, strings escaped and numbers
//! formatted by sonic-rs's own formatter. Serde's path names every key through a map
//! serializer that escapes it again for each event, and `flatten` routes the process,
//! endpoint and container fields through a second one; here the keys are byte literals. The
//! rare nested objects (containers, gRPC) still go through serde.

use std::io;
use std::net::IpAddr;

use adi_core::event::{HeaderValue, HttpEvent, ProcessInfo};
use serde::Serialize;
use sonic_rs::format::{CompactFormatter, Formatter};

/// Appends the JSON object of `e` as an `http` event to `out` (no newline).
///
/// # Errors
///
/// Only those of serialising a nested object, which writing to memory does not produce.
pub(crate) fn write(e: &HttpEvent, out: &mut Vec<u8>) -> io::Result<()> {
    out.extend_from_slice(br#"{"event_type":"http","timestamp":"#);
    string(out, &e.timestamp)?;
    process(out, &e.process)?;
    let ends = &e.endpoints;
    out.extend_from_slice(br#","direction":"#);
    string(out, ends.direction)?;
    out.extend_from_slice(br#","source_ip":"#);
    ip(out, ends.source_ip)?;
    out.extend_from_slice(br#","source_port":"#);
    number(out, ends.source_port.into())?;
    out.extend_from_slice(br#","dest_ip":"#);
    ip(out, ends.dest_ip)?;
    out.extend_from_slice(br#","dest_port":"#);
    number(out, ends.dest_port.into())?;
    let c = &e.containers;
    if let Some(source) = &c.source_container {
        out.extend_from_slice(br#","source_container":"#);
        nested(out, source)?;
    }
    if let Some(destination) = &c.destination_container {
        out.extend_from_slice(br#","destination_container":"#);
        nested(out, destination)?;
    }
    if let Some(kind) = c.destination_type {
        out.extend_from_slice(br#","destination_type":"#);
        string(out, kind)?;
    }
    out.extend_from_slice(br#","bytes":"#);
    number(out, e.bytes)?;
    if e.tls {
        out.extend_from_slice(br#","tls":true"#);
    }
    if let Some(method) = &e.method {
        out.extend_from_slice(br#","method":"#);
        string(out, method)?;
    }
    if let Some(url) = &e.url {
        out.extend_from_slice(br#","url":"#);
        string(out, url)?;
    }
    if let Some(status) = e.status_code {
        out.extend_from_slice(br#","status_code":"#);
        number(out, status.into())?;
    }
    out.extend_from_slice(br#","headers":{"#);
    for (i, (name, value)) in e.headers.grouped().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name)?;
        out.push(b':');
        match value {
            HeaderValue::One(v) => string(out, v)?,
            HeaderValue::Many(values) => {
                out.push(b'[');
                for (k, v) in values.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    string(out, v)?;
                }
                out.push(b']');
            }
        }
    }
    out.extend_from_slice(br#"},"body":"#);
    string(out, &e.body.text())?;
    out.extend_from_slice(br#","raw_payload":"#);
    string(out, &e.raw_payload.text())?;
    out.extend_from_slice(if e.truncated {
        br#","truncated":true,"flow_id":"#
    } else {
        br#","truncated":false,"flow_id":"#
    });
    number(out, e.flow_id.0)?;
    if let Some(ms) = e.latency_ms {
        out.extend_from_slice(br#","latency_ms":"#);
        // As serde writes an f64: null when not finite.
        if ms.is_finite() {
            CompactFormatter.write_f64(out, ms)?;
        } else {
            out.extend_from_slice(b"null");
        }
    }
    if let Some(version) = e.version {
        out.extend_from_slice(br#","version":"#);
        string(out, version)?;
    }
    if let Some(stream) = e.stream_id {
        out.extend_from_slice(br#","stream_id":"#);
        number(out, stream)?;
    }
    if let Some(grpc) = &e.grpc {
        out.extend_from_slice(br#","grpc":"#);
        nested(out, grpc)?;
    }
    out.push(b'}');
    Ok(())
}

/// The process's fields, as `ProcessInfo` serialises them.
fn process(out: &mut Vec<u8>, p: &ProcessInfo) -> io::Result<()> {
    out.extend_from_slice(br#","pid":"#);
    number(out, p.pid.into())?;
    out.extend_from_slice(br#","comm":"#);
    string(out, &p.comm)?;
    out.extend_from_slice(br#","cmdline":"#);
    string(out, &p.cmdline)?;
    for (key, value) in [
        (&br#","service":"#[..], &p.service),
        (br#","peer_service":"#, &p.peer_service),
        (br#","peer_process":"#, &p.peer_process),
    ] {
        if let Some(v) = value {
            out.extend_from_slice(key);
            string(out, v)?;
        }
    }
    Ok(())
}

/// A JSON string, escaped as sonic-rs escapes it.
fn string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    CompactFormatter.write_string_fast(out, s, true)
}

fn number(out: &mut Vec<u8>, n: u64) -> io::Result<()> {
    CompactFormatter.write_u64(out, n)
}

/// An address as text, as serde writes an `IpAddr` for a human-readable format. IPv4 digit
/// by digit (two per event: `fmt` took a twentieth of the line's time); IPv6 through
/// `Display`, into a stack buffer.
fn ip(out: &mut Vec<u8>, ip: IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(v4) => {
            out.push(b'"');
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            out.push(b'"');
            Ok(())
        }
        IpAddr::V6(_) => {
            // At most 45 bytes ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
            let mut buf = [0u8; 48];
            let mut w = &mut buf[..];
            io::Write::write_fmt(&mut w, format_args!("{ip}"))?;
            let len = 48 - w.len();
            string(out, std::str::from_utf8(&buf[..len]).unwrap_or_default())
        }
    }
}

/// A nested object, through serde.
fn nested(out: &mut Vec<u8>, value: &impl Serialize) -> io::Result<()> {
    sonic_rs::to_writer(&mut *out, value).map_err(io::Error::other)
}
