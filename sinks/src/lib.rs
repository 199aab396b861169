//! `adi-sinks`: where events go. Each sink is a synchronous writer of [`adi_core::event::Event`]s;
//! the binary runs each one behind its own bounded bus queue, so a slow sink loses (and
//! counts) events instead of stalling capture. A sink whose work per event is only encoding
//! it (`jsonl`) hands out an [`Encode`]r: the events are encoded on the capture thread and
//! the sink's own thread writes the bytes ([`Sink::encoder`]).
//!
//! Sinks never need root, a kernel or an async runtime.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::str::FromStr;

use adi_core::bus::Encode;
use adi_core::event::Event;

pub mod env_yaml;
pub mod jsonl;
pub mod service_map;

pub use env_yaml::EnvYamlSink;
pub use jsonl::JsonlSink;
pub use service_map::ServiceMapSink;

/// A sink could not write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Creating or opening the output file failed.
    #[error("cannot open {path}: {source}; choose a path in an existing, writable directory")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed (disk full, closed pipe, read-only filesystem).
    #[error("cannot write to {target}: {source}")]
    Write {
        /// `stdout` or the file path.
        target: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An event could not be serialised.
    #[error("cannot serialise an event: {0}")]
    Serialize(String),
}

impl From<serde_json::Error> for SinkError {
    fn from(e: serde_json::Error) -> Self {
        Self::Serialize(e.to_string())
    }
}

impl From<sonic_rs::Error> for SinkError {
    fn from(e: sonic_rs::Error) -> Self {
        Self::Serialize(e.to_string())
    }
}

impl SinkError {
    /// Wraps a write error of `target`, for `map_err`.
    pub fn write(target: &str) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Write {
            target: target.to_owned(),
            source,
        }
    }
}

/// A destination for events.
pub trait Sink: Send {
    /// The sink's name in messages and `lost` events (`jsonl`, `jsonl=/tmp/x`).
    fn name(&self) -> &str;
    /// Writes one event.
    ///
    /// # Errors
    ///
    /// [`SinkError`] when the destination refuses it; the caller counts the event as lost.
    fn write(&mut self, event: &Event) -> Result<(), SinkError>;
    /// Pushes buffered output to the destination.
    ///
    /// # Errors
    ///
    /// [`SinkError::Write`] when the destination refuses it.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// When the sink wants [`Sink::flush`] called even if no event arrives (a debounced
    /// write); `None` when it does not.
    fn due(&self) -> Option<std::time::Instant> {
        None
    }
    /// The part of this sink to run on the capturing thread, when all its work per event is
    /// turning it into bytes: each event is then encoded there, while its memory is in
    /// cache, and this sink only writes the bytes ([`Sink::write_encoded`]). `None` (the
    /// default): events reach [`Sink::write`].
    fn encoder(&self) -> Option<Box<dyn Encode<Event>>> {
        None
    }
    /// Writes bytes made by this sink's [`Sink::encoder`] (whole events, back to back),
    /// through to the destination: when it returns `Ok`, they are written.
    ///
    /// # Errors
    ///
    /// [`SinkError::Write`] when the destination refuses them; [`SinkError::Serialize`] for
    /// a sink without an encoder.
    fn write_encoded(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let _ = bytes;
        Err(SinkError::Serialize(format!(
            "sink {} takes events, not encoded bytes",
            self.name()
        )))
    }
    /// The events are over (shutdown, end of a capture): writes everything.
    ///
    /// # Errors
    ///
    /// [`SinkError::Write`] when the destination refuses it.
    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Opens `path` for appending, creating it with mode 0600 (events and environments may hold
/// what redaction cannot recognise); an existing file keeps its mode.
///
/// # Errors
///
/// [`SinkError::Open`] when the file cannot be opened for writing.
pub fn open_private(path: &std::path::Path) -> Result<std::fs::File, SinkError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map_err(|source| SinkError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Checks that `path` can become an output file, without creating it: its directory exists
/// and is writable as far as the file system says (not read-only), and the path itself is
/// not a directory. Run before capture starts, so that a typo fails fast and no file is
/// created for a start that fails.
///
/// # Errors
///
/// [`SinkError::Open`] with the reason.
pub fn check_writable(path: &std::path::Path) -> Result<(), SinkError> {
    let fail = |msg: &str| SinkError::Open {
        path: path.to_owned(),
        source: std::io::Error::other(msg.to_owned()),
    };
    if path.is_dir() {
        return Err(fail("it is a directory"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(fail(&format!("{} is not a directory", dir.display()))),
        Ok(m) if m.permissions().readonly() => {
            Err(fail(&format!("{} is read-only", dir.display())))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(fail(&format!("directory {}: {e}", dir.display()))),
    }
}

/// A `--sink KIND[=PATH]` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// JSON lines to stdout (`None`) or a file.
    Jsonl(Option<PathBuf>),
    /// One YAML document per profiled process.
    EnvYaml(PathBuf),
    /// The service map YAML.
    ServiceMap(PathBuf),
}

/// A `--sink` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkSpecError {
    /// The kind is not one of ours.
    #[error("unknown sink `{0}`: use jsonl[=PATH], env-yaml=PATH or service-map=PATH")]
    UnknownKind(String),
    /// The kind needs a path.
    #[error("the {0} sink needs a path: --sink {0}=PATH")]
    MissingPath(&'static str),
}

impl FromStr for SinkSpec {
    type Err = SinkSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, path) = match s.split_once('=') {
            Some((k, p)) => (k.trim(), Some(PathBuf::from(p))),
            None => (s.trim(), None),
        };
        let path = path.filter(|p| !p.as_os_str().is_empty());
        match kind {
            "jsonl" => Ok(Self::Jsonl(path)),
            "env-yaml" => path
                .map(Self::EnvYaml)
                .ok_or(SinkSpecError::MissingPath("env-yaml")),
            "service-map" => path
                .map(Self::ServiceMap)
                .ok_or(SinkSpecError::MissingPath("service-map")),
            other => Err(SinkSpecError::UnknownKind(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs() {
        assert_eq!("jsonl".parse(), Ok(SinkSpec::Jsonl(None)));
        assert_eq!(
            "jsonl=/tmp/a".parse(),
            Ok(SinkSpec::Jsonl(Some("/tmp/a".into())))
        );
        assert_eq!(
            "env-yaml=e.yaml".parse(),
            Ok(SinkSpec::EnvYaml("e.yaml".into()))
        );
        assert_eq!(
            "service-map".parse::<SinkSpec>(),
            Err(SinkSpecError::MissingPath("service-map"))
        );
        assert!(
            matches!("csv".parse::<SinkSpec>(), Err(SinkSpecError::UnknownKind(k)) if k == "csv")
        );
    }
}
