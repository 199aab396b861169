//! The `service-map` sink: per source service, the HTTP endpoints it calls (with their JSON
//! shapes, status codes and latencies) and the databases, caches and buses it uses (with what
//! for), written as YAML (`docs/service-map.md`).
//!
//! Writes are atomic (a temp file in the same directory, then a rename; mode 0600),
//! deterministic (everything sorted), and debounced: [`DEBOUNCE`] after the last change, but
//! at most [`MAX_WAIT`] after the first unwritten one, so continuous traffic still produces a
//! file. An existing map at the path is loaded and continued; one that cannot be read is kept
//! aside as `PATH.corrupt` with one warning.

mod facts;
mod graph;
mod model;
mod observed;
mod path;
pub mod rcp;
mod schema;
mod seed;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use adi_core::event::Event;

pub use model::Model;

use crate::{Sink, SinkError};

/// Quiet time after a change before the map is written.
pub const DEBOUNCE: Duration = Duration::from_secs(2);
/// Longest a change waits to be written under continuous traffic.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// What the map file holds (`--service-map-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapFormat {
    /// The profiler seed's `generated_at` / `services:` YAML (and adi's additions).
    #[default]
    Seed,
    /// The upstream profiler's `ObservedBehaviors` document (`adi.dev/v1alpha1`).
    Observed,
    /// One `RuntimeConditionsProfile` (`runtimeconditions.io/v1alpha1`) per service.
    Rcp,
}

/// Options of the map.
#[derive(Clone, Copy, Debug)]
pub struct MapOptions {
    /// Replace identifiers in paths with `{id}` (`--template-paths`, on by default).
    pub template_paths: bool,
    /// The file's format.
    pub format: MapFormat,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self {
            template_paths: true,
            format: MapFormat::Seed,
        }
    }
}

/// Builds a map from events: live ones as they are ([`MapBuilder::add_event`]), recorded JSON
/// lines as JSON values ([`MapBuilder::add`]); both give the same map.
#[derive(Debug)]
pub struct MapBuilder {
    model: Model,
    format: MapFormat,
}

impl MapBuilder {
    /// An empty map.
    pub fn new(opts: MapOptions) -> Self {
        Self {
            model: Model::new(opts.template_paths),
            format: opts.format,
        }
    }

    /// A watched process's environment, for configuration inference (values are never
    /// written).
    pub fn environment(&mut self, pid: u32, vars: Vec<(String, String)>) {
        self.model.environment(u64::from(pid), vars);
    }

    /// Takes one event in its JSON form (a recorded JSON line).
    pub fn add(&mut self, event: &serde_json::Value) {
        self.model.add(event);
    }

    /// Takes one live event; `Ok(false)` when the map has no use for it. Reads `http` and
    /// `message` events as they are (the same facts as their JSON form, see `facts.rs`); an
    /// `http` body that is gzip- or deflate-encoded is read inflated.
    ///
    /// # Errors
    ///
    /// When a connection, lost or container event cannot be put in its JSON form.
    pub fn add_event(&mut self, event: &Event) -> Result<bool, SinkError> {
        match event {
            Event::Http(h) => {
                let plain = inflated(h);
                let (body, truncated) = match &plain {
                    Some((body, cut)) => (body.as_slice(), h.truncated || *cut),
                    None => (h.body.0.as_slice(), h.truncated),
                };
                self.model
                    .add_http(&facts::Http::of_live(h, body, truncated));
            }
            Event::Message(m) => self.model.add_message(&facts::Message::of_live(m)),
            // One per connection or report: their JSON form is cheap enough.
            Event::Connection(_) | Event::Lost(_) | Event::Container(_) => {
                self.model.add(&serde_json::to_value(event)?);
            }
            Event::Process(p) => {
                if let Ok(vars) = &p.environ {
                    let vars = vars
                        .iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                String::from_utf8_lossy(v).into_owned(),
                            )
                        })
                        .collect();
                    self.environment(p.pid, vars);
                }
                return Ok(false);
            }
            // The Go uprobes' events repeat what the socket capture pairs.
            Event::GoHttp(_) => return Ok(false),
        }
        Ok(true)
    }

    /// Adds another map.
    pub fn merge(&mut self, other: &Self) {
        self.model.merge(&other.model);
    }

    /// Ends the events: requests still waiting are counted unanswered.
    pub fn finish(&mut self) {
        self.model.finish();
    }

    /// The map as YAML in its format, stamped `generated_at`.
    ///
    /// # Errors
    ///
    /// When the YAML emitter fails.
    pub fn to_yaml(&self, generated_at: &str) -> Result<String, SinkError> {
        self.render(self.format, generated_at)
    }

    /// The map as YAML in `format`.
    ///
    /// # Errors
    ///
    /// When the YAML emitter fails.
    pub fn render(&self, format: MapFormat, generated_at: &str) -> Result<String, SinkError> {
        let docs = match format {
            MapFormat::Seed => vec![seed::document(&self.model, generated_at)],
            MapFormat::Observed => vec![observed::document(&self.model, generated_at)],
            MapFormat::Rcp => rcp::documents(&self.model),
        };
        let mut out = String::new();
        for doc in &docs {
            out.push_str(&yaml::emit(doc).map_err(|e| SinkError::Write {
                target: "service map".into(),
                source: std::io::Error::other(e.to_string()),
            })?);
        }
        Ok(out)
    }

    /// The map as a Mermaid flowchart.
    pub fn mermaid(&self) -> String {
        graph::mermaid(&self.model)
    }

    /// The map as a Graphviz DOT graph.
    pub fn dot(&self) -> String {
        graph::dot(&self.model)
    }

    /// A map read from its YAML text.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with it.
    pub fn from_yaml(text: &str, opts: MapOptions) -> Result<Self, String> {
        let doc = yaml::parse(text)?;
        let model = seed::read(&doc, opts.template_paths)?;
        Ok(Self {
            model,
            format: opts.format,
        })
    }
}

