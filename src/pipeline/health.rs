//! What foretell knows about its upstream Prometheus, for `/-/ready` and `foretell_upstream_up`.

use std::sync::{Arc, Mutex};

use crate::telemetry::Telemetry;

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

pub struct UpstreamHealth {
    status: Mutex<UpstreamStatus>,
    telemetry: Arc<Telemetry>,
}

impl UpstreamHealth {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        UpstreamHealth {
            status: Mutex::new(UpstreamStatus::Unknown),
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
}
