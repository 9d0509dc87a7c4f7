//! What foretell knows about its upstream Prometheus and its own evaluations, for `/-/ready`
//! and `foretell_upstream_up`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::exporter::telemetry::Telemetry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamStatus {
    /// No request has finished yet.
    Unknown,
    Up {
        since_ms: i64,
    },
    Down {
        since_ms: i64,
        error: String,
    },
}

/// Why a query's newest evaluation failed. Either way the model code panicked (a bug), the
/// query's series start afresh, and foretell is not ready until an evaluation succeeds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationFailed {
    /// Scoring the newest points; the message is the task's (`task 7 panicked with ...`).
    #[error("{0}")]
    Scoring(String),
    /// Fitting the history of new series.
    #[error("{0} (while loading the history of new series)")]
    LoadingHistory(String),
}

impl EvaluationFailed {
    pub fn scoring(panic: &tokio::task::JoinError) -> EvaluationFailed {
        EvaluationFailed::Scoring(panic.to_string())
    }

    pub fn loading_history(panic: &tokio::task::JoinError) -> EvaluationFailed {
        EvaluationFailed::LoadingHistory(panic.to_string())
    }
}

pub struct UpstreamHealth {
    status: Mutex<UpstreamStatus>,
    /// Queries whose newest evaluation failed, with the error: foretell serves nothing true
    /// for them, so it is not ready until they evaluate again.
    failing_evaluations: Mutex<BTreeMap<String, EvaluationFailed>>,
    telemetry: Arc<Telemetry>,
}

impl UpstreamHealth {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        UpstreamHealth {
            status: Mutex::new(UpstreamStatus::Unknown),
            failing_evaluations: Mutex::new(BTreeMap::new()),
            telemetry,
        }
    }

    pub fn status(&self) -> UpstreamStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn record_up(&self, now_ms: i64) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*status, UpstreamStatus::Up { .. }) {
            if matches!(*status, UpstreamStatus::Down { .. }) {
                tracing::info!("Prometheus is reachable again");
            }
            *status = UpstreamStatus::Up { since_ms: now_ms };
        }
        self.telemetry.set_upstream_up(true);
    }

    pub fn record_down(&self, error: &str, now_ms: i64) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let since_ms = match &*status {
            UpstreamStatus::Down { since_ms, .. } => *since_ms,
            _ => now_ms,
        };
        *status = UpstreamStatus::Down {
            since_ms,
            error: error.to_owned(),
        };
        self.telemetry.set_upstream_up(false);
    }

    /// Records how the newest evaluation of `query` went; a failure is counted too.
    pub fn record_evaluation(&self, query: &str, outcome: Result<(), EvaluationFailed>) {
        let mut failing = self
            .failing_evaluations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => {
                failing.remove(query);
            }
            Err(error) => {
                self.telemetry.evaluation_failed(query);
                failing.insert(query.to_owned(), error);
            }
        }
    }

    /// The queries whose newest evaluation failed, with why.
    pub fn failing_evaluations(&self) -> Vec<(String, EvaluationFailed)> {
        self.failing_evaluations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(query, error)| (query.clone(), error.clone()))
            .collect()
    }

    /// Forgets queries that are no longer configured.
    pub fn retain_queries(&self, names: &[String]) {
        self.failing_evaluations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|query, _| names.contains(query));
    }
}
