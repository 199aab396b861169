//! The `env-yaml` sink: the environment inventory (`docs/output-formats.md`), one YAML
//! document per watched process, `---` separated, written by a YAML library so that any byte in
//! a name or value (quotes, `: `, newlines, `---`, YAML 1.1 booleans such as `no`) stays data.
//!
//! The library is `saphyr`, the maintained pure-Rust successor of yaml-rust2 (serde_yaml is
//! archived; its forks `serde_norway` and `serde_yml` leave YAML 1.1 booleans such as `no`
//! bare, which PyYAML then reads as `false`). Every value is written double-quoted, with the
//! emitter's escapes for control characters, so YAML 1.1 and 1.2 readers agree on it.
//! YAML text must be printable Unicode: bytes that are not UTF-8, and the few characters a
//! YAML 1.1 reader rejects or takes for a line break (C1 controls, U+2028, U+2029, U+FFFE,
//! U+FFFF), become U+FFFD, names are cut at 1000 characters (longer keys are invalid YAML),
//! and the names of the variables so altered are listed under `adi_profile_env_altered`:
//! nothing is changed silently. Names are written double-quoted too, since the emitter's own
//! test for keys misses YAML 1.1 forms such as `y` or `2001-12-14`.
//!
//! ```yaml
//! ---
//! adi_profile_pid: 12345
//! adi_profile_match: local
//! adi_profile_name: reviews
//! adi_profile_cmdline: /usr/bin/python3 /app/server.py --port 9080
//! adi_profile_env:
//!   REVIEWS_SERVICE_URL: "http://reviews:9080"
//! ```

use std::io::{BufWriter, Write};
use std::path::Path;

use std::borrow::Cow;

use adi_core::event::{Event, ProcessEvent};
use saphyr::{Mapping, Scalar, ScalarStyle, Yaml, YamlEmitter};

use crate::{Sink, SinkError};

/// Writes one YAML document per [`Event::Process`]; other events are not its business.
pub struct EnvYamlSink {
    name: String,
    target: String,
    out: BufWriter<Box<dyn Write + Send>>,
    prefixes: Vec<String>,
    doc: String,
}

impl std::fmt::Debug for EnvYamlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvYamlSink")
            .field("target", &self.target)
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl EnvYamlSink {
    /// A sink appending to `path`, created with mode 0600 if missing. `prefixes`
    /// (`ENV_PREFIX_LIST`, case-sensitive) keeps only variables whose names start with one
    /// of them; empty keeps every variable.
    ///
    /// # Errors
    ///
    /// [`SinkError::Open`] when the file cannot be opened for writing.
    pub fn file(path: &Path, prefixes: Vec<String>) -> Result<Self, SinkError> {
        let file = crate::open_private(path)?;
        let target = path.display().to_string();
        Ok(Self::to_writer(
            &format!("env-yaml={target}"),
            &target,
            Box::new(file),
            prefixes,
        ))
    }

    /// A sink writing to any writer (tests, pipes).
    pub fn to_writer(
        name: &str,
        target: &str,
        out: Box<dyn Write + Send>,
        prefixes: Vec<String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            target: target.to_owned(),
            out: BufWriter::new(out),
            prefixes: prefixes
                .iter()
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            doc: String::new(),
        }
    }

    fn keep(&self, name: &[u8]) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| name.starts_with(p.as_bytes()))
    }
}

/// `ENV_PREFIX_LIST` (comma-separated, trimmed) as a list.
pub fn parse_prefix_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Characters a YAML 1.1 reader rejects (C1 controls, non-characters) or reads as a line
/// break (NEL, LS, PS), even inside quotes.
fn yaml_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// `bytes` as YAML-safe text, and whether it had to be altered.
fn safe_text(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    let text = String::from_utf8_lossy(bytes);
    let lossy = matches!(text, Cow::Owned(_));
    if text.contains(yaml_unsafe) {
        let fixed: String = text
            .chars()
            .map(|c| if yaml_unsafe(c) { '\u{fffd}' } else { c })
            .collect();
        return (Cow::Owned(fixed), true);
    }
    (text, lossy)
}

