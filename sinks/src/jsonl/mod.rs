//! The `jsonl` sink: one JSON object per line, field names as in `docs/output-formats.md`, to
//! stdout or to a file created with mode 0600 (events carry headers and bodies).

use std::io::{self, BufWriter, Write};
use std::path::Path;

use adi_core::bus::Encode;
use adi_core::event::{Event, LostEvent};
use adi_core::time::{now_unix_ns, rfc3339_nanos};

use crate::{Sink, SinkError};

mod http;
#[cfg(test)]
mod tests;

/// Writes events as JSON lines.
pub struct JsonlSink {
    name: String,
    target: String,
    out: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl JsonlSink {
    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::to_writer("jsonl", "stdout", Box::new(io::stdout()))
    }

    /// A sink appending to `path`, created with mode 0600 if missing.
    ///
    /// # Errors
    ///
    /// [`SinkError::Open`] when the file cannot be opened for writing.
    pub fn file(path: &Path) -> Result<Self, SinkError> {
        let file = crate::open_private(path)?;
        let target = path.display().to_string();
        Ok(Self::to_writer(
            &format!("jsonl={target}"),
            &target,
            Box::new(file),
        ))
    }

    /// A sink writing to any writer (tests, pipes).
    pub fn to_writer(name: &str, target: &str, out: Box<dyn Write + Send>) -> Self {
        Self {
            name: name.to_owned(),
            target: target.to_owned(),
            out: BufWriter::with_capacity(64 * 1024, out),
            line: Vec::with_capacity(1024),
        }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, event: &Event) -> Result<(), SinkError> {
        self.line.clear();
        if !line(event, &mut self.line)? {
            return Ok(());
        }
        self.out
            .write_all(&self.line)
            .map_err(SinkError::write(&self.target))
    }

    fn encoder(&self) -> Option<Box<dyn Encode<Event>>> {
        Some(Box::new(JsonlEncoder))
    }

    fn write_encoded(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        // A batch as large as the buffer goes straight to the writer; a smaller one is
        // flushed with it, so that a failure is the batch's (its events are counted).
        self.out
            .write_all(bytes)
            .and_then(|()| self.out.flush())
            .map_err(SinkError::write(&self.target))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(SinkError::write(&self.target))
    }
}

/// Whether the stream leaves `event` out: environments are the env-yaml sink's; the stream
/// keeps the documented event types.
fn leaves_out(event: &Event) -> bool {
    matches!(event, Event::Process(_))
}

/// Appends `event`'s JSON line to `out`; `false` for an event the stream leaves out.
fn line(event: &Event, out: &mut Vec<u8>) -> Result<bool, SinkError> {
    if leaves_out(event) {
        return Ok(false);
    }
    // sonic-rs writes the bytes serde_json writes (pinned by a test), escaping strings with
    // SIMD: a third of the sink's time at full capture went to serde_json's byte loop.
    match event {
        // Most lines: written field by field (`http.rs`), the bytes serde writes.
        Event::Http(e) => http::write(e, out).map_err(|e| SinkError::Serialize(e.to_string()))?,
        _ => sonic_rs::to_writer(&mut *out, event)?,
    }
    out.push(b'\n');
    Ok(true)
}

/// The `jsonl` sink's lines, made on the capturing thread ([`Sink::encoder`]).
#[derive(Debug, Clone, Copy)]
pub struct JsonlEncoder;

impl Encode<Event> for JsonlEncoder {
    fn skips(&self, event: &Event) -> bool {
        leaves_out(event)
    }

    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        line(event, out).map(|_| ()).map_err(|e| e.to_string())
    }

    fn encode_lost(&mut self, source: &str, count: u64, out: &mut Vec<u8>) -> Result<(), String> {
        let lost = Event::Lost(LostEvent {
            timestamp: rfc3339_nanos(now_unix_ns()),
            source: source.to_owned(),
            count,
        });
        line(&lost, out).map(|_| ()).map_err(|e| e.to_string())
    }
}
