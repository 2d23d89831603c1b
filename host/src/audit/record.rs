//! One audit record, its canonical form and its place in the hash chain. A written line
//! is the canonical JSON of the record with `seq` (its number), `prev` (the hash of the
//! record before it) and `hash` (SHA-256 of the canonical JSON of everything else), so
//! changing, removing or reordering any line breaks the chain at that line.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, and to whom. Fields that do not apply are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// What kind of event: `tool_call`, `request_refused`, `start`, `stop`,
    /// `plugin_loaded`, `client_registered`, `user_added` (setup code), `consent`,
    /// `recovered`;
    /// from the administrative commands `user_added`, `user_removed`,
    /// `signing_key_rotated`, `credential_set`, `credential_removed`, `kek_rotated`.
    pub event: String,
    /// The request id the client got in `x-request-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The token's subject, `local` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The OAuth client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `http`, `stdio`, or `cli` for an administrative command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The JSON-RPC method (or the HTTP path) of a refused request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The tool called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The plugin offering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// SHA-256 of the plugin's component file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
    /// How it ended: the outcomes of the host log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The step that refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Why it was refused or failed, as the client was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the call took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Credentials the plugin asked for, by name and outcome (never values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<String>>,
    /// What the plugin asked of the client, by feature and outcome
    /// (`sampling:answered`, `elicitation:declined`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_requests: Option<Vec<String>>,
    /// The arguments: their digest, or themselves with secret-looking keys redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// Event-specific details (a plugin's tools, a client's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
    /// The replica that wrote it (`[audit] replica`), stamped by the log as it seals
    /// the record: each replica writes a chain of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl Record {
    /// A record of `event`, now.
    pub fn now(event: &str) -> Self {
        Self {
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            event: event.to_owned(),
            ..Self::default()
        }
    }

    /// The line this record becomes as number `seq` after a record hashed `prev` in
    /// the chain of `replica` (if named), and its own hash.
    pub fn seal(&self, seq: u64, prev: &str, replica: Option<&str>) -> (String, String) {
        let mut fields = match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            _ => unreachable!("a record serializes to an object"),
        };
        if let Some(replica) = replica {
            fields.insert("replica".into(), replica.into());
        }
        fields.insert("seq".into(), seq.into());
        fields.insert("prev".into(), prev.into());
        // What is hashed is the canonical form without `hash`; the line is the same
        // bytes with `hash` in its sorted place. So the fields are written once, and
        // the place noted on the way.
        let mut out = Vec::with_capacity(512);
        let place = write_object_noting(&fields, HASH, &mut out);
        let hash = sha256_hex(&out);
        let mut line = Vec::with_capacity(out.len() + HASH.len() + hash.len() + 8);
        line.extend_from_slice(&out[..place.at]);
        if place.after_entry {
            line.push(b',');
        }
        write_json(HASH, &mut line);
        line.push(b':');
        write_json(&hash, &mut line);
        if !place.after_entry && place.before_entry {
            line.push(b',');
        }
        line.extend_from_slice(&out[place.at..]);
        let line = String::from_utf8(line).expect("serde_json writes UTF-8");
        (line, hash)
    }
}

/// The key of a record's own hash.
const HASH: &str = "hash";

/// Where, in an object's canonical form, an entry with a new key goes.
struct Place {
    /// The byte offset: after the entries with smaller keys (and before the comma
    /// that starts the next one).
    at: usize,
    /// Whether an entry comes before it.
    after_entry: bool,
    /// Whether an entry follows it.
    before_entry: bool,
}

/// SHA-256 (hex) of the canonical form of `fields`.
pub fn digest(fields: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(512);
    write_object(fields, &mut out);
    sha256_hex(&out)
}

/// SHA-256 (hex) of the canonical form of `value`.
pub fn digest_value(value: &Value) -> String {
    sha256_hex(canonical(value).as_bytes())
}

/// SHA-256 of `bytes`, as 64 lowercase hex digits, encoded into a buffer in one pass
/// (`hex::encode` collects its string a `char` at a time).
fn sha256_hex(bytes: &[u8]) -> String {
    let mut text = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut text)
        .expect("64 digits are room for a 32-byte digest");
    String::from_utf8(text.to_vec()).expect("hex digits are ASCII")
}

/// JSON with object keys sorted at every level and no insignificant whitespace: the
/// same value always gives the same bytes.
pub fn canonical(value: &Value) -> String {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    write_object_noting(map, "", out);
}

/// Writes `map` in canonical form, and says where an entry keyed `new` (not in the
/// map) would go.
fn write_object_noting(map: &Map<String, Value>, new: &str, out: &mut Vec<u8>) -> Place {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut place = None;
    for (i, (key, value)) in entries.iter().enumerate() {
        if place.is_none() && key.as_str() > new {
            place = Some(Place {
                at: out.len(),
                after_entry: i > 0,
                before_entry: true,
            });
        }
        if i > 0 {
            out.push(b',');
        }
        write_json(key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    let place = place.unwrap_or(Place {
        at: out.len(),
        after_entry: !entries.is_empty(),
        before_entry: false,
    });
    out.push(b'}');
    place
}

/// A string or scalar as serde_json writes it (escaped, compact).
fn write_json(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("writing JSON to memory cannot fail");
}

/// How tool arguments are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordArguments {
    /// Not at all.
    None,
    /// As the SHA-256 of their canonical JSON (the default): equal arguments can be
    /// matched, their content is not kept.
    #[default]
    Digest,
    /// In full, with values under keys that look secret replaced.
    Full,
}

/// Keys whose values are never written in full (matched case-insensitively, anywhere
/// in the key).
const SECRET_KEYS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "cookie",
];

