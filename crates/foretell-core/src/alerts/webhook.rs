//! Alertmanager's webhook notification, version 4: bytes in, a checked view out, and the same
//! document back out with annotations added.
//!
//! The checked view ([`Notification`]) holds what foretell reads: alert labels, times, the rule's
//! generator URL. The original JSON is kept too because the forwarded body must be
//! Alertmanager's payload unchanged apart from the added annotations: fields foretell does not
//! know (`truncatedAlerts`, `orgId`, fields of future Alertmanager versions) pass through
//! untouched. It is kept compact: the top-level fields as values, each alert as its raw text,
//! parsed again one at a time only while a receiver's copy is written (a JSON tree of 60,000
//! alerts took hundreds of megabytes). Problems name the field: `alerts[2].startsAt: ...`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::timestamp;

/// Alertmanager's `version` for this payload.
pub const PAYLOAD_VERSION: &str = "4";

/// `firing` or `resolved`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert as foretell reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// `None` for Go's zero time, which Alertmanager sends for alerts still firing.
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
    pub fingerprint: String,
}

/// A notification as foretell reads it, with the document it came in.
#[derive(Clone, Debug)]
pub struct Notification {
    /// The top-level fields as they came, `alerts` aside.
    top: Map<String, Value>,
    /// Each alert's JSON text as it came.
    raw_alerts: Vec<Box<RawValue>>,
    pub receiver: String,
    pub status: AlertStatus,
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// Why a body is not a usable notification; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
    #[error("version: foretell reads Alertmanager webhook payload version {PAYLOAD_VERSION}, got {found}")]
    Version { found: String },
}

fn field(path: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError::Field {
        path: path.into(),
        message: message.into(),
    }
}

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<Notification, PayloadError> {
    let fields: BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(body) {
        Ok(fields) => fields,
        // Valid JSON of another shape (a list, a string): say what it must be.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(field("(body)", "must be a JSON object"))
        }
        Err(e) => return Err(PayloadError::Json(e.to_string())),
    };
    let mut top = Map::new();
    let mut raw_alerts = None;
    for (name, raw) in fields {
        if name == "alerts" {
            raw_alerts = Some(raw);
        } else {
            let value: Value =
                serde_json::from_str(raw.get()).map_err(|e| PayloadError::Json(e.to_string()))?;
            top.insert(name, value);
        }
    }
    match top.get("version") {
        Some(Value::String(v)) if v == PAYLOAD_VERSION => {}
        Some(other) => {
            return Err(PayloadError::Version {
                found: other.to_string(),
            })
        }
        None => return Err(field("version", "is missing")),
    }
    let raw_alerts: Vec<Box<RawValue>> = match raw_alerts {
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|_| field("alerts", "must be a list"))?
        }
        None => return Err(field("alerts", "is missing")),
    };
    let alerts = raw_alerts
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            // One alert's tree at a time, dropped once read.
            let item: Value =
                serde_json::from_str(raw.get()).map_err(|e| PayloadError::Json(e.to_string()))?;
            alert(&format!("alerts[{i}]"), &item)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let notification = Notification {
        receiver: string(&top, "", "receiver")?,
        status: status(&top, "", "status")?,
        group_key: string(&top, "", "groupKey")?,
        group_labels: string_map(&top, "", "groupLabels")?,
        external_url: optional_string(&top, "", "externalURL")?,
        alerts,
        top,
        raw_alerts,
    };
    Ok(notification)
}

fn alert(path: &str, item: &Value) -> Result<Alert, PayloadError> {
    let object = item
        .as_object()
        .ok_or_else(|| field(path, "must be a JSON object"))?;
    let starts_at = string(object, path, "startsAt")?;
    let ends_at = optional_string(object, path, "endsAt")?;
    Ok(Alert {
        status: status(object, path, "status")?,
        labels: string_map(object, path, "labels")?,
        annotations: optional_string_map(object, path, "annotations")?,
        starts_at_ms: time(path, "startsAt", &starts_at)?.ok_or_else(|| {
            field(
                format!("{path}.startsAt"),
                "is the zero time; an alert has a start",
            )
        })?,
        ends_at_ms: if ends_at.is_empty() {
            None
        } else {
            time(path, "endsAt", &ends_at)?
        },
        generator_url: optional_string(object, path, "generatorURL")?,
        fingerprint: optional_string(object, path, "fingerprint")?,
    })
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn string(object: &Map<String, Value>, path: &str, name: &str) -> Result<String, PayloadError> {
    match object.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(field(join(path, name), "must be a string")),
        None => Err(field(join(path, name), "is missing")),
    }
}

fn optional_string(
    object: &Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<String, PayloadError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => string(object, path, name),
    }
}

