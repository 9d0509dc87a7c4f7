//! Label sets identifying a series.

use std::fmt;

/// A label set, sorted by name, names unique. The metric name, when present, is the
/// `__name__` label like everywhere else in Prometheus.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Labels(Vec<(String, String)>);

/// The reserved label carrying a metric's name.
pub const METRIC_NAME: &str = "__name__";

impl Labels {
    /// Builds a label set from pairs in any order. A later duplicate name replaces an earlier one.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            let name = name.into();
            let value = value.into();
            match out.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
                Ok(i) => out[i].1 = value,
                Err(i) => out.insert(i, (name, value)),
            }
        }
        Labels(out)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes held by names and values, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|(n, v)| n.capacity() + v.capacity())
            .sum::<usize>()
            + self.0.capacity() * std::mem::size_of::<(String, String)>()
    }
}

/// Why a label name from outside (a Prometheus answer, an alert) cannot be used as one.
///
/// foretell serves the text exposition format 0.0.4 and writes PromQL selectors, both of which
/// carry only the classic names `[a-zA-Z_][a-zA-Z0-9_]*` unquoted. Prometheus 3 also stores
/// UTF-8 names (`service.name`), which those forms can only carry quoted; a series with one
/// is refused rather than exported under a guessed name that could collide with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelNameProblem {
    /// The empty name, which no Prometheus version accepts.
    Empty,
    /// A name starting with `__` other than `__name__`: reserved for Prometheus' own use.
    Reserved,
    /// A UTF-8 name outside `[a-zA-Z_][a-zA-Z0-9_]*` (dots, spaces, quotes, newlines...).
    NotClassic,
}

impl LabelNameProblem {
    /// Every problem, so counters can start at 0 for each.
    pub const ALL: [LabelNameProblem; 3] = [
        LabelNameProblem::Empty,
        LabelNameProblem::Reserved,
        LabelNameProblem::NotClassic,
    ];

    /// A short stable name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelNameProblem::Empty => "label_name_empty",
            LabelNameProblem::Reserved => "label_name_reserved",
            LabelNameProblem::NotClassic => "label_name_not_classic",
        }
    }
}

impl fmt::Display for LabelNameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LabelNameProblem::Empty => "an empty label name",
            LabelNameProblem::Reserved => {
                "a label name starting with `__` (reserved for Prometheus' internal use)"
            }
            LabelNameProblem::NotClassic => {
                "a label name outside [a-zA-Z_][a-zA-Z0-9_]* (a UTF-8 name the text format 0.0.4 cannot carry)"
            }
        })
    }
}

/// Checks a label name against what the exposition and PromQL selectors can carry unquoted.
/// `__name__` is allowed: it holds the metric name and is exported as `source_metric`.
pub fn check_label_name(name: &str) -> Result<(), LabelNameProblem> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(LabelNameProblem::Empty);
    };
    let classic = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !classic {
        Err(LabelNameProblem::NotClassic)
    } else if name.starts_with("__") && name != METRIC_NAME {
        Err(LabelNameProblem::Reserved)
    } else {
        Ok(())
    }
}

/// A label name made safe to show in a log line or an error: control characters escaped, at
/// most 64 characters (a hostile name can be megabytes of newlines).
pub fn describe_label_name(name: &str) -> String {
    let mut shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().count() > 64 {
        shown.push('…');
    }
    format!("\"{shown}\"")
}

/// Why a label set in selector style could not be read; `at` is a character offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at character {at} of the label set (expected {{name=\"value\", ...}})")]
pub struct LabelSetError {
    pub problem: String,
    pub at: usize,
}

