//! The plugin author's bench, behind `streamhost plugin check` and `plugin test`: a
//! plugin loaded as a host loads it (with the manifest beside it, or one given), run on
//! events through the host's decoder, each outcome with the fields it added, changed
//! or removed, and expectations checked against the outcomes; and [`new`], a plugin
//! crate of its own to start from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod new;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plugins::directory::{self, Manifest};
use crate::plugins::{Chain, LoadedPlugin, PluginError, PluginRuntime};
use crate::records::{Destination, SourceRecord};
use crate::schema::{Schema, HOST_FIELDS};
use crate::stages::validate::Validate;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{0}")]
    Manifest(String),
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
}

/// Where a plugin's manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestFrom {
    /// `--manifest FILE`.
    Given(PathBuf),
    /// `NAME.toml` beside `NAME.wasm`, as a host reads it.
    Beside(PathBuf),
    /// None there: the defaults, no settings.
    Defaults,
}

impl std::fmt::Display for ManifestFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ManifestFrom::Given(p) => write!(f, "{}", p.display()),
            ManifestFrom::Beside(p) => write!(f, "{} (beside the plugin)", p.display()),
            ManifestFrom::Defaults => f.write_str("none (defaults, no settings)"),
        }
    }
}

/// A plugin loaded with its manifest's settings, checked, ready to judge.
#[derive(Debug)]
pub struct Loaded {
    pub plugin: LoadedPlugin,
    pub manifest: Manifest,
    pub manifest_from: ManifestFrom,
}

/// Load `wasm` as a host would: compiled, configured with the settings of `manifest`
/// (or of the manifest beside it), self-checked. A plugin whose `configure` refuses the
/// settings (one it requires is missing, say) fails here, with its message.
pub fn load(
    runtime: &PluginRuntime,
    wasm: &Path,
    manifest: Option<&Path>,
) -> Result<Loaded, BenchError> {
    let (manifest, manifest_from) = match manifest {
        Some(path) => {
            let (text, parsed) = directory::manifest_at(path);
            if text.is_none() {
                return Err(BenchError::Manifest(format!(
                    "{}: no such manifest",
                    path.display()
                )));
            }
            (parsed, ManifestFrom::Given(path.to_owned()))
        }
        None => {
            let (text, parsed) = directory::manifest_for(wasm);
            let from = match text {
                Some(_) => ManifestFrom::Beside(wasm.with_extension("toml")),
                None => ManifestFrom::Defaults,
            };
            (parsed, from)
        }
    };
    let manifest = manifest.map_err(BenchError::Manifest)?;
    let bytes = runtime.read_file(wasm)?;
    let origin = wasm.display().to_string();
    let compiled = runtime.compile(&bytes, &origin, manifest.settings())?;
    let plugin = Arc::new(compiled).instantiate_checked()?;
    Ok(Loaded {
        plugin,
        manifest,
        manifest_from,
    })
}

/// What the host did with one input line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Accepted {
        #[serde(flatten)]
        changes: Changes,
    },
    Rejected {
        code: String,
        message: String,
        /// `host` (decoding) or the plugin's `name@version`.
        rejected_by: String,
    },
}

/// The fields of an accepted event that differ from the input line (the host's own
/// fields left out): what the plugin, or the host's decoding, did to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub added: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub from: Value,
    pub to: Value,
}

/// One input line's outcome, and for an accepted event the event as the host writes it
/// to the output topic (without the host's own fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub line: usize,
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(skip)]
    pub event: Map<String, Value>,
}

/// Runs one plugin on events as the validate stage does: decoded against the schema,
/// then judged.
#[derive(Debug)]
pub struct Bench {
    validate: Validate,
    chain: Chain,
}

impl Bench {
    pub fn new(schema: Arc<Schema>, plugin: LoadedPlugin) -> Result<Self, BenchError> {
        // Keyed as `run` keys by default (windows.key_field), or by the event time when
        // the schema has no such required field: every schema has an event time.
        let default_key = crate::config::WindowsConfig::default().key_field;
        let key = match schema.index(&default_key) {
            Some(i) if schema.field(i).required => default_key,
            _ => schema.field(schema.time()).name.clone(),
        };
        let validate = Validate::new(schema, &key, "input", 1 << 20)
            .map_err(|reason| BenchError::Manifest(format!("schema: {reason}")))?;
        Ok(Self {
            validate,
            chain: Chain::of(vec![plugin]),
        })
    }

