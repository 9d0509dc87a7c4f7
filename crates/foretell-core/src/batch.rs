//! Loading the history of many series in batches: which series go together, and the PromQL
//! that asks Prometheus for one batch only.
//!
//! One `query_range` per series costs Prometheus a few milliseconds of CPU each; one request
//! for thousands of series costs it gigabytes of memory and makes foretell wait for all of them
//! before fitting any. Batches of about a hundred series sit between the two, and let fitting
//! one batch overlap with fetching the next. Prometheus cannot select series by a hash of their
//! labels, so a batch is the set of series carrying some values of one label (the label with
//! the most distinct values, usually `instance` or whatever tells the series apart).

use std::collections::BTreeMap;

use crate::labels::Labels;
use crate::selector::{self, MatchKind, Matcher};

/// The series of one batch and the values of the batching label that select them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Values of the batching label; the empty string stands for series without the label.
    pub values: Vec<String>,
    pub members: Vec<Labels>,
}

/// How a set of series is split into batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// The label whose values select each batch; `None` when the series carry no label but the
    /// metric name, and a single batch takes them all.
    pub label: Option<String>,
    pub batches: Vec<Batch>,
}

/// Splits `series` into batches of at most `max_per_batch` series where the labels allow:
/// every series whose batching label has a given value lands in one batch, so a value shared
/// by more series than that makes a larger batch of its own.
pub fn plan(series: Vec<Labels>, max_per_batch: usize) -> BatchPlan {
    let max_per_batch = max_per_batch.max(1);
    let Some(label) = most_distinct_label(&series) else {
        let batches = if series.is_empty() {
            Vec::new()
        } else {
            vec![Batch {
                values: Vec::new(),
                members: series,
            }]
        };
        return BatchPlan {
            label: None,
            batches,
        };
    };
    let mut groups: BTreeMap<String, Vec<Labels>> = BTreeMap::new();
    for labels in series {
        let value = labels.get(&label).unwrap_or("").to_owned();
        groups.entry(value).or_default().push(labels);
    }
    let mut batches: Vec<Batch> = Vec::new();
    let mut current = Batch {
        values: Vec::new(),
        members: Vec::new(),
    };
    for (value, members) in groups {
        if !current.members.is_empty() && current.members.len() + members.len() > max_per_batch {
            batches.push(std::mem::replace(
                &mut current,
                Batch {
                    values: Vec::new(),
                    members: Vec::new(),
                },
            ));
        }
        current.values.push(value);
        current.members.extend(members);
    }
    if !current.members.is_empty() {
        batches.push(current);
    }
    BatchPlan {
        label: Some(label),
        batches,
    }
}

/// The label (other than the metric name) with the most distinct values among `series`. A
/// label with one value still narrows a request down from the query's other series.
fn most_distinct_label(series: &[Labels]) -> Option<String> {
    let mut values: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for labels in series {
        for (name, value) in labels.iter() {
            if name != "__name__" {
                values.entry(name).or_default().insert(value);
            }
        }
    }
    // A label some series lack still separates them: the missing value counts as one more.
    values
        .into_iter()
        .map(|(name, seen)| {
            let missing = series.iter().any(|l| l.get(name).is_none());
            (name, seen.len() + usize::from(missing))
        })
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(name, _)| name.to_owned())
}

/// One request of history: the expression to fetch and the series it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    pub expr: String,
    pub members: Vec<Labels>,
}

/// The requests that load the history of `new_series`, series of `expr` seen for the first
/// time, when `tracked` other series of it are loaded already.
///
/// A plain selector is split into batches of about `max_per_batch` series. Any other
/// expression would be evaluated in full for every batch, so when most of its series are new
/// (the first load) it is fetched once, unrestricted.
pub fn history_requests(
    expr: &str,
    new_series: Vec<Labels>,
    tracked: usize,
    max_per_batch: usize,
) -> Vec<HistoryRequest> {
    if new_series.is_empty() {
        return Vec::new();
    }
    if selector::parse(expr).is_none() && new_series.len() >= tracked {
        return vec![HistoryRequest {
            expr: expr.to_owned(),
            members: new_series,
        }];
    }
    let plan = plan(new_series, max_per_batch);
    plan.batches
        .into_iter()
        .map(|batch| HistoryRequest {
            expr: match &plan.label {
                Some(label) => restrict(expr, label, &batch.values),
                None => expr.to_owned(),
            },
            members: batch.members,
        })
        .collect()
}