/// Writes `text` to `path` atomically: a temp file (0600) beside it, synced, then renamed.
///
/// # Errors
///
/// [`SinkError::Write`] naming the path; the old file is left as it was.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), SinkError> {
    let target = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map_or_else(
        || "service-map".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        SinkError::Write { target, source }
    })
}

/// Most bytes a compressed body is inflated to (a decompression bomb stops there).
const MAX_INFLATED: u64 = 256 * 1024;

/// The body of an `http` event that is gzip- or deflate-encoded, inflated (as much of it as
/// was captured: a body cut at the capture limit inflates to its first part), and whether it
/// was cut short. `None` for any other body: an unknown encoding (`br`, `zstd`) reads as
/// `non-json`. Done here, on the live event's bytes: the JSON form of the event has lost them.
fn inflated(h: &adi_core::event::HttpEvent) -> Option<(Vec<u8>, bool)> {
    use std::io::Read as _;
    let encoding = h
        .headers
        .get("content-encoding")?
        .trim()
        .to_ascii_lowercase();
    let body = &h.body.0;
    if body.is_empty() {
        return None; // HEAD, 204, 304: nothing to inflate
    }
    let mut plain = Vec::new();
    let result = match encoding.as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body.as_slice())
            .take(MAX_INFLATED)
            .read_to_end(&mut plain),
        // HTTP's `deflate` is zlib-wrapped; some servers send it raw.
        "deflate" if body.first().is_some_and(|b| b & 0x0f == 8) => {
            flate2::read::ZlibDecoder::new(body.as_slice())
                .take(MAX_INFLATED)
                .read_to_end(&mut plain)
        }
        "deflate" => flate2::read::DeflateDecoder::new(body.as_slice())
            .take(MAX_INFLATED)
            .read_to_end(&mut plain),
        _ => return None,
    };
    // An error past some output is a stream cut short: keep what came out of it.
    let cut = result.is_err() || plain.len() as u64 >= MAX_INFLATED;
    Some((plain, cut))
}

/// The live sink.
pub struct ServiceMapSink {
    name: String,
    path: PathBuf,
    /// Where the map is kept to be continued: the file itself in the `seed` format, else a
    /// `seed` copy beside it (`PATH.seed.yaml`), since the other formats leave things out.
    state: PathBuf,
    map: MapBuilder,
    /// When the first unwritten change and the last change happened.
    dirty: Option<(Instant, Instant)>,
    /// A failed write is said once, then retried every [`DEBOUNCE`] (not at once: the sink's
    /// thread would spin on a path that stays unwritable).
    failing: bool,
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for ServiceMapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMapSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ServiceMapSink {
    /// A sink writing to `path`, continuing the map already there. A file that is not a map
    /// is renamed `PATH.corrupt` (one warning on stderr) and a fresh map started.
    pub fn file(path: &Path, opts: MapOptions) -> Self {
        let state = if opts.format == MapFormat::Seed {
            path.to_owned()
        } else {
            let mut name = path.as_os_str().to_owned();
            name.push(".seed.yaml");
            PathBuf::from(name)
        };
        let map = match std::fs::read_to_string(&state) {
            Ok(text) => match MapBuilder::from_yaml(&text, opts) {
                Ok(map) => map,
                Err(why) => {
                    let mut aside = state.as_os_str().to_owned();
                    aside.push(".corrupt");
                    let aside = PathBuf::from(aside);
                    let moved = std::fs::rename(&state, &aside);
                    eprintln!(
                        "adi: {} is not a service map ({why}); {}, starting a fresh map",
                        state.display(),
                        match moved {
                            Ok(()) => format!("kept aside as {}", aside.display()),
                            Err(e) => format!("could not keep it aside ({e})"),
                        }
                    );
                    MapBuilder::new(opts)
                }
            },
            Err(_) => MapBuilder::new(opts),
        };
        Self {
            name: format!("service-map={}", path.display()),
            path: path.to_owned(),
            state,
            map,
            dirty: None,
            failing: false,
            retry_at: None,
        }
    }

    fn write_now(&mut self) -> Result<(), SinkError> {
        let now = adi_core::time::rfc3339_nanos(adi_core::time::now_unix_ns());
        let text = self.map.to_yaml(&now)?;
        let mut written = write_atomic(&self.path, &text);
        if written.is_ok() && self.state != self.path {
            let seed = self.map.render(MapFormat::Seed, &now)?;
            written = write_atomic(&self.state, &seed);
        }
        match written {
            Ok(()) => {
                self.dirty = None;
                self.failing = false;
                self.retry_at = None;
                Ok(())
            }
            Err(e) => {
                // Kept dirty: retried later. Said once until a write succeeds.
                self.retry_at = Some(Instant::now() + DEBOUNCE);
                if self.failing {
                    return Ok(());
                }
                self.failing = true;
                Err(e)
            }
        }
    }
}

impl Sink for ServiceMapSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, event: &Event) -> Result<(), SinkError> {
        if !self.map.add_event(event)? {
            return Ok(());
        }
        let now = Instant::now();
        self.dirty = Some(match self.dirty {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self.due() {
            Some(at) if at <= Instant::now() => self.write_now(),
            _ => Ok(()),
        }
    }

    fn due(&self) -> Option<Instant> {
        let at = self
            .dirty
            .map(|(first, last)| (last + DEBOUNCE).min(first + MAX_WAIT))?;
        Some(self.retry_at.map_or(at, |retry| at.max(retry)))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.map.finish();
        self.write_now()
    }
}
