//! JSON values to YAML and back, with `saphyr` (the maintained pure-Rust YAML library the
//! env-yaml sink uses too): the map is built as JSON values so that every format is one
//! function of the model, and only here becomes text.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, Mapping, Scalar, Yaml, YamlEmitter};
use serde_json::Value;

/// A document whose mappings keep the order they are built in (the seed's field order), with
/// JSON values (schemas, sorted) at the leaves.
#[derive(Debug)]
pub enum Node {
    /// A mapping, in this order.
    Map(Vec<(&'static str, Node)>),
    /// A sequence.
    List(Vec<Node>),
    /// A JSON value.
    Json(Value),
}

impl From<Value> for Node {
    fn from(v: Value) -> Self {
        Self::Json(v)
    }
}

fn node_to_yaml(n: &Node) -> Yaml<'_> {
    match n {
        Node::Map(pairs) => {
            let mut map = Mapping::new();
            for (k, v) in pairs {
                map.insert(
                    Yaml::Value(Scalar::String(Cow::Borrowed(k))),
                    node_to_yaml(v),
                );
            }
            Yaml::Mapping(map)
        }
        Node::List(items) => Yaml::Sequence(items.iter().map(node_to_yaml).collect()),
        Node::Json(v) => to_yaml(v),
    }
}

fn to_yaml(v: &Value) -> Yaml<'_> {
    match v {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or(0.0).into())),
        },
        Value::String(s) => Yaml::Value(Scalar::String(Cow::Borrowed(s))),
        Value::Array(a) => Yaml::Sequence(a.iter().map(to_yaml).collect()),
        Value::Object(m) => {
            let mut map = Mapping::new();
            for (k, v) in m {
                map.insert(Yaml::Value(Scalar::String(Cow::Borrowed(k))), to_yaml(v));
            }
            Yaml::Mapping(map)
        }
    }
}

/// `v` as one YAML document (with its `---` line), ending in a newline.
///
/// # Errors
///
/// When the emitter fails (it does not on values built from JSON).
pub fn emit(n: &Node) -> Result<String, saphyr::EmitError> {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&node_to_yaml(n))?;
    out.push('\n');
    Ok(out)
}

fn to_json(y: &Yaml<'_>) -> Value {
    match y {
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => {
            Value::String(s.to_string())
        }
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => to_json(inner),
        Yaml::Value(Scalar::Null) | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

/// The first YAML document of `text` as a JSON value.
///
/// # Errors
///
/// The parser's message, or `empty document`.
pub fn parse(text: &str) -> Result<Value, String> {
    let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
    docs.first()
        .map(to_json)
        .ok_or_else(|| "empty document".to_owned())
}

/// Every YAML document of `text` as JSON values.
///
/// # Errors
///
/// The parser's message.
pub fn parse_all(text: &str) -> Result<Vec<Value>, String> {
    let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
    Ok(docs.iter().map(to_json).collect())
}
