//! PromQL expressions that are a plain vector selector (`metric{label="value", ...}`), read
//! into their label matchers so that their series can be fetched without the query engine
//! (remote read sends the stored samples of exactly those matchers).
//!
//! Anything else (functions, operators, `offset`, `@`, ranges, quoted UTF-8 names, number
//! literals) is not a plain selector and reads as `None`: the caller then asks the query
//! engine, which understands every expression.

use crate::labels::METRIC_NAME;

/// How a matcher compares a label's value (regular expressions are fully anchored, RE2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One label matcher of a selector; the metric name is the matcher `__name__="name"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchKind,
    pub value: String,
}

/// The matchers of `expr` when it is a plain vector selector that Prometheus would accept,
/// the metric name first; `None` for any other expression.
///
/// Prometheus refuses a selector whose matchers all match the empty label value; so as never
/// to ask for every series, one is only read here when it names a metric or has an equality
/// matcher with a non-empty value.
pub fn matchers(expr: &str) -> Option<Vec<Matcher>> {
    let matchers = parse(expr)?;
    let selective = matchers
        .iter()
        .any(|m| m.kind == MatchKind::Equal && !m.value.is_empty());
    selective.then_some(matchers)
}

/// The matchers of `expr` when it has the form of a plain vector selector (an optional metric
/// name and an optional `{...}` of matchers, nothing around them), the metric name first, however
/// few series they select (`{}` reads as no matchers); `None` for any other expression.
pub fn parse(expr: &str) -> Option<Vec<Matcher>> {
    let mut text = Text {
        chars: expr.trim().chars().collect(),
        at: 0,
    };
    let mut matchers = Vec::new();
    let name = text.take_while(is_metric_name_char);
    if is_number_literal(&name) {
        return None;
    }
    if !name.is_empty() {
        matchers.push(Matcher {
            name: METRIC_NAME.to_owned(),
            kind: MatchKind::Equal,
            value: name,
        });
    }
    text.skip_space();
    if matchers.is_empty() && text.peek() != Some('{') {
        return None;
    }
    if text.peek() == Some('{') {
        text.at += 1;
        loop {
            text.skip_space();
            if text.peek() == Some('}') {
                text.at += 1;
                break;
            }
            matchers.push(text.matcher()?);
            text.skip_space();
            match text.peek()? {
                ',' => text.at += 1,
                '}' => {}
                _ => return None,
            }
        }
    }
    text.skip_space();
    (text.at == text.chars.len()).then_some(matchers)
}

/// `matchers` as PromQL: the metric name (when the first matcher is an equality on a name
/// PromQL accepts bare) before the braces, every other matcher in them, values double-quoted.
/// `parse(&render(m)) == Some(m)`.
pub fn render(matchers: &[Matcher]) -> String {
    let (head, rest) = match matchers.split_first() {
        Some((first, rest))
            if first.name == METRIC_NAME
                && first.kind == MatchKind::Equal
                && is_bare_metric_name(&first.value) =>
        {
            (first.value.as_str(), rest)
        }
        _ => ("", matchers),
    };
    let inside: Vec<String> = rest
        .iter()
        .map(|m| {
            let operator = match m.kind {
                MatchKind::Equal => "=",
                MatchKind::NotEqual => "!=",
                MatchKind::Regex => "=~",
                MatchKind::NotRegex => "!~",
            };
            format!("{}{operator}{}", m.name, quoted(&m.value))
        })
        .collect();
    if inside.is_empty() && !head.is_empty() {
        return head.to_owned();
    }
    format!("{head}{{{}}}", inside.join(", "))
}

/// A metric name PromQL reads without quotes (and not a number literal).
fn is_bare_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !is_number_literal(name)
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| is_metric_name_char(i, c))
}

/// Whether `c`, at position `i` of a name, may be part of a metric name written bare.
fn is_metric_name_char(i: usize, c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
}

/// `NaN` and `Inf` (in any case) are numbers in PromQL, not metric names.
fn is_number_literal(name: &str) -> bool {
    name.eq_ignore_ascii_case("nan") || name.eq_ignore_ascii_case("inf")
}

/// A double-quoted PromQL string literal of `text`.
pub fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

struct Text {
    chars: Vec<char>,
    at: usize,
}

