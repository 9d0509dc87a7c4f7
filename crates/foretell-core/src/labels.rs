//! Label sets identifying a series.

use std::fmt;

/// A label set, sorted by name, names unique. The metric name, when present, is the
/// `__name__` label like everywhere else in Prometheus.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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
    fn display_is_selector_style() {
        let labels = Labels::from_pairs([("job", "a\"b")]);
        assert_eq!(labels.to_string(), r#"{job="a\"b"}"#);
    }
}
