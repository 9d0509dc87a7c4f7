//! The `state` section: where each query's model state is kept across restarts.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawState;
use super::validator::Validator;

const DEFAULT_STATE_INTERVAL: Duration = Duration::from_secs(300);
/// The folder beside the audit database when `state.path` is not set.
const DEFAULT_STATE_FOLDER: &str = "foretell-state";

/// Where each query's models are written (a file per query, see `src/state`) and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// The folder of the state files.
    pub path: PathBuf,
    /// How often a query writes its state; it is also written at shutdown.
    pub interval: Duration,
}

impl Validator<'_> {
    /// `audit_path` is the audit database's file, beside which the state goes by default.
    pub(super) fn state(
        &mut self,
        raw: &RawState,
        audit_path: Option<&str>,
    ) -> Option<StateConfig> {
        let path = match (raw.path.as_deref().map(str::trim), audit_path) {
            (Some(""), _) => {
                self.fail("state.path", "must name a folder for the state files");
                None
            }
            (Some(path), _) => Some(self.base_dir.join(path)),
            (None, Some(audit)) => {
                let beside = self.base_dir.join(audit);
                Some(beside.parent().map_or_else(
                    || PathBuf::from(DEFAULT_STATE_FOLDER),
                    |dir| dir.join(DEFAULT_STATE_FOLDER),
                ))
            }
            (None, None) => {
                self.fail(
                    "state.path",
                    "is needed without an audit log (by default the state goes beside audit.path)",
                );
                None
            }
        };
        let interval = self.positive_duration(
            "state.interval",
            raw.interval.as_deref(),
            DEFAULT_STATE_INTERVAL,
        );
        Some(StateConfig {
            path: path?,
            interval: interval?,
        })
    }
}
