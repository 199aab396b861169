use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use adi_core::event::{Event, ProcessEvent};
use proptest::prelude::*;
use saphyr::{LoadableYamlNode, Mapping, Scalar, Yaml};

use super::*;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn process(pid: u32, environ: &[u8]) -> ProcessEvent {
    ProcessEvent::new(
        pid,
        Arc::from("/usr/bin/python3 /app/server.py --port 9080"),
        Ok(environ.to_vec()),
        "2026-11-22T00:00:00.000000000Z".into(),
    )
}

/// Writes the events through the sink and parses the output back, one value per document.
fn round_trip(events: &[ProcessEvent], prefixes: &[&str]) -> (String, Vec<Yaml<'static>>) {
    let out = Shared::default();
    let prefixes = prefixes.iter().map(|p| (*p).to_owned()).collect();
    let mut sink = EnvYamlSink::to_writer("env-yaml", "test", Box::new(out.clone()), prefixes);
    for e in events {
        sink.write(&Event::Process(e.clone())).expect("write");
    }
    sink.flush().expect("flush");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, docs)
}

/// Hostile bytes a process environment may hold, each must come back as the same string.
const HOSTILE: &[(&str, &str)] = &[
    ("QUOTES", r#"he said "hi" and 'bye'"#),
    ("COLON", "key: value"),
    ("NEWLINES", "line1\nline2\r\n"),
    ("DOC_MARKER", "---"),
    ("DOC_END", "..."),
    ("YAML11_BOOL", "no"),
    ("NULLISH", "~"),
    ("OCTAL", "0123"),
    ("COMMENT", "# not a comment"),
    ("FLOW", "{a: [1, 2]}"),
    ("ANCHOR", "&a *b !tag %d @e `f |g >h"),
    ("LEADING_SPACE", "  padded  "),
    ("EMPTY", ""),
    ("CONTROL", "a\u{7}b\u{1b}[0m\u{7f}"),
    ("UNICODE", "h\u{e9}llo \u{1f600} \u{feff}"),
    ("odd: name", "x"),
];

/// Names a YAML 1.1 reader would take for something else when written bare.
const HOSTILE_NAMES: &[&str] = &[
    "y",
    "N",
    "1_000",
    "0b101",
    "2001-12-14",
    "~",
    "-",
    "? x",
    "a\u{7f}b",
];

#[test]
fn hostile_values_round_trip() {
    let mut environ = Vec::new();
    for (k, v) in HOSTILE {
        environ.extend_from_slice(format!("{k}={v}\0").as_bytes());
    }
    environ.extend_from_slice(b"ADI_PROFILE=local\0ADI_PROFILE_NAME=reviews\0");
    let (text, docs) = round_trip(&[process(7, &environ)], &[]);
    assert_eq!(docs.len(), 1, "{text}");
    let doc = &docs[0];
    assert_eq!(doc["adi_profile_pid"].as_integer(), Some(7));
    assert_eq!(doc["adi_profile_match"].as_str(), Some("local"));
    assert_eq!(doc["adi_profile_name"].as_str(), Some("reviews"));
    assert_eq!(
        doc["adi_profile_cmdline"].as_str(),
        Some("/usr/bin/python3 /app/server.py --port 9080")
    );
    let env = &doc["adi_profile_env"];
    for (k, v) in HOSTILE {
        assert_eq!(env[*k].as_str(), Some(*v), "{k} in\n{text}");
    }
    assert!(doc.as_mapping_get("adi_profile_env_altered").is_none());
}

#[test]
fn invalid_utf8_and_line_separators_are_replaced_and_named() {
    let environ = "LS=a\u{2028}b\0NEL=\u{85}\0C1=\u{9b}31m\0OK=1\0";
    let mut environ = environ.as_bytes().to_vec();
    environ.extend_from_slice(b"BIN=a\xff\xfeb\0");
    // Names that differ only in invalid bytes stay apart.
    environ.extend_from_slice(b"K\xff=1\0K\xfe=2\0");
    let (text, docs) = round_trip(&[process(8, &environ)], &[]);
    let doc = &docs[0];
    let env = &doc["adi_profile_env"];
    assert_eq!(env["BIN"].as_str(), Some("a\u{fffd}\u{fffd}b"), "{text}");
    assert_eq!(env["LS"].as_str(), Some("a\u{fffd}b"));
    assert_eq!(env["NEL"].as_str(), Some("\u{fffd}"));
    assert_eq!(env["C1"].as_str(), Some("\u{fffd}31m"));
    assert_eq!(env["OK"].as_str(), Some("1"));
    let altered: Vec<&str> = doc["adi_profile_env_altered"]
        .as_sequence()
        .expect("list")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        altered,
        ["LS", "NEL", "C1", "BIN", "K\u{fffd}", "K\u{fffd} #2"]
    );
    assert_eq!(env["K\u{fffd}"].as_str(), Some("1"));
    assert_eq!(env["K\u{fffd} #2"].as_str(), Some("2"));
    assert!(!text.contains(['\u{2028}', '\u{85}', '\u{9b}']));
}

