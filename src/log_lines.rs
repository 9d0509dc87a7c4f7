//! Log lines as Prometheus and its exporters write them, in logfmt:
//! `ts=2026-12-06T16:25:30.933Z level=info target=foretell::app msg="foretell started" queries=1`,
//! or as one JSON object a line with the same keys (`--log.format json`): `ts`, `level`,
//! `target`, `msg`, then the event's fields, numbers and booleans as JSON numbers and booleans.
//!
//! Written here rather than taken from a crate: the one maintained logfmt formatter for
//! `tracing` escapes values with Rust's `escape_debug`, which writes `naive's` as `naive\'s`, an
//! escape that Go's logfmt decoders (Loki, promtail, `go-logfmt`) refuse. Values here are
//! escaped the way those decoders read them: `\"`, `\\`, `\n`, `\r`, `\t`, other control
//! characters as `\u00XX`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter: time, level, target, the message as `msg`, then the event's fields, as
/// logfmt (`LogLines::Logfmt`) or as one JSON object a line with the same keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLines {
    Logfmt,
    Json,
}

impl<S, N> FormatEvent<S, N> for LogLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let ts = timestamp(crate::clock::system().now_ms());
        let level = metadata.level().as_str().to_ascii_lowercase();
        let line = match self {
            LogLines::Logfmt => {
                let mut line = String::with_capacity(160);
                line.push_str("ts=");
                line.push_str(&ts);
                line.push_str(" level=");
                line.push_str(&level);
                line.push_str(" target=");
                push_value(&mut line, metadata.target());
                event.record(&mut Fields { line: &mut line });
                line
            }
            LogLines::Json => {
                let mut object = serde_json::Map::new();
                object.insert("ts".into(), ts.into());
                object.insert("level".into(), level.into());
                object.insert("target".into(), metadata.target().into());
                event.record(&mut JsonFields(&mut object));
                serde_json::Value::Object(object).to_string()
            }
        };
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

/// Collects the event's fields into the object; the message is `msg`.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl JsonFields<'_> {
    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        let key = match field.name() {
            "message" => "msg",
            name => name,
        };
        self.0.insert(key.to_owned(), value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

/// RFC 3339 in UTC with milliseconds, as Prometheus' `ts`.
fn timestamp(ms: i64) -> String {
    let seconds = foretell_core::timestamp::format_rfc3339(ms);
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

/// Appends ` key=value` for each field; the message is `msg`, as Prometheus names it.
struct Fields<'a> {
    line: &'a mut String,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: &str) {
        let key = match field.name() {
            "message" => "msg",
            name => name,
        };
        self.line.push(' ');
        self.line.push_str(key);
        self.line.push('=');
        push_value(self.line, value);
    }
}

/// A value bare when it can be, quoted and escaped when it holds a space, `=`, `"`, `\` or a
/// control character (or is empty).
fn push_value(line: &mut String, value: &str) {
    let quoted = value.is_empty()
        || value
            .chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if !quoted {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> String {
        let mut line = String::new();
        push_value(&mut line, text);
        line
    }

    #[test]
    fn values_are_bare_or_quoted_with_the_escapes_go_decoders_read() {
        assert_eq!(value("ready"), "ready");
        assert_eq!(value("0.0.0.0:9896"), "0.0.0.0:9896");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("naive's band"), "\"naive's band\"");
        assert_eq!(value("a=b"), "\"a=b\"");
        assert_eq!(value("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(value("C:\\x"), "\"C:\\\\x\"");
        assert_eq!(value("two\nlines\ttab"), "\"two\\nlines\\ttab\"");
        assert_eq!(value("bell\u{7}"), "\"bell\\u0007\"");
    }

    #[test]
    fn the_time_has_milliseconds_in_utc() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The line one warning becomes in `format`.
    fn one_line<F>(format: F) -> String
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(format)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(query = "errors", reason = %"it's down", count = 3, "range query failed");
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        text.strip_suffix('\n').expect("one line").to_owned()
    }

    #[test]
    fn a_json_event_has_logfmt_s_keys_and_typed_fields() {
        let line = one_line(LogLines::Json);
        assert!(!line.contains('\n'), "{line}");
        let object: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert!(object["ts"]
            .as_str()
            .is_some_and(|t| t.starts_with("20") && t.ends_with('Z')));
        assert_eq!(object["level"], "warn");
        assert_eq!(object["target"], "foretell::log_lines::tests");
        assert_eq!(object["msg"], "range query failed");
        assert_eq!(object["query"], "errors");
        assert_eq!(object["reason"], "it's down");
        assert_eq!(object["count"], 3);
        assert!(object.get("message").is_none(), "{line}");
    }

    #[test]
    fn an_event_becomes_one_line_with_msg_and_its_fields() {
        let line = one_line(LogLines::Logfmt);
        let line = line.as_str();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("ts=20"), "{line}");
        let rest = line.split_once(' ').map(|(_, rest)| rest).expect("fields");
        assert_eq!(
            rest,
            "level=warn target=foretell::log_lines::tests msg=\"range query failed\" query=errors reason=\"it's down\" count=3"
        );
    }
}