fn status(
    object: &Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<AlertStatus, PayloadError> {
    match string(object, path, name)?.as_str() {
        "firing" => Ok(AlertStatus::Firing),
        "resolved" => Ok(AlertStatus::Resolved),
        other => Err(field(
            join(path, name),
            format!("must be `firing` or `resolved`, got `{other}`"),
        )),
    }
}

fn string_map(
    object: &Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, PayloadError> {
    match object.get(name) {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key.clone(), s.clone())),
                _ => Err(field(
                    format!("{}.{key}", join(path, name)),
                    "must be a string",
                )),
            })
            .collect(),
        Some(_) => Err(field(join(path, name), "must be an object of strings")),
        None => Err(field(join(path, name), "is missing")),
    }
}

fn optional_string_map(
    object: &Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, PayloadError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(_) => string_map(object, path, name),
    }
}

/// Milliseconds since the epoch; `None` for Go's zero time (`0001-01-01T00:00:00Z`).
fn time(path: &str, name: &str, text: &str) -> Result<Option<i64>, PayloadError> {
    let (ms, format) =
        timestamp::parse(text).map_err(|message| field(join(path, name), message))?;
    if format != timestamp::TimestampFormat::Rfc3339 {
        return Err(field(
            join(path, name),
            format!("`{text}` is not an RFC 3339 time"),
        ));
    }
    // Go's zero time.
    const ZERO_TIME_MS: i64 = -62_135_596_800_000;
    Ok((ms != ZERO_TIME_MS).then_some(ms))
}

impl Notification {
    /// The original document with `additions[i]` merged into the annotations of alert `i`
    /// (creating them where an alert had none); everything else unchanged. Existing
    /// annotations of the same name are replaced: foretell's keys are its own (`foretell_*`).
    pub fn with_annotations(&self, additions: &[BTreeMap<String, String>]) -> Value {
        let keep: Vec<usize> = (0..self.alerts.len()).collect();
        let mut document = self.share(additions, &keep);
        // The whole document keeps its own top-level status.
        if let (Some(object), Some(status)) = (document.as_object_mut(), self.top.get("status")) {
            object.insert("status".into(), status.clone());
        }
        document
    }

    /// The document sent to one receiver: like [`Notification::with_annotations`], keeping
    /// only the alerts at `keep` (in order); the top-level `status` follows the alerts kept
    /// (`firing` when any of them fires), as Alertmanager computes it.
    pub fn share(&self, additions: &[BTreeMap<String, String>], keep: &[usize]) -> Value {
        serde_json::to_value(Share {
            notification: self,
            additions,
            keep,
        })
        .unwrap_or(Value::Null)
    }

    /// [`Notification::share`] written straight to JSON bytes: one alert at a time is copied
    /// and annotated, so a notification of 60,000 alerts is not held again as a tree per
    /// receiver.
    pub fn share_json(
        &self,
        additions: &[BTreeMap<String, String>],
        keep: &[usize],
    ) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&Share {
            notification: self,
            additions,
            keep,
        })
    }

    fn status_of(&self, keep: &[usize]) -> &'static str {
        let firing = keep.iter().any(|&i| {
            self.alerts
                .get(i)
                .is_some_and(|a| a.status == AlertStatus::Firing)
        });
        if firing {
            "firing"
        } else {
            "resolved"
        }
    }
}

/// One receiver's document, serialised from the original without copying it whole.
struct Share<'a> {
    notification: &'a Notification,
    additions: &'a [BTreeMap<String, String>],
    keep: &'a [usize],
}

impl serde::Serialize for Share<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let top = &self.notification.top;
        let status = self.notification.status_of(self.keep);
        let mut map = serializer.serialize_map(None)?;
        let mut alerts_written = false;
        // In key order, as the document was read: `alerts` takes its place among the others.
        for (key, value) in top {
            if !alerts_written && key.as_str() > "alerts" {
                map.serialize_entry("alerts", &KeptAlerts(self))?;
                alerts_written = true;
            }
            match key.as_str() {
                "status" => map.serialize_entry(key, status)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        if !alerts_written {
            map.serialize_entry("alerts", &KeptAlerts(self))?;
        }
        if !top.contains_key("status") {
            map.serialize_entry("status", status)?;
        }
        map.end()
    }
}

struct KeptAlerts<'s, 'a>(&'s Share<'a>);

impl serde::Serialize for KeptAlerts<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let share = self.0;
        let items = &share.notification.raw_alerts;
        let mut seq = serializer.serialize_seq(None)?;
        for &index in share.keep {
            let Some(item) = items.get(index) else {
                continue;
            };
            let added = share.additions.get(index).filter(|added| !added.is_empty());
            let object =
                added.and_then(|_| serde_json::from_str::<Map<String, Value>>(item.get()).ok());
            match (object, added) {
                (Some(mut alert), Some(added)) => {
                    let annotations = alert
                        .entry("annotations")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !annotations.is_object() {
                        *annotations = Value::Object(Map::new());
                    }
                    if let Some(map) = annotations.as_object_mut() {
                        for (key, value) in added {
                            map.insert(key.clone(), Value::String(value.clone()));
                        }
                    }
                    seq.serialize_element(&alert)?;
                }
                _ => seq.serialize_element(item)?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests;