fn text(bytes: &[u8]) -> Yaml<'_> {
    Yaml::Value(Scalar::String(safe_text(bytes).0))
}

fn key(k: &str) -> Yaml<'_> {
    Yaml::Value(Scalar::String(Cow::Borrowed(k)))
}

/// Longest variable name written: YAML readers reject implicit keys over 1024 characters.
const MAX_NAME_CHARS: usize = 1000;

/// A variable name as a double-quoted key: the emitter quotes values on request but keys
/// only when it sees a need, and misses YAML 1.1 forms such as `y`, `1_000` or `2001-12-14`.
/// The escapes are JSON's (a valid subset of YAML's), plus DEL, which YAML 1.1 rejects raw.
fn name_key(name: &str) -> (Yaml<'static>, bool) {
    let (name, cut) = match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((at, _)) => (&name[..at], true),
        None => (name, false),
    };
    let quoted = serde_json::to_string(name).unwrap_or_default();
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .replace('\u{7f}', "\\u007f");
    (
        Yaml::Representation(Cow::Owned(inner), ScalarStyle::DoubleQuoted, None),
        cut,
    )
}

/// The YAML document of one process.
pub fn document(p: &ProcessEvent, keep: impl Fn(&[u8]) -> bool) -> Yaml<'_> {
    let mut doc = Mapping::new();
    doc.insert(
        key("adi_profile_pid"),
        Yaml::Value(Scalar::Integer(i64::from(p.pid))),
    );
    match &p.environ {
        Ok(vars) => {
            if let Some(profile) = p.var(b"ADI_PROFILE") {
                doc.insert(key("adi_profile_match"), text(profile));
            }
            if let Some(name) = p.var(b"ADI_PROFILE_NAME") {
                doc.insert(key("adi_profile_name"), text(name));
            }
            doc.insert(key("adi_profile_cmdline"), text(p.cmdline.as_bytes()));
            let mut env = Mapping::new();
            let mut altered = Vec::new();
            let mut seen: std::collections::HashMap<String, &[u8]> =
                std::collections::HashMap::new();
            for (name, value) in vars.iter().filter(|(n, _)| keep(n)) {
                let (mut name_text, name_altered) = safe_text(name);
                let (value_text, value_altered) = safe_text(value);
                // Two names that differ only in replaced bytes would merge: number the later
                // ones. (A name that really repeats keeps one entry, the last value winning,
                // as for the opt-in rule.)
                let base = name_text.clone();
                let mut n = 2;
                while seen.get(name_text.as_ref()).is_some_and(|raw| raw != name) {
                    name_text = Cow::Owned(format!("{base} #{n}"));
                    n += 1;
                }
                seen.insert(name_text.clone().into_owned(), name.as_slice());
                let (name_node, cut) = name_key(&name_text);
                if name_altered || value_altered || cut {
                    altered.push(name_node.clone());
                }
                env.insert(name_node, Yaml::Value(Scalar::String(value_text)));
            }
            doc.insert(key("adi_profile_env"), Yaml::Mapping(env));
            if !altered.is_empty() {
                doc.insert(key("adi_profile_env_altered"), Yaml::Sequence(altered));
            }
        }
        Err(e) => {
            doc.insert(key("adi_profile_cmdline"), text(p.cmdline.as_bytes()));
            doc.insert(key("error"), text(e.as_bytes()));
        }
    }
    Yaml::Mapping(doc)
}

impl Sink for EnvYamlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, event: &Event) -> Result<(), SinkError> {
        let Event::Process(p) = event else {
            return Ok(());
        };
        let doc = document(p, |n| self.keep(n));
        self.doc.clear();
        let mut emitter = YamlEmitter::new(&mut self.doc);
        emitter.quoted_value(true);
        emitter
            .dump(&doc)
            .map_err(|e| SinkError::write(&self.target)(std::io::Error::other(e.to_string())))?;
        self.doc.push('\n');
        // Few documents, each wanted on disk soon: flush each one.
        self.out
            .write_all(self.doc.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(SinkError::write(&self.target))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(SinkError::write(&self.target))
    }
}

#[cfg(test)]
mod tests;
