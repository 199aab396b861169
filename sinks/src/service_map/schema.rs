//! JSON body shapes: the keys and value types of a body, never its values.
//!
//! Object -> its keys with their schemas (sorted); array -> `[merged schema of its
//! elements]` (`[]` when empty); scalars -> `string`, `number`, `boolean`, `null`; an empty
//! body -> JSON `null`; a body that is not JSON -> `non-json`; a body not seen at all (cut
//! before it, or left unread by the client) -> `unknown`. Two different shapes met in one
//! place (an array of mixed elements) merge into `type|type`, sorted. Depth and width are
//! bounded ([`MAX_DEPTH`], [`MAX_KEYS`]): deeper values read as `object`/`array`, keys beyond
//! the first [`MAX_KEYS`] (sorted) are dropped and counted as `...: N more`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Deepest nesting described; below it a value is named by its type only.
pub const MAX_DEPTH: usize = 16;
/// Most keys kept per object.
pub const MAX_KEYS: usize = 64;

/// The schema of a body: `(schema, cut)`, `cut` when the body was cut at the capture limit
/// and the schema is that of the part seen.
pub fn of_body(body: &[u8], truncated: bool) -> (Value, bool) {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        // Nothing of a body that was there (cut before it, or never read by the client):
        // its shape is not known, which is not an empty body.
        return if truncated {
            (Value::String("unknown".into()), true)
        } else {
            (Value::Null, false)
        };
    }
    match parse(trimmed) {
        Some(v) => (of_value(&v, 0), false),
        None if truncated => match repair(trimmed).as_deref().and_then(parse) {
            Some(v) => (of_value(&v, 0), true),
            None => (Value::String("non-json".into()), true),
        },
        None => (Value::String("non-json".into()), false),
    }
}

/// Parses JSON without serde_json's recursion limit mattering: bodies nested deeper than it
/// are not JSON shapes anyone declares, and read as `non-json`.
fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// The schema of one value.
pub fn of_value(v: &Value, depth: usize) -> Value {
    match v {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("boolean".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(_) if depth >= MAX_DEPTH => Value::String("array".into()),
        Value::Object(_) if depth >= MAX_DEPTH => Value::String("object".into()),
        Value::Array(items) => {
            let mut merged: Option<Value> = None;
            for item in items {
                let s = of_value(item, depth + 1);
                merged = Some(match merged {
                    None => s,
                    Some(m) => merge(m, s),
                });
            }
            Value::Array(merged.into_iter().collect())
        }
        Value::Object(map) => {
            let mut keys: BTreeMap<&String, Value> = BTreeMap::new();
            for (k, v) in map {
                keys.insert(k, of_value(v, depth + 1));
            }
            let extra = keys.len().saturating_sub(MAX_KEYS);
            let mut out: serde_json::Map<String, Value> = keys
                .into_iter()
                .take(MAX_KEYS)
                .map(|(k, v)| (k.clone(), v))
                .collect();
            if extra > 0 {
                out.insert("...".into(), Value::String(format!("{extra} more")));
            }
            Value::Object(out)
        }
    }
}

/// The name of a schema's kind, for `type|type` unions.
fn kind(s: &Value) -> Vec<String> {
    match s {
        Value::String(t) => t.split('|').map(str::to_owned).collect(),
        Value::Array(_) => vec!["array".into()],
        Value::Object(_) => vec!["object".into()],
        _ => vec!["null".into()],
    }
}

/// Two schemas met in the same place: objects unite their keys, arrays merge their
/// elements, equal schemas stay, anything else becomes the union of the kinds.
pub fn merge(a: Value, b: Value) -> Value {
    if a == b {
        return a;
    }
    match (a, b) {
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                let merged = match x.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                x.insert(k, merged);
            }
            Value::Object(x)
        }
        (Value::Array(x), Value::Array(y)) => {
            let merged = x.into_iter().chain(y).reduce(merge);
            Value::Array(merged.into_iter().collect())
        }
        (a, b) => {
            let mut kinds = kind(&a);
            kinds.extend(kind(&b));
            kinds.sort();
            kinds.dedup();
            Value::String(kinds.join("|"))
        }
    }
}