impl Text {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(usize, char) -> bool) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| keep(self.at - start, c)) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn matcher(&mut self) -> Option<Matcher> {
        let name = self.take_while(|i, c| {
            c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())
        });
        if name.is_empty() {
            return None;
        }
        self.skip_space();
        let kind = match (self.peek()?, self.chars.get(self.at + 1).copied()) {
            ('=', Some('~')) => MatchKind::Regex,
            ('!', Some('~')) => MatchKind::NotRegex,
            ('!', Some('=')) => MatchKind::NotEqual,
            ('=', _) => MatchKind::Equal,
            _ => return None,
        };
        self.at += if kind == MatchKind::Equal { 1 } else { 2 };
        self.skip_space();
        let value = self.string()?;
        Some(Matcher { name, kind, value })
    }

    /// A PromQL string literal: double or single quotes with Go's escapes, or backticks
    /// without any.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek().filter(|c| matches!(c, '"' | '\'' | '`'))?;
        self.at += 1;
        let mut value = String::new();
        loop {
            let c = self.peek()?;
            self.at += 1;
            match c {
                c if c == quote => return Some(value),
                '\\' if quote != '`' => value.push(self.escape(quote)?),
                '\n' if quote != '`' => return None,
                c => value.push(c),
            }
        }
    }

    fn escape(&mut self, quote: char) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        let hex = |text: &mut Text, digits: usize| {
            let code: String = text.chars.get(text.at..text.at + digits)?.iter().collect();
            text.at += digits;
            u32::from_str_radix(&code, 16).ok()
        };
        let code = match c {
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            'v' => 0x0b,
            '\\' => 0x5c,
            c if c == quote => u32::from(c),
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            '0'..='7' => {
                let digits: String = self.chars.get(self.at - 1..self.at + 2)?.iter().collect();
                self.at += 2;
                u32::from_str_radix(&digits, 8)
                    .ok()
                    .filter(|&v| v <= 0xff)?
            }
            _ => return None,
        };
        char::from_u32(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, kind: MatchKind, value: &str) -> Matcher {
        Matcher {
            name: name.to_owned(),
            kind,
            value: value.to_owned(),
        }
    }

    #[test]
    fn plain_selectors_read_into_matchers() {
        use MatchKind::*;
        assert_eq!(matchers("up"), Some(vec![m("__name__", Equal, "up")]));
        assert_eq!(
            matchers(r#"  node:load1 { job = "node" , instance=~'a\\.b|c', x!="", y!~`\d+`, } "#),
            Some(vec![
                m("__name__", Equal, "node:load1"),
                m("job", Equal, "node"),
                m("instance", Regex, "a\\.b|c"),
                m("x", NotEqual, ""),
                m("y", NotRegex, "\\d+"),
            ])
        );
        assert_eq!(
            matchers(r#"{__name__="up", path="\"q\"\n\x41\u00e9\101"}"#),
            Some(vec![
                m("__name__", Equal, "up"),
                m("path", Equal, "\"q\"\nAéA")
            ])
        );
        assert_eq!(matchers("up{}"), Some(vec![m("__name__", Equal, "up")]));
    }

    #[test]
    fn everything_else_is_left_to_the_query_engine() {
        for expr in [
            "rate(http_requests_total[5m])",
            "up offset 5m",
            "up @ 1700000000",
            "up[5m]",
            "up + 1",
            "sum(up)",
            "up{job=\"a\"} or down",
            "NaN",
            "Inf",
            "1",
            "",
            "{}",
            r#"{job=~".*"}"#,
            r#"{job!="a"}"#,
            r#"up{"my.label"="x"}"#,
            r#"up{job="a}"#,
            r#"up{job="a\q"}"#,
            r#"up{job='a\.b'}"#,
            r#"up{job="a" instance="b"}"#,
            r#"up{job=a}"#,
            "up{job=\"a\nb\"}",
        ] {
            assert_eq!(matchers(expr), None, "{expr:?}");
        }
        assert!(
            matchers(r#"{job="node"}"#).is_some(),
            "an equality with a value selects without a name"
        );
    }

    #[test]
    fn the_form_of_a_selector_is_read_however_few_series_it_selects() {
        use MatchKind::*;
        assert_eq!(parse("{}"), Some(Vec::new()));
        assert_eq!(parse(r#"{job=~".*"}"#), Some(vec![m("job", Regex, ".*")]));
        for expr in [
            "",
            "  ",
            "1",
            "NaN",
            "up offset 5m",
            "sum(up)",
            r#"up{job="a}"#,
        ] {
            assert_eq!(parse(expr), None, "{expr:?}");
        }
    }

    #[test]
    fn rendered_matchers_read_back_as_themselves() {
        use MatchKind::*;
        for (matchers, text) in [
            (vec![m("__name__", Equal, "up")], "up"),
            (
                vec![m("__name__", Equal, "node:load1"), m("job", Equal, "n")],
                r#"node:load1{job="n"}"#,
            ),
            (
                vec![m("__name__", Equal, "a.b"), m("x", NotRegex, "\\d+")],
                r#"{__name__="a.b", x!~"\\d+"}"#,
            ),
            (
                vec![m("__name__", Equal, "nan"), m("y", NotEqual, "")],
                r#"{__name__="nan", y!=""}"#,
            ),
            (
                vec![m("path", Equal, "\"q\"\n\t\\ é}{")],
                r#"{path="\"q\"\n\t\\ é}{"}"#,
            ),
            (Vec::new(), "{}"),
        ] {
            assert_eq!(render(&matchers), text);
            assert_eq!(parse(text), Some(matchers), "{text}");
        }
    }
}
