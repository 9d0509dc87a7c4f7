//! One immutable result per evaluation cycle, read by the exporter.
//!
//! Each query's cycle produces a [`QueryOutput`]; the [`Snapshot`] maps query names to the
//! newest output of each. A new snapshot is built by replacing one entry (the others are
//! shared `Arc`s), so readers never see a half-written cycle.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chart::record::SharedRecord;
use crate::exposition;
use crate::labels::{Labels, METRIC_NAME};
use crate::model::{Band, Excursion};
use crate::peers::PeerVerdict;

/// Label carrying the query name on every exported series.
pub const QUERY_LABEL: &str = "query";
/// Label carrying the source series' metric name (its `__name__`).
pub const SOURCE_METRIC_LABEL: &str = "source_metric";
/// Label carrying the forecast horizon on `foretell_forecast*` series.
pub const HORIZON_LABEL: &str = "horizon";
/// Prefix given to a source label whose name collides with one foretell adds, the same rule
/// Prometheus applies to clashing target labels.
pub const COLLISION_PREFIX: &str = "exported_";

/// The labels foretell adds; a source label with one of these names is renamed.
const RESERVED: [&str; 3] = [QUERY_LABEL, SOURCE_METRIC_LABEL, HORIZON_LABEL];

/// Builds the exported label set of a source series: the source labels, `__name__` moved to
/// `source_metric`, `query` set to the query name, and any source label named like a label
/// foretell adds renamed with the `exported_` prefix (repeated until the name is free).
pub fn export_labels(query: &str, source: &Labels) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(source.len() + 1);
    pairs.push((QUERY_LABEL.to_owned(), query.to_owned()));
    if let Some(name) = source.get(METRIC_NAME) {
        pairs.push((SOURCE_METRIC_LABEL.to_owned(), name.to_owned()));
    }
    for (name, value) in source.iter().filter(|(name, _)| *name != METRIC_NAME) {
        let mut exported = name.to_owned();
        while RESERVED.contains(&exported.as_str())
            || source_has_renamed_twin(source, &exported, name)
        {
            exported = format!("{COLLISION_PREFIX}{exported}");
        }
        pairs.push((exported, value.to_owned()));
    }
    Labels::from_pairs(pairs)
}

/// True when `candidate` (a renamed form of `original`) is also a label of the source itself,
/// so renaming into it would overwrite a real source label.
fn source_has_renamed_twin(source: &Labels, candidate: &str, original: &str) -> bool {
    candidate != original && source.get(candidate).is_some()
}

/// What the model says about one series at the end of a cycle.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesState {
    /// Too little history; only `foretell_model_ready 0` is exported.
    NotReady,
    /// The model's prediction for the newest point (made before it arrived), its score when
    /// the point is finite, the anomaly probability, one forecast per horizon of the query (in
    /// the order of [`QueryOutput::horizons`]) and the time until the threshold is crossed.
    Ready {
        band: Band,
        score: Option<f64>,
        probability: f64,
        forecasts: Vec<Band>,
        threshold_eta_seconds: Option<f64>,
        /// The excursion outside the band that is open now, if any (evidence for alerts).
        excursion: Excursion,
    },
}

/// A series' exported labels and their `name="value",...` block, escaped once when the series
/// is first tracked and shared by its model and every cycle's output (a clone is a pointer,
/// not 0.5 KB of strings a series a cycle). Saved as the labels alone; the block is rebuilt.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedSeries(Arc<(Labels, String)>);

impl ExportedSeries {
    pub fn new(labels: Labels) -> Self {
        let block = exposition::label_block(&labels);
        ExportedSeries(Arc::new((labels, block)))
    }

    pub fn labels(&self) -> &Labels {
        &self.0 .0
    }

    pub fn label_block(&self) -> &str {
        &self.0 .1
    }

    /// Bytes of the labels and the block, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0 .0.heap_bytes() + self.0 .1.capacity()
    }
}

impl serde::Serialize for ExportedSeries {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.labels().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ExportedSeries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Labels::deserialize(deserializer).map(ExportedSeries::new)
    }
}

/// One series' result with its exported labels pre-rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesOutput {
    exported: ExportedSeries,
    pub state: SeriesState,
    /// What the live model did at each recent point, for the charts (`None` when the query
    /// keeps no record).
    pub record: Option<SharedRecord>,
    /// How the series compares with its peers (`None`: peers off, or its group not assessed).
    pub peer: Option<PeerVerdict>,
}