/// `expr` restricted to the series whose `label` has one of `values` (the empty string
/// matching series without the label).
///
/// A plain selector (`metric{a="b"}`) gets one more matcher, so Prometheus reads only those
/// series from its index. Any other expression is intersected with a vector built from the
/// values (`(expr) and on(label) (label_replace(vector(1), ...) or ...)`): correct for every
/// expression, but Prometheus evaluates the whole expression for each batch.
pub fn restrict(expr: &str, label: &str, values: &[String]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    let matcher = Matcher {
        name: label.to_owned(),
        kind: MatchKind::Regex,
        value: alternatives.join("|"),
    };
    if let Some(restricted) = with_matchers(expr, [matcher]) {
        return restricted;
    }
    let vectors: Vec<String> = values
        .iter()
        .map(|value| {
            format!(
                "label_replace(vector(1), {}, {}, \"\", \"\")",
                selector::quoted(label),
                selector::quoted(&value.replace('$', "$$"))
            )
        })
        .collect();
    format!("({expr}) and on({label}) ({})", vectors.join(" or "))
}

/// `expr` restricted to its one series with `labels` (the metric name aside), for fetching a
/// day of one series of a rule over thousands. A plain selector gets an equality matcher per
/// label; any other expression is intersected with a vector carrying exactly those labels
/// (`(expr) and on(a, b) label_replace(label_replace(vector(1), "a", ...), "b", ...)`).
/// Without labels the series is the expression's only one, and `expr` is returned as it is.
pub fn restrict_to_series(expr: &str, labels: &Labels) -> String {
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(name, _)| *name != crate::labels::METRIC_NAME)
        .collect();
    if pairs.is_empty() {
        return expr.to_owned();
    }
    let added = pairs.iter().map(|(name, value)| Matcher {
        name: (*name).to_owned(),
        kind: MatchKind::Equal,
        value: (*value).to_owned(),
    });
    if let Some(restricted) = with_matchers(expr, added) {
        return restricted;
    }
    let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
    let vector = pairs
        .iter()
        .fold("vector(1)".to_owned(), |inner, (name, value)| {
            format!(
                "label_replace({inner}, {}, {}, \"\", \"\")",
                selector::quoted(name),
                selector::quoted(&value.replace('$', "$$"))
            )
        });
    format!("({expr}) and on({}) {vector}", names.join(", "))
}

/// The plain vector selector `expr` with `added` (`a="b"`, ...) after its own matchers; `None`
/// when `expr` is any other expression.
fn with_matchers(expr: &str, added: impl IntoIterator<Item = Matcher>) -> Option<String> {
    let mut matchers = selector::parse(expr)?;
    matchers.extend(added);
    Some(selector::render(&matchers))
}

