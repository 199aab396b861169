//! Per-flow Kafka parsing: one [`Record`] per frame.
//!
//! Requests: `op` = the API name (`Produce`, `Metadata`, `api_93` for an unknown key),
//! attributes `client_id`, `api_version`, `correlation_id`. Responses: `op` = the API of the
//! request with the same correlation id, attribute `correlation_id`, and for ApiVersions the
//! `error_code` as `status`. A frame is reported once its header is read; the rest of its
//! body is skipped as it arrives, so a large Produce never has to be buffered whole.

use std::collections::VecDeque;

use adi_classify::record::lossy;
use adi_classify::{Direction, ParseError, Record, RecordKind, Skip, Step, StepResult, Steps};
use nom::number::streaming::{be_i16, be_i32};
use nom::Err;

use super::parser::{
    parse_frame_size, parse_produce_acks, parse_request_header, skip_tagged_fields, ApiKey,
    RequestHeader, MAX_MESSAGE_SIZE, MIN_REQUEST_SIZE, MIN_RESPONSE_SIZE,
};
use super::KAFKA;

/// Most bytes of a frame kept in [`Record::raw`].
pub(crate) const MAX_RAW: usize = 64;
/// Most requests awaiting a response that the session remembers; older ones are forgotten
/// (a client that never reads its responses must not grow the session).
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// A request waiting for its response.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    correlation_id: i32,
    api_key: ApiKey,
}

/// The state of one Kafka connection.
#[derive(Debug, Default)]
pub(crate) struct KafkaSession {
    in_flight: VecDeque<InFlight>,
    /// Bytes of the current frame still to skip, per direction.
    skip: Skip,
}

fn malformed(what: &'static str) -> ParseError {
    ParseError::malformed(KAFKA, what)
}

/// The API name of `key`, or `api_<n>` for a key adi does not know.
fn api_name(key: ApiKey) -> String {
    key.name()
        .map_or_else(|| format!("api_{}", key.0), str::to_owned)
}

/// A frame's size, `Ok(None)` while the four size bytes are incomplete.
fn frame_size(buf: &[u8], min: usize) -> Result<Option<usize>, ParseError> {
    match parse_frame_size(buf, min) {
        Ok((_, size)) => Ok(Some(size)),
        Err(Err::Incomplete(_)) => Ok(None),
        Err(_) => {
            let raw = buf
                .get(..4)
                .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match usize::try_from(raw) {
                Ok(len) if len > MAX_MESSAGE_SIZE => {
                    Err(ParseError::too_large(KAFKA, "frame", len, MAX_MESSAGE_SIZE))
                }
                _ => Err(malformed("frame size")),
            }
        }
    }
}

impl KafkaSession {
    fn request(&mut self, buf: &[u8], out: &mut Vec<Record>) -> Result<usize, ParseError> {
        let Some(size) = frame_size(buf, MIN_REQUEST_SIZE)? else {
            return Ok(0);
        };
        let total = size + 4;
        let frame = &buf[4..total.min(buf.len())];
        let (body, header) = match parse_request_header(frame, size) {
            Ok(x) => x,
            Err(Err::Incomplete(_)) if frame.len() < size => return Ok(0),
            Err(_) => return Err(malformed("request header")),
        };
        let RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        } = header;
        let mut kind = RecordKind::Request;
        if api_key == ApiKey::PRODUCE {
            // Request header v2 (flexible, Produce v9+) adds tagged fields before the body.
            let acks = if api_version >= 9 {
                skip_tagged_fields(body).and_then(|(b, ())| parse_produce_acks(b, api_version))
            } else {
                parse_produce_acks(body, api_version)
            };
            match acks {
                // acks = 0: the broker sends no response at all.
                Ok((_, 0)) => kind = RecordKind::Message,
                Ok(_) => {}
                Err(Err::Incomplete(_)) if frame.len() < size => return Ok(0),
                Err(_) => return Err(malformed("Produce request")),
            }
        }
        let mut rec = Record::new(kind);
        rec.op = Some(api_name(api_key));
        if let Some(id) = client_id {
            let id = lossy(id);
            if !id.is_empty() {
                rec.connection.push(("client_id", id.clone()));
            }
            rec.attributes.push(("client_id".into(), id));
        }
        rec.attributes
            .push(("api_version".into(), api_version.to_string()));
        rec.attributes
            .push(("correlation_id".into(), correlation_id.to_string()));
        if kind == RecordKind::Request {
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.in_flight.pop_front();
            }
            self.in_flight.push_back(InFlight {
                correlation_id,
                api_key,
            });
        }
        Ok(self.finish(rec, buf, total, Direction::ToServer, out))
    }

    fn response(&mut self, buf: &[u8], out: &mut Vec<Record>) -> Result<usize, ParseError> {
        let Some(size) = frame_size(buf, MIN_RESPONSE_SIZE)? else {
            return Ok(0);
        };
        let total = size + 4;
        let Ok((body, correlation_id)) = be_i32::<_, nom::error::Error<&[u8]>>(&buf[4..]) else {
            return Ok(0);
        };
        let mut rec = Record::new(RecordKind::Response);
        let pos = self
            .in_flight
            .iter()
            .position(|r| r.correlation_id == correlation_id);
        if let Some(p) = pos {
            let api_key = self.in_flight[p].api_key;
            if api_key == ApiKey::API_VERSIONS && size >= MIN_RESPONSE_SIZE + 2 {
                // The error_code follows the correlation id (all versions).
                let Ok((_, code)) = be_i16::<_, nom::error::Error<&[u8]>>(body) else {
                    return Ok(0);
                };
                rec.status = u16::try_from(code).ok();
            }
            self.in_flight.remove(p);
            rec.op = Some(api_name(api_key));
        }
        rec.attributes
            .push(("correlation_id".into(), correlation_id.to_string()));
        Ok(self.finish(rec, buf, total, Direction::ToClient, out))
    }

    /// Emits `rec` for a frame of `total` bytes starting at `buf`, consumes what is there
    /// and remembers the rest to skip.
    fn finish(
        &mut self,
        mut rec: Record,
        buf: &[u8],
        total: usize,
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> usize {
        let consumed = self.skip.message(dir, total, buf.len());
        rec.raw = buf[..consumed.min(MAX_RAW)].to_vec();
        rec.wire_len = total as u64;
        rec.truncated = total > MAX_RAW;
        out.push(rec);
        consumed
    }
}

impl Steps for KafkaSession {
    fn skip(&mut self) -> Option<&mut Skip> {
        Some(&mut self.skip)
    }

    fn step(&mut self, buf: &[u8], dir: Direction, out: &mut Vec<Record>) -> StepResult {
        Ok(Step::from(match dir {
            Direction::ToServer => self.request(buf, out),
            Direction::ToClient => self.response(buf, out),
        }))
    }
}