#[test]
fn documents_are_separated_and_prefixes_filter() {
    let a = process(
        1,
        b"REVIEWS_URL=http://reviews:9080\0PATH=/bin\0MONGO_HOST=db\0",
    );
    let b = process(2, b"PATH=/bin\0");
    let (text, docs) = round_trip(&[a, b], &["REVIEWS_", " MONGO_"]);
    assert_eq!(docs.len(), 2, "{text}");
    assert_eq!(text.matches("---").count(), 2, "{text}");
    let env = docs[0]["adi_profile_env"].as_mapping().expect("map");
    let names: Vec<&str> = env.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(names, ["REVIEWS_URL", "MONGO_HOST"]);
    // No variable matches: an empty map, as the eBPF profiler adi replaces documents it.
    assert_eq!(docs[1]["adi_profile_env"], Yaml::Mapping(Mapping::new()));
    assert!(docs[1].as_mapping_get("adi_profile_match").is_none());
}

#[test]
fn unreadable_environ_is_an_error_document() {
    let gone = ProcessEvent::new(
        99_999,
        Arc::from(""),
        Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        String::new(),
    );
    let (_, docs) = round_trip(&[gone], &[]);
    assert_eq!(
        docs[0]["adi_profile_pid"],
        Yaml::Value(Scalar::Integer(99_999))
    );
    assert_eq!(
        docs[0]["error"].as_str(),
        Some("open /proc/99999/environ: entity not found")
    );
    let real = std::fs::read("/proc/999999999/environ").map(|_| ());
    let gone = ProcessEvent::new(
        999_999_999,
        Arc::from(""),
        real.map(|()| Vec::new()),
        String::new(),
    );
    let (_, docs) = round_trip(&[gone], &[]);
    assert_eq!(
        docs[0]["error"].as_str(),
        Some("open /proc/999999999/environ: no such file or directory")
    );
}