impl Labels {
    /// Reads a label set written in selector style, `{instance="a", job="b"}` (braces optional,
    /// only `=`), as [`Labels`]' `Display` writes it: the escapes of PromQL strings and of
    /// Rust's debug output (`\u{..}`) are understood, so every displayed set reads back.
    pub fn parse_selector(text: &str) -> Result<Labels, LabelSetError> {
        let chars: Vec<char> = text.trim().chars().collect();
        let mut at = 0;
        let fail = |problem: &str, at: usize| LabelSetError {
            problem: problem.to_owned(),
            at,
        };
        let braced = chars.first() == Some(&'{');
        if braced {
            if chars.last() != Some(&'}') {
                return Err(fail("missing closing `}`", chars.len()));
            }
            at = 1;
        }
        let end = if braced { chars.len() - 1 } else { chars.len() };
        let mut pairs = Vec::new();
        let skip_space = |at: &mut usize| {
            while *at < end && chars[*at].is_whitespace() {
                *at += 1;
            }
        };
        loop {
            skip_space(&mut at);
            if at >= end {
                break;
            }
            let start = at;
            while at < end && (chars[at].is_ascii_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
            let name: String = chars[start..at].iter().collect();
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(fail("a label name ([a-zA-Z_][a-zA-Z0-9_]*)", start));
            }
            skip_space(&mut at);
            if chars.get(at) != Some(&'=') || chars.get(at + 1) == Some(&'~') {
                return Err(fail("`=` after the label name (only equality)", at));
            }
            at += 1;
            skip_space(&mut at);
            if chars.get(at) != Some(&'"') {
                return Err(fail("a double-quoted value", at));
            }
            at += 1;
            let mut value = String::new();
            loop {
                match chars.get(at).filter(|_| at < end) {
                    None => return Err(fail("an unterminated value", at)),
                    Some('"') => {
                        at += 1;
                        break;
                    }
                    Some('\\') => {
                        let escape_at = at;
                        at += 1;
                        match chars.get(at) {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('r') => value.push('\r'),
                            Some('0') => value.push('\0'),
                            Some(c @ ('\\' | '"' | '\'')) => value.push(*c),
                            Some('u') => {
                                let braces = chars.get(at + 1) == Some(&'{');
                                let digits_from = at + 1 + usize::from(braces);
                                let mut digits_to = digits_from;
                                while digits_to < end && chars[digits_to].is_ascii_hexdigit() {
                                    digits_to += 1;
                                }
                                let digits: String = chars[digits_from..digits_to].iter().collect();
                                let code = u32::from_str_radix(&digits, 16)
                                    .ok()
                                    .filter(|_| braces || digits.len() == 4)
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| fail("a valid \\u escape", escape_at))?;
                                if braces && chars.get(digits_to) != Some(&'}') {
                                    return Err(fail("`}` closing the \\u{..} escape", digits_to));
                                }
                                value.push(code);
                                at = digits_to + usize::from(braces) - 1;
                            }
                            _ => {
                                return Err(fail(
                                    "a known escape (\\\\, \\\", \\n, \\t, \\u)",
                                    escape_at,
                                ))
                            }
                        }
                        at += 1;
                    }
                    Some(c) => {
                        value.push(*c);
                        at += 1;
                    }
                }
            }
            pairs.push((name, value));
            skip_space(&mut at);
            match chars.get(at).filter(|_| at < end) {
                Some(',') => at += 1,
                None => break,
                Some(_) => return Err(fail("`,` between labels", at)),
            }
        }
        Ok(Labels::from_pairs(pairs))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders in PromQL selector style: `{instance="a", job="b"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_and_deduplicated() {
        let labels = Labels::from_pairs([("job", "a"), ("instance", "x"), ("job", "b")]);
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, vec![("instance", "x"), ("job", "b")]);
        assert_eq!(labels.get("job"), Some("b"));
        assert_eq!(labels.get("missing"), None);
    }

    #[test]
    fn displayed_sets_read_back() {
        for pairs in [
            vec![],
            vec![("job", "a\"b")],
            vec![
                ("instance", "10.0.0.1:9100"),
                ("path", "C:\\x\n\ty"),
                ("z", "\u{1b}é{}=,"),
            ],
        ] {
            let labels = Labels::from_pairs(pairs);
            let text = labels.to_string();
            assert_eq!(Labels::parse_selector(&text), Ok(labels), "{text}");
        }
        let bare = Labels::parse_selector(r#" job = "api" ,instance="a", "#).expect("valid");
        assert_eq!(
            bare,
            Labels::from_pairs([("job", "api"), ("instance", "a")])
        );
        assert_eq!(
            Labels::parse_selector(r#"{a="\u0041"}"#)
                .expect("go escape")
                .get("a"),
            Some("A")
        );
    }

    #[test]
    fn malformed_sets_say_where() {
        for (text, problem) in [
            (r#"{job="a""#, "closing"),
            (r#"{job=~"a"}"#, "only equality"),
            (r#"{1job="a"}"#, "label name"),
            (r#"{job=a}"#, "double-quoted"),
            (r#"{job="a}"#, "unterminated"),
            (r#"{job="a" x="b"}"#, "`,`"),
            (r#"{job="\q"}"#, "known escape"),
            (r#"{job="\u{110000}"}"#, "\\u"),
        ] {
            let error = Labels::parse_selector(text).expect_err(text);
            assert!(error.to_string().contains(problem), "{text}: {error}");
        }
    }

    #[test]
    fn label_names_are_checked_as_the_text_format_needs_them() {
        for good in ["job", "_x", "__name__", "a1_B2", "X"] {
            assert_eq!(check_label_name(good), Ok(()), "{good}");
        }
        let injected =
            "zz=\"1\"} 1\nforetell_anomaly_score{query=\"payments\",injected=\"yes\"} 999\nx{a";
        for (bad, problem) in [
            ("", LabelNameProblem::Empty),
            ("bad name", LabelNameProblem::NotClassic),
            ("service.name", LabelNameProblem::NotClassic),
            ("1job", LabelNameProblem::NotClassic),
            ("é", LabelNameProblem::NotClassic),
            (injected, LabelNameProblem::NotClassic),
            ("__meta_x", LabelNameProblem::Reserved),
            ("__", LabelNameProblem::Reserved),
        ] {
            assert_eq!(check_label_name(bad), Err(problem), "{bad:?}");
        }
    }

    #[test]
    fn described_names_are_one_short_line() {
        let shown = describe_label_name(&format!("a\nb{}", "x".repeat(1000)));
        assert!(shown.starts_with("\"a\\nb"), "{shown}");
        assert!(!shown.contains('\n'));
        assert!(shown.chars().count() < 80, "{shown}");
    }

    #[test]
    fn display_is_selector_style() {
        let labels = Labels::from_pairs([("job", "a\"b")]);
        assert_eq!(labels.to_string(), r#"{job="a\"b"}"#);
    }
}