/// Escapes RE2 metacharacters so `text` matches itself literally.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(instance: &str, job: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("instance", instance), ("job", job)])
    }

    #[test]
    fn one_series_is_picked_out_by_all_its_labels() {
        let labels = Labels::from_pairs([
            ("__name__", "up"),
            ("instance", "a:9100"),
            ("path", "/x\"y$1"),
        ]);
        assert_eq!(
            restrict_to_series("up", &labels),
            r#"up{instance="a:9100", path="/x\"y$1"}"#
        );
        assert_eq!(
            restrict_to_series(r#"up{job="node",}"#, &labels),
            r#"up{job="node", instance="a:9100", path="/x\"y$1"}"#
        );
        assert_eq!(
            restrict_to_series("sum by (instance, path) (rate(x[5m]))", &labels),
            r#"(sum by (instance, path) (rate(x[5m]))) and on(instance, path) label_replace(label_replace(vector(1), "instance", "a:9100", "", ""), "path", "/x\"y$$1", "", "")"#
        );
        let escaped =
            Labels::from_pairs([("__name__", "x"), ("instance", "a\"b\\c$1"), ("job", "api")]);
        assert_eq!(
            restrict_to_series("rate(x[5m])", &escaped),
            r#"(rate(x[5m])) and on(instance, job) label_replace(label_replace(vector(1), "instance", "a\"b\\c$$1", "", ""), "job", "api", "", "")"#
        );
        let bare = Labels::from_pairs([("__name__", "x")]);
        assert_eq!(restrict_to_series("sum(x)", &bare), "sum(x)");
        assert_eq!(restrict_to_series("sum(x)", &Labels::default()), "sum(x)");
    }

    #[test]
    fn batches_split_on_the_label_with_most_values_and_keep_values_together() {
        let mut all = Vec::new();
        for i in 0..7 {
            all.push(series(&format!("host{i}"), "node"));
        }
        all.push(Labels::from_pairs([("__name__", "up"), ("job", "node")]));
        let plan = plan(all.clone(), 3);
        assert_eq!(plan.label.as_deref(), Some("instance"));
        let sizes: Vec<usize> = plan.batches.iter().map(|b| b.members.len()).collect();
        assert_eq!(sizes, vec![3, 3, 2]);
        assert_eq!(plan.batches[0].values, vec!["", "host0", "host1"]);
        let mut covered: Vec<Labels> = plan.batches.into_iter().flat_map(|b| b.members).collect();
        covered.sort();
        all.sort();
        assert_eq!(covered, all, "every series in exactly one batch");
    }

    #[test]
    fn a_value_shared_by_many_series_is_one_batch() {
        let all: Vec<Labels> = (0..5)
            .map(|cpu| {
                Labels::from_pairs([
                    ("cpu", cpu.to_string().as_str()),
                    ("instance", if cpu < 4 { "a" } else { "b" }),
                ])
            })
            .collect();
        // `cpu` has the most values; each value is one series.
        let plan = plan(all, 2);
        assert_eq!(plan.label.as_deref(), Some("cpu"));
        assert_eq!(plan.batches.len(), 3);
        let same: Vec<Labels> = (0..4)
            .map(|cpu| Labels::from_pairs([("instance", "a"), ("mode", ["x", "y"][cpu % 2])]))
            .collect();
        let plan = super::plan(same, 1);
        assert_eq!(plan.label.as_deref(), Some("mode"));
        assert_eq!(
            plan.batches
                .iter()
                .map(|b| b.members.len())
                .collect::<Vec<_>>(),
            vec![2, 2],
            "a value's series are never split"
        );
    }

    #[test]
    fn series_with_only_a_metric_name_are_one_batch() {
        let plan = plan(vec![Labels::from_pairs([("__name__", "up")])], 10);
        assert_eq!(plan.label, None);
        assert_eq!(plan.batches.len(), 1);
        assert!(super::plan(Vec::new(), 10).batches.is_empty());
    }

    #[test]
    fn history_requests_batch_selectors_and_fetch_other_first_loads_once() {
        let new: Vec<Labels> = (0..5).map(|i| series(&format!("h{i}"), "node")).collect();
        let requests = history_requests("up", new.clone(), 0, 2);
        let exprs: Vec<&str> = requests.iter().map(|r| r.expr.as_str()).collect();
        assert_eq!(
            exprs,
            vec![
                r#"up{instance=~"h0|h1"}"#,
                r#"up{instance=~"h2|h3"}"#,
                r#"up{instance=~"h4"}"#
            ]
        );
        let first_load = history_requests("rate(up[5m])", new.clone(), 0, 2);
        assert_eq!(first_load.len(), 1);
        assert_eq!(first_load[0].expr, "rate(up[5m])");
        assert_eq!(first_load[0].members.len(), 5);
        let later = history_requests("rate(up[5m])", new[..1].to_vec(), 100, 2);
        assert_eq!(later.len(), 1);
        assert!(
            later[0]
                .expr
                .starts_with("(rate(up[5m])) and on(instance) "),
            "one new series among many is fetched alone: {}",
            later[0].expr
        );
        assert!(history_requests("up", Vec::new(), 3, 2).is_empty());
    }

    #[test]
    fn plain_selectors_get_one_more_matcher() {
        let values = vec!["a.example:9100".to_owned(), "b".to_owned()];
        assert_eq!(
            restrict("up", "instance", &values),
            r#"up{instance=~"a\\.example:9100|b"}"#
        );
        assert_eq!(
            restrict(r#" node_load1{job="node", } "#, "instance", &values),
            r#"node_load1{job="node", instance=~"a\\.example:9100|b"}"#
        );
        assert_eq!(
            restrict(r#"{__name__="up"}"#, "job", &["x".to_owned()]),
            r#"up{job=~"x"}"#
        );
        assert_eq!(
            restrict(r#"{__name__="a.b", job!~'x|y'}"#, "job", &["x".to_owned()]),
            r#"{__name__="a.b", job!~"x|y", job=~"x"}"#,
            "a name PromQL cannot read bare stays a matcher; single quotes become double"
        );
        assert_eq!(
            restrict(r#"{job=~"n.*"}"#, "instance", &["i".to_owned()]),
            r#"{job=~"n.*", instance=~"i"}"#,
            "a selector with only regular expressions is still plain"
        );
        assert_eq!(
            restrict("up{}", "job", &["".to_owned()]),
            r#"up{job=~""}"#,
            "the empty value selects series without the label"
        );
        assert_eq!(
            restrict(r#"m{path="}{\"x"}"#, "job", &["j".to_owned()]),
            r#"m{path="}{\"x", job=~"j"}"#,
            "braces and quotes inside values"
        );
    }

    #[test]
    fn other_expressions_are_intersected_with_the_values() {
        let values = vec!["a$1".to_owned(), "b\"c".to_owned()];
        for expr in [
            "rate(http_requests_total[5m])",
            "up{job=\"x\"} offset 5m",
            "up > 0",
            "sum by (job) (up)",
            "up{job=\"x\"} or down",
        ] {
            assert_eq!(
                restrict(expr, "job", &values),
                format!(
                    r#"({expr}) and on(job) (label_replace(vector(1), "job", "a$$1", "", "") or label_replace(vector(1), "job", "b\"c", "", ""))"#
                ),
                "{expr}"
            );
        }
    }
}