/// The arguments as `how` records them.
pub fn arguments(how: RecordArguments, arguments: &Value) -> Option<Value> {
    match how {
        RecordArguments::None => None,
        RecordArguments::Digest => Some(serde_json::json!({ "sha256": digest_value(arguments) })),
        RecordArguments::Full => {
            let redacted = redact(arguments);
            let size = canonical(&redacted).len();
            if size > MAX_FULL_ARGUMENTS {
                // Too large to keep whole: the digest, and how large they were.
                return Some(serde_json::json!({
                    "sha256": digest_value(arguments),
                    "too_large_bytes": size,
                }));
            }
            Some(redacted)
        }
    }
}

/// Largest arguments written in full; larger ones are recorded by digest.
const MAX_FULL_ARGUMENTS: usize = 64 * 1024;

fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lower = key.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                        (key.clone(), Value::String("[redacted]".into()))
                    } else {
                        (key.clone(), redact(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "é\n"}], "c": null}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":null,"z":[1,{"x":"é\n","y":2}]},"b":1}"#
        );
        let reordered: Value =
            serde_json::from_str(r#"{"a":{"z":[1,{"x":"é\n","y":2}],"c":null},"b":1}"#).unwrap();
        assert_eq!(digest_value(&a), digest_value(&reordered));
    }

    #[test]
    fn a_sealed_line_carries_its_chain_and_hash() {
        let mut record = Record::now("tool_call");
        record.tool = Some("get_weather".into());
        let (line, hash) = record.seal(7, GENESIS, None);
        let parsed: Map<String, Value> = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["seq"], 7);
        assert_eq!(parsed["prev"], GENESIS);
        assert_eq!(parsed["hash"], hash.as_str());
        assert!(
            !line.contains("subject"),
            "absent fields are left out: {line}"
        );
        let mut without = parsed.clone();
        without.remove("hash");
        assert_eq!(digest(&without), hash);
        // A different place in the chain is a different hash.
        assert_ne!(record.seal(8, GENESIS, None).1, hash);
        assert_ne!(record.seal(7, &hash, None).1, hash);
    }

    /// The line as sealing defines it: the canonical form of the fields, `seq` and
    /// `prev`, with `hash` (of that form without it) added.
    fn sealed_by_definition(
        record: &Record,
        seq: u64,
        prev: &str,
        replica: Option<&str>,
    ) -> String {
        let Value::Object(mut fields) = serde_json::to_value(record).unwrap() else {
            panic!("a record is an object")
        };
        if let Some(replica) = replica {
            fields.insert("replica".into(), replica.into());
        }
        fields.insert("seq".into(), seq.into());
        fields.insert("prev".into(), prev.into());
        let hash = digest(&fields);
        fields.insert("hash".into(), hash.into());
        canonical(&Value::Object(fields))
    }

    #[test]
    fn a_sealed_line_is_the_canonical_form_with_its_hash_in_place() {
        let bare = Record {
            time: "2026-11-30T00:00:00.000000Z".into(),
            event: "stop".into(),
            ..Record::default()
        };
        let mut full = Record::now("tool_call");
        full.request_id = Some("r-1".into());
        full.subject = Some("ünïcode \"quoted\"\n".into());
        full.client_id = Some("c".into());
        full.peer = Some("127.0.0.1:9".into());
        full.transport = Some("http".into());
        full.tool = Some("echo".into());
        full.plugin = Some("echo".into());
        full.plugin_sha256 = Some("ab".repeat(32));
        full.outcome = Some("ok".into());
        full.reason = Some("a \u{1} control".into());
        full.duration_us = Some(42);
        full.credentials = Some(vec!["key:granted".into()]);
        full.client_requests = Some(vec!["sampling:answered".into()]);
        full.arguments = Some(json!({"z": 1, "a": [{"y": null, "b": "x"}]}));
        full.detail = Some(json!({"tools": ["b", "a"]}));
        for record in [&bare, &full] {
            for replica in [None, Some("r2")] {
                for (seq, prev) in [(0, GENESIS), (12_345, "f".repeat(64).as_str())] {
                    let (line, hash) = record.seal(seq, prev, replica);
                    assert_eq!(line, sealed_by_definition(record, seq, prev, replica));
                    let parsed: Map<String, Value> = serde_json::from_str(&line).unwrap();
                    assert_eq!(parsed["hash"], hash.as_str());
                }
            }
        }
    }

    #[test]
    fn arguments_are_digested_or_redacted() {
        let args = json!({"city": "Oslo", "api_key": "k-123", "nested": {"Password": "p"},
            "list": [{"auth_token": "t"}]});
        let digest = arguments(RecordArguments::Digest, &args).unwrap();
        assert_eq!(digest["sha256"].as_str().unwrap().len(), 64);
        assert!(!digest.to_string().contains("Oslo"));
        let full = arguments(RecordArguments::Full, &args).unwrap();
        assert_eq!(full["city"], "Oslo");
        assert_eq!(full["api_key"], "[redacted]");
        assert_eq!(full["nested"]["Password"], "[redacted]");
        assert_eq!(full["list"][0]["auth_token"], "[redacted]");
        assert!(!full.to_string().contains("k-123"));
        assert_eq!(arguments(RecordArguments::None, &args), None);
    }
}
