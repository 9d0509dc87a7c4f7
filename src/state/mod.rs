//! Model state kept across restarts: one file per query in `state.path` (see [`file`] for
//! the layout). A query writes its file every `state.interval` and at shutdown; at start, a
//! query that fetches the same data as when its file was written resumes from it and fetches
//! only the gap since, instead of its whole history. What the pipeline saves and restores is
//! in `pipeline::persist`; this module knows where the files are and what makes one usable.

pub mod file;

use std::path::PathBuf;
use std::time::Duration;

use foretell_core::shard::Shard;
use sha2::{Digest, Sha256};

use crate::config::StateConfig;
use file::Header;

/// Where each query's state file is, and what this process would restore from one.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
    pub interval: Duration,
    shard: Shard,
}

/// Why a state file that reads fine is not restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Written for another expression, step, history, `max_series` or freshness.
    Changed,
    /// Written by a replica of another shard.
    Shard,
    /// Its newest point is older than the query's history: nothing in it is still in the
    /// window.
    Stale,
}

impl Unusable {
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::Changed => "changed",
            Unusable::Shard => "shard",
            Unusable::Stale => "stale",
        }
    }
}

impl StateStore {
    /// The store for `config`; creates its folder.
    pub fn open(config: &StateConfig, shard: Shard) -> std::io::Result<StateStore> {
        std::fs::create_dir_all(&config.path)?;
        Ok(StateStore {
            dir: config.path.clone(),
            interval: config.interval,
            shard,
        })
    }

    /// `<folder>/<query>-<hash>.state`: readable, and distinct for names that differ only in
    /// characters a file name cannot hold.
    pub fn path(&self, query: &str) -> PathBuf {
        let readable: String = query
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let hash = Sha256::digest(query.as_bytes());
        let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{readable}-{short}.state"))
    }

    /// `(index, count)` of this replica's shard, as headers record it.
    pub fn shard(&self) -> (u32, u32) {
        (self.shard.index(), self.shard.count())
    }

    /// Whether a file with `saved` may be restored into a query that would write `current`
    /// now; the model settings may differ (the windows are kept and the models refitted).
    pub fn check(&self, saved: &Header, current: &Header, now_ms: i64) -> Result<(), Unusable> {
        let same_data = saved.query == current.query
            && saved.expr == current.expr
            && saved.step_ms == current.step_ms
            && saved.history_ms == current.history_ms
            && saved.max_series == current.max_series
            && saved.freshness_ms == current.freshness_ms;
        if !same_data {
            return Err(Unusable::Changed);
        }
        if saved.shard != self.shard() {
            return Err(Unusable::Shard);
        }
        let newest = saved.next_start_ms.unwrap_or(i64::MIN);
        if newest.saturating_add(current.history_ms) < now_ms {
            return Err(Unusable::Stale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