impl SeriesOutput {
    pub fn new(labels: Labels, state: SeriesState) -> Self {
        SeriesOutput::of(ExportedSeries::new(labels), state)
    }

    /// The output of a series whose exported labels are already shared.
    pub fn of(exported: ExportedSeries, state: SeriesState) -> Self {
        SeriesOutput {
            exported,
            state,
            record: None,
            peer: None,
        }
    }

    /// The same output, drawn from `record`.
    pub fn with_record(mut self, record: SharedRecord) -> Self {
        self.record = Some(record);
        self
    }

    /// The exported labels.
    pub fn labels(&self) -> &Labels {
        self.exported.labels()
    }

    /// `name="value",...` with escaping done once, reused by every scrape.
    pub fn label_block(&self) -> &str {
        self.exported.label_block()
    }
}

/// Result of one cycle of one query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    pub query: String,
    /// End of the evaluated range, in milliseconds since the epoch.
    pub evaluated_at_ms: i64,
    /// Label values of the forecast horizons, as configured (`15m`, `1h`).
    pub horizons: Vec<String>,
    pub series: Vec<SeriesOutput>,
}

/// The newest output of every query.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    queries: BTreeMap<String, Arc<QueryOutput>>,
}

impl Snapshot {
    /// A snapshot with `output` replacing the previous output of its query.
    pub fn with_query(&self, output: QueryOutput) -> Snapshot {
        let mut queries = self.queries.clone();
        queries.insert(output.query.clone(), Arc::new(output));
        Snapshot { queries }
    }

    /// A snapshot keeping only the queries for which `keep` returns true.
    pub fn retaining(&self, mut keep: impl FnMut(&str) -> bool) -> Snapshot {
        let queries = self
            .queries
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, output)| (name.clone(), Arc::clone(output)))
            .collect();
        Snapshot { queries }
    }

    pub fn queries(&self) -> impl Iterator<Item = &QueryOutput> {
        self.queries.values().map(|output| output.as_ref())
    }

    pub fn series(&self) -> impl Iterator<Item = &SeriesOutput> {
        self.queries().flat_map(|output| output.series.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_name_moves_to_source_metric_and_query_is_added() {
        let source = Labels::from_pairs([("__name__", "node_load1"), ("instance", "a")]);
        let exported = export_labels("load", &source);
        let pairs: Vec<_> = exported.iter().collect();
        assert_eq!(
            pairs,
            vec![
                ("instance", "a"),
                ("query", "load"),
                ("source_metric", "node_load1")
            ]
        );
    }

    #[test]
    fn colliding_source_labels_get_the_exported_prefix() {
        let source = Labels::from_pairs([
            ("query", "sql"),
            ("source_metric", "x"),
            ("exported_query", "already"),
            ("horizon", "h"),
        ]);
        let exported = export_labels("q", &source);
        assert_eq!(exported.get("query"), Some("q"));
        assert_eq!(exported.get("source_metric"), None);
        assert_eq!(exported.get("exported_source_metric"), Some("x"));
        assert_eq!(exported.get("horizon"), None);
        assert_eq!(exported.get("exported_horizon"), Some("h"));
        // `exported_query` is a real source label, so `query` moves one prefix further.
        assert_eq!(exported.get("exported_query"), Some("already"));
        assert_eq!(exported.get("exported_exported_query"), Some("sql"));
    }

    #[test]
    fn replacing_one_query_keeps_the_others() {
        let output = |name: &str, at: i64| QueryOutput {
            query: name.to_owned(),
            evaluated_at_ms: at,
            horizons: vec![],
            series: vec![],
        };
        let snapshot = Snapshot::default()
            .with_query(output("a", 1))
            .with_query(output("b", 1))
            .with_query(output("a", 2));
        let seen: Vec<_> = snapshot
            .queries()
            .map(|q| (q.query.as_str(), q.evaluated_at_ms))
            .collect();
        assert_eq!(seen, vec![("a", 2), ("b", 1)]);
        let kept: Vec<_> = snapshot
            .retaining(|name| name == "b")
            .queries()
            .map(|q| q.query.clone())
            .collect();
        assert_eq!(kept, vec!["b"]);
    }
}