/// A JSON text cut short, closed after its last complete element: `{"a":1,"b":[1,2` ->
/// `{"a":1,"b":[1]}`. `None` when nothing complete was seen.
fn repair(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    // The last cut point: where an element ended inside a container, and the closers then.
    let mut cut: Option<(usize, Vec<u8>)> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => stack.push(b'}'),
            b'[' => {
                stack.push(b']');
                // An empty array is complete as soon as it is closed.
                cut = Some((i + 1, stack.iter().rev().copied().collect()));
            }
            b'}' | b']' => {
                stack.pop()?;
                if stack.is_empty() {
                    return Some(bytes[..=i].to_vec());
                }
            }
            b',' => cut = Some((i, stack.iter().rev().copied().collect())),
            _ => {}
        }
        if stack.len() > MAX_DEPTH * 4 {
            return None;
        }
    }
    let (at, closers) = cut?;
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&closers);
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(body: &str) -> Value {
        of_body(body.as_bytes(), false).0
    }

    #[test]
    fn shapes_without_values() {
        assert_eq!(
            schema(
                r#"{"id":"7","reviews":[{"reviewer":"a","text":"b"},{"reviewer":"c","stars":5}],"n":1.5,"ok":true,"x":null}"#
            ),
            json!({"id":"string","n":"number","ok":"boolean","x":"null",
                   "reviews":[{"reviewer":"string","stars":"number","text":"string"}]})
        );
        assert_eq!(schema(""), Value::Null);
        assert_eq!(schema("  \r\n"), Value::Null);
        assert_eq!(schema("<html></html>"), json!("non-json"));
        assert_eq!(schema("[]"), json!([]));
        assert_eq!(schema("[1,\"a\",2]"), json!(["number|string"]));
        assert_eq!(schema("[[1],[\"a\"]]"), json!([["number|string"]]));
        assert_eq!(schema("[{\"a\":1},2]"), json!(["number|object"]));
        assert_eq!(schema("\"x\""), json!("string"));
    }

    #[test]
    fn a_cut_body_gives_the_shape_of_what_was_seen() {
        let (s, cut) = of_body(br#"{"a":1,"b":[{"c":"x"},{"c":"y"},{"c":"#, true);
        assert!(cut);
        assert_eq!(s, json!({"a":"number","b":[{"c":"string"}]}));
        assert_eq!(of_body(b"", true), (json!("unknown"), true));
        let (s, cut) = of_body(br#"{"only":"#, true);
        assert!(cut);
        assert_eq!(s, json!("non-json"));
        // Not cut at the capture limit: broken JSON is not repaired.
        assert_eq!(
            of_body(br#"{"a":1,"b":"#, false),
            (json!("non-json"), false)
        );
    }

    #[test]
    fn hostile_bodies_are_bounded() {
        // Nesting depth 10,000: beyond serde_json's limit, and beyond ours.
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(schema(&deep), json!("non-json"));
        assert_eq!(of_body(&deep.as_bytes()[..5000], true).0, json!("non-json"));
        // A 1,000,000-element array: one merged element.
        let wide = format!("[{}1]", "1,".repeat(999_999));
        assert_eq!(schema(&wide), json!(["number"]));
        // Many keys: the first MAX_KEYS, and a count of the rest.
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i:03}\":1")).collect();
        let s = schema(&format!("{{{}}}", keys.join(",")));
        let obj = s.as_object().expect("object");
        assert_eq!(obj.len(), MAX_KEYS + 1);
        assert_eq!(obj["..."], json!("36 more"));
        // Depth: the 17th level is named, not described.
        let nested = "{\"a\":".repeat(20) + "1" + &"}".repeat(20);
        let mut s = schema(&nested);
        for _ in 0..MAX_DEPTH {
            s = s["a"].clone();
        }
        assert_eq!(s, json!("object"));
        // Not UTF-8.
        assert_eq!(of_body(b"\xff\xfe{", false).0, json!("non-json"));
    }
}