    /// Judge `lines` (line number, bytes); outcomes in line order.
    pub fn run(&mut self, lines: &[(usize, Vec<u8>)]) -> Vec<Outcome> {
        let records: Vec<SourceRecord> = lines
            .iter()
            .map(|(line, bytes)| SourceRecord {
                partition: 0,
                offset: *line as i64,
                timestamp_ms: 0,
                payload: bytes.clone(),
            })
            .collect();
        let inputs: BTreeMap<i64, &[u8]> = records
            .iter()
            .map(|r| (r.offset, r.payload.as_slice()))
            .collect();
        // The batch writes decode rejections first: outcomes are matched to lines by
        // the source offset every output carries.
        let mut outcomes: Vec<Outcome> = self
            .validate
            .process_batch(&mut self.chain, &records)
            .iter()
            .map(|o| {
                let mut v: Map<String, Value> =
                    serde_json::from_slice(&o.payload).unwrap_or_default();
                let offset = v.get("source_offset").and_then(Value::as_i64).unwrap_or(0);
                let line = usize::try_from(offset).unwrap_or(0);
                let text = |v: &Map<String, Value>, k: &str| {
                    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
                };
                match o.destination {
                    Destination::Enriched => {
                        for host in HOST_FIELDS {
                            v.remove(host);
                        }
                        let input = inputs.get(&offset).copied().unwrap_or_default();
                        Outcome {
                            line,
                            verdict: Verdict::Accepted {
                                changes: changes(input, &v),
                            },
                            event: v,
                        }
                    }
                    _ => Outcome {
                        line,
                        verdict: Verdict::Rejected {
                            code: text(&v, "code"),
                            message: text(&v, "message"),
                            rejected_by: text(&v, "rejected_by"),
                        },
                        event: Map::new(),
                    },
                }
            })
            .collect();
        outcomes.sort_by_key(|o| o.line);
        outcomes
    }
}

/// The fields of `output` that are not as in the `input` line. A field the output has
/// as null and the input lacks is not a change (the schema's absent fields are written
/// as null); numbers compare by value (`1` and `1.0` are the same number).
pub fn changes(input: &[u8], output: &Map<String, Value>) -> Changes {
    let input: Map<String, Value> = serde_json::from_slice(input).unwrap_or_default();
    let mut c = Changes::default();
    for (key, to) in output {
        match input.get(key) {
            None if to.is_null() => {}
            None => {
                c.added.insert(key.clone(), to.clone());
            }
            Some(from) if !same(from, to) => {
                c.changed.insert(
                    key.clone(),
                    Change {
                        from: from.clone(),
                        to: to.clone(),
                    },
                );
            }
            Some(_) => {}
        }
    }
    c.removed = input
        .keys()
        .filter(|k| !output.contains_key(*k) && !HOST_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    c
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl std::fmt::Display for Verdict {
    /// `accepted  + referrer_host "example.com"  ~ country "uk" → "UK"`, or
    /// `rejected  code  message (by)`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Verdict::Accepted { changes } => {
                f.write_str("accepted")?;
                for (k, v) in &changes.added {
                    write!(f, "  + {k} {v}")?;
                }
                for (k, c) in &changes.changed {
                    write!(f, "  ~ {k} {} → {}", c.from, c.to)?;
                }
                for k in &changes.removed {
                    write!(f, "  - {k}")?;
                }
                Ok(())
            }
            Verdict::Rejected {
                code,
                message,
                rejected_by,
            } => write!(f, "rejected  {code:<18} {message} ({rejected_by})"),
        }
    }
}

/// One case of an expectation file (JSON lines): an event and what must become of it.
///
/// ```json
/// {"event": {"referrer": "https://spam.example/x"}, "verdict": "rejected", "code": "blocked_referrer"}
/// {"event": {"referrer": "https://ok.example/"}, "verdict": "accepted", "fields": {"referrer_host": "ok.example"}}
/// ```
///
/// `event` is an object, or a string sent as it is (a malformed line, say); `fields`
/// are checked one by one on the accepted event (null: absent or null); `message` is a
/// part of the rejection's message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub event: Value,
    pub verdict: Expected,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Accepted,
    Rejected,
}

impl Case {
    /// The bytes sent for this case.
    pub fn bytes(&self) -> Vec<u8> {
        match &self.event {
            Value::String(raw) => raw.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        }
    }

    /// What differs between this expectation and `outcome`; empty when it holds.
    pub fn mismatches(&self, outcome: &Outcome) -> Vec<String> {
        let mut wrong = Vec::new();
        match (&outcome.verdict, self.verdict) {
            (Verdict::Accepted { .. }, Expected::Accepted) => {
                for (field, want) in &self.fields {
                    let got = outcome.event.get(field).unwrap_or(&Value::Null);
                    if !same(got, want) {
                        wrong.push(format!("field `{field}`: expected {want}, got {got}"));
                    }
                }
            }
            (Verdict::Rejected { code, message, .. }, Expected::Rejected) => {
                if let Some(want) = self.code.as_deref().filter(|want| want != code) {
                    wrong.push(format!("code: expected {want}, got {code}"));
                }
                if let Some(want) = self.message.as_deref().filter(|m| !message.contains(m)) {
                    wrong.push(format!(
                        "message: expected to contain {want:?}, got {message:?}"
                    ));
                }
            }
            (got, _) => wrong.push(format!("expected {}, got {got}", self.summary())),
        }
        wrong
    }

    fn summary(&self) -> String {
        match (self.verdict, &self.code) {
            (Expected::Rejected, Some(code)) => format!("rejected {code}"),
            (Expected::Rejected, None) => "rejected".into(),
            (Expected::Accepted, _) => "accepted".into(),
        }
    }
}