#[test]
fn secrets_never_reach_the_file() {
    let mut p = process(
        9,
        b"DB_PASSWORD=hunter2\0API_TOKEN=tok-123\0AWS_SECRET_ACCESS_KEY=aws-xyz\0\
          GITHUB_AUTH=gh-1\0SESSION_COOKIE=c-1\0DB_HOST=db\0\
          DATABASE_URL=postgres://app:url-pw@db/app\0JAVA_TOOL_OPTIONS=-Ddb.password=jvm-pw\0",
    );
    p.cmdline = Arc::from("app --password=cli-pass --db-host db");
    p.redact();
    let (text, docs) = round_trip(&[p], &[]);
    for secret in [
        "hunter2", "tok-123", "aws-xyz", "gh-1", "c-1", "cli-pass", "url-pw", "jvm-pw",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let env = &docs[0]["adi_profile_env"];
    assert_eq!(env["DB_PASSWORD"].as_str(), Some("<redacted>"));
    assert_eq!(env["DB_HOST"].as_str(), Some("db"));
    assert_eq!(
        env["DATABASE_URL"].as_str(),
        Some("postgres://app:<redacted>@db/app")
    );
    assert_eq!(
        docs[0]["adi_profile_cmdline"].as_str(),
        Some("app --password=<redacted> --db-host db")
    );
}

proptest! {
    /// Any bytes in names and values: the output parses, with one document holding every
    /// variable as its (lossy) text.
    #[test]
    fn any_bytes_round_trip(vars in proptest::collection::vec(
        (proptest::collection::vec(1u8..=255, 1..12), proptest::collection::vec(1u8..=255, 0..40)),
        0..8,
    )) {
        let mut environ = Vec::new();
        // By raw name: a repeated name keeps its last value.
        let mut expected = std::collections::HashMap::new();
        for (name, value) in &vars {
            // '=' ends a name in an environment block.
            let name: Vec<u8> = name.iter().map(|&b| if b == b'=' { b'_' } else { b }).collect();
            environ.extend_from_slice(&name);
            environ.push(b'=');
            environ.extend_from_slice(value);
            environ.push(0);
            expected.insert(name, safe_text(value).0.into_owned());
        }
        let (text, docs) = round_trip(&[process(1, &environ)], &[]);
        prop_assert_eq!(docs.len(), 1, "{}", text);
        let env = docs[0]["adi_profile_env"].as_mapping().expect("map");
        prop_assert_eq!(env.len(), expected.len(), "{}", text);
        for (k, v) in &expected {
            // Names written unchanged can be looked up as they were.
            if let (Cow::Borrowed(k), false) = (safe_text(k).0, safe_text(k).1) {
                prop_assert_eq!(docs[0]["adi_profile_env"][k].as_str(), Some(v.as_str()), "{}", text);
            }
        }
    }
}

/// The same output read by PyYAML, a YAML 1.1 reader (the most common one): every hostile
/// value comes back unchanged. Needs `python3` with `yaml` (Debian: python3-yaml).
#[test]
#[ignore = "needs python3 with PyYAML"]
fn pyyaml_reads_the_same_values() {
    use std::process::{Command, Stdio};
    let probe = Command::new("python3").args(["-c", "import yaml"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs python3 with PyYAML (apt-get install python3-yaml)"
    );
    let mut environ = Vec::new();
    for (k, v) in HOSTILE {
        environ.extend_from_slice(format!("{k}={v}\0").as_bytes());
    }
    for k in HOSTILE_NAMES {
        environ.extend_from_slice(format!("{k}=name\0").as_bytes());
    }
    let long = "L".repeat(1500);
    environ.extend_from_slice(format!("{long}=long\0").as_bytes());
    environ.extend_from_slice("LS=a\u{2028}b\0BIN=\u{85}\u{9b}\0".as_bytes());
    let (text, _) = round_trip(&[process(7, &environ), process(8, b"A=1\0")], &[]);
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "PyYAML rejected the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(docs.as_array().map(Vec::len), Some(2));
    let env = &docs[0]["adi_profile_env"];
    for (k, v) in HOSTILE {
        assert_eq!(env[*k].as_str(), Some(*v), "{k} in\n{text}");
    }
    assert_eq!(env["LS"].as_str(), Some("a\u{fffd}b"));
    assert_eq!(env["BIN"].as_str(), Some("\u{fffd}\u{fffd}"));
    for k in HOSTILE_NAMES {
        assert_eq!(env[*k].as_str(), Some("name"), "{k} in\n{text}");
    }
    assert_eq!(env[&long[..1000]].as_str(), Some("long"));
    assert_eq!(docs[0]["adi_profile_pid"], 7);
    assert_eq!(docs[1]["adi_profile_env"]["A"], "1");
}