/// The cases of an expectation file, with their line numbers; blank lines are skipped.
/// A case that cannot be read, or that contradicts itself (`accepted` with a `code`),
/// is an error naming the line.
pub fn read_cases(path: &Path) -> Result<Vec<(usize, Case)>, BenchError> {
    let input = |reason: String| BenchError::Input {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| input(format!("cannot read: {e}")))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case =
            serde_json::from_str(line).map_err(|e| input(format!("line {}: {e}", i + 1)))?;
        if case.verdict == Expected::Accepted && (case.code.is_some() || case.message.is_some()) {
            return Err(input(format!(
                "line {}: an accepted case has no `code` or `message` (those are a rejection's)",
                i + 1
            )));
        }
        if case.verdict == Expected::Rejected && !case.fields.is_empty() {
            return Err(input(format!(
                "line {}: a rejected case has no `fields` (a rejected event is not written)",
                i + 1
            )));
        }
        cases.push((i + 1, case));
    }
    if cases.is_empty() {
        return Err(input("no cases".into()));
    }
    Ok(cases)
}

/// The non-empty lines of an events file, with their line numbers.
pub fn read_lines(path: &Path) -> Result<Vec<(usize, Vec<u8>)>, BenchError> {
    let text = std::fs::read(path).map_err(|e| BenchError::Input {
        path: path.to_owned(),
        reason: format!("cannot read: {e}"),
    })?;
    let lines: Vec<(usize, Vec<u8>)> = text
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| (i + 1, line.to_vec()))
        .collect();
    if lines.is_empty() {
        return Err(BenchError::Input {
            path: path.to_owned(),
            reason: "no lines".into(),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn output(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn changes_are_what_the_output_has_that_the_input_had_not() {
        let input = br#"{"country":"uk","user_id":7,"ratio":1,"gone":1,"source_offset":3}"#;
        let out = output(json!({
            "country": "UK", "user_id": 7, "ratio": 1.0, "device_type": null,
            "referrer_host": "example.com"
        }));
        let c = changes(input, &out);
        assert_eq!(
            c.added,
            BTreeMap::from([("referrer_host".into(), json!("example.com"))])
        );
        assert_eq!(
            c.changed,
            BTreeMap::from([(
                "country".into(),
                Change {
                    from: json!("uk"),
                    to: json!("UK")
                }
            )])
        );
        assert_eq!(c.removed, ["gone"]);
        let verdict = Verdict::Accepted { changes: c };
        assert_eq!(
            verdict.to_string(),
            r#"accepted  + referrer_host "example.com"  ~ country "uk" → "UK"  - gone"#
        );
        assert_eq!(
            serde_json::to_value(Outcome {
                line: 2,
                verdict,
                event: Map::new()
            })
            .unwrap(),
            json!({"line": 2, "verdict": "accepted", "added": {"referrer_host": "example.com"},
                   "changed": {"country": {"from": "uk", "to": "UK"}}, "removed": ["gone"]})
        );
    }

    #[test]
    fn a_case_says_what_did_not_hold() {
        let case: Case = serde_json::from_value(json!({
            "event": {}, "verdict": "accepted", "fields": {"host": "a", "gone": null}
        }))
        .unwrap();
        let accepted = |event: Value| Outcome {
            line: 1,
            verdict: Verdict::Accepted {
                changes: Changes::default(),
            },
            event: output(event),
        };
        assert!(case.mismatches(&accepted(json!({"host": "a"}))).is_empty());
        assert_eq!(
            case.mismatches(&accepted(json!({"host": "b", "gone": 1}))),
            [
                "field `gone`: expected null, got 1",
                r#"field `host`: expected "a", got "b""#
            ]
        );
        let rejected = Outcome {
            line: 1,
            verdict: Verdict::Rejected {
                code: "bad".into(),
                message: "it is bad".into(),
                rejected_by: "r@1".into(),
            },
            event: Map::new(),
        };
        assert_eq!(
            case.mismatches(&rejected),
            ["expected accepted, got rejected  bad                it is bad (r@1)"]
        );
        let case: Case = serde_json::from_value(json!({
            "event": "{", "verdict": "rejected", "code": "bad", "message": "is good"
        }))
        .unwrap();
        assert_eq!(case.bytes(), b"{");
        assert_eq!(
            case.mismatches(&rejected),
            [r#"message: expected to contain "is good", got "it is bad""#]
        );
    }

    #[test]
    fn an_expectation_file_that_contradicts_itself_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.jsonl");
        std::fs::write(
            &path,
            "{\"event\": {}, \"verdict\": \"accepted\"}\n\n{\"event\": {}, \"verdict\": \"accepted\", \"code\": \"x\"}\n",
        )
        .unwrap();
        let err = read_cases(&path).unwrap_err().to_string();
        assert!(
            err.contains("cases.jsonl: line 3: an accepted case"),
            "{err}"
        );
        std::fs::write(&path, "{\"event\": {}, \"verdict\": \"maybe\"}\n").unwrap();
        let err = read_cases(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: unknown variant `maybe`"), "{err}");
    }
}
