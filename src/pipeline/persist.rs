//! A query's task written to its state file and resumed from it (see `src/state`): the file
//! work on the blocking pool, and what a start or a write says in logs and self-metrics.

use std::sync::Arc;

use foretell_core::snapshot::QueryOutput;
use foretell_core::tracker::QueryTracker;

use super::{tracker_settings, Context, QueryTask};
use crate::exporter::telemetry::Warmup;
use crate::state::file::{self, Header, StateFileError};
use crate::state::StateStore;

/// What a start made of a query's state file.
#[derive(Debug)]
pub enum Restore {
    /// The series and their models resumed; only the gap since is fetched.
    Resumed { series: usize },
    /// The series' windows resumed and their models are refitted from them: the model
    /// settings changed, the data did not.
    Refitted { series: usize },
    /// Nothing restored: the history is loaded as on a first start.
    Cold { reason: &'static str, why: String },
}

impl Restore {
    /// The `outcome` label of `foretell_state_restores_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Restore::Resumed { .. } => "restored",
            Restore::Refitted { .. } => "refitted",
            Restore::Cold { reason, .. } => reason,
        }
    }
}

/// What `task` would write now.
fn header(task: &QueryTask, store: &StateStore, now_ms: i64) -> Header {
    let config = &task.config;
    let settings = task.tracker.settings();
    Header {
        query: config.name.clone(),
        expr: config.expr.clone(),
        step_ms: config.step_ms(),
        history_ms: config.history.as_millis() as i64,
        max_series: config.max_series,
        freshness_ms: config.freshness.as_millis() as i64,
        model: settings.model.clone(),
        probability: settings.probability,
        shard: store.shard(),
        written_at_ms: now_ms,
        next_start_ms: task.next_start_ms,
        series: task.tracker.series_count() as u64,
    }
}

/// Writes `task`'s state file (blocking: run it off the async threads). Returns its size.
fn write_file(store: &StateStore, task: &QueryTask, now_ms: i64) -> Result<u64, StateFileError> {
    file::write(
        &store.path(&task.config.name),
        &header(task, store, now_ms),
        task.tracker.saved(),
    )
}

/// Resumes a fresh `task` from its state file when the file is whole and was written for the
/// same data (blocking), with the outputs of its newest evaluated point to publish at once. The
/// task comes back as it was when nothing could be restored.
fn read_file(
    store: &StateStore,
    mut task: QueryTask,
    now_ms: i64,
) -> (QueryTask, Restore, Option<QueryOutput>) {
    let current = header(&task, store, now_ms);
    let saved = match file::read(&store.path(&task.config.name), task.config.max_series) {
        Ok(saved) => saved,
        Err(error) => {
            let reason = error.reason();
            return (
                task,
                Restore::Cold {
                    reason,
                    why: error.to_string(),
                },
                None,
            );
        }
    };
    if let Err(unusable) = store.check(&saved.header, &current, now_ms) {
        let why = match unusable {
            crate::state::Unusable::Changed => {
                "the query's expression, step, history, max_series or freshness changed".into()
            }
            crate::state::Unusable::Shard => format!(
                "it was written by shard {}/{}, this replica is {}/{}",
                saved.header.shard.0, saved.header.shard.1, current.shard.0, current.shard.1
            ),
            crate::state::Unusable::Stale => {
                "its newest point is older than the query's history".into()
            }
        };
        return (
            task,
            Restore::Cold {
                reason: unusable.reason(),
                why,
            },
            None,
        );
    }
    let mut tracker = QueryTracker::new(tracker_settings(&task.config));
    let models = tracker.models_valid_for(&saved.header.model, &saved.header.probability);
    let mut series = 0;
    for (labels, tracked) in saved.series {
        series += usize::from(tracker.restore(labels, tracked, models));
    }
    tracker.postpone_refits(now_ms - saved.header.written_at_ms);
    task.tracker = tracker;
    task.next_start_ms = saved.header.next_start_ms;
    // What the query published at its newest evaluated point, published again at once: a
    // restart shorter than a step must not leave its series off /metrics until the next grid
    // point (Prometheus would mark them stale). Nothing new is taken in.
    let step_ms = task.config.step_ms();
    let output = saved
        .header
        .next_start_ms
        .map(|next| task.tracker.evaluate(Vec::new(), next - step_ms).0);
    let restore = if models {
        Restore::Resumed { series }
    } else {
        Restore::Refitted { series }
    };
    (task, restore, output)
}

/// Resumes a fresh task from its state file on the blocking pool, saying how it went.
pub async fn restore(ctx: &Context, store: &Arc<StateStore>, task: QueryTask) -> QueryTask {
    let name = task.config.name.clone();
    let config = Arc::clone(&task.config);
    let store = Arc::clone(store);
    let now_ms = ctx.clock.now_ms();
    let started = crate::clock::Stopwatch::start();
    let restored = tokio::task::spawn_blocking(move || read_file(&store, task, now_ms)).await;
    let (task, restore) = match restored {
        Ok((task, restore, output)) => {
            if let Some(output) = output {
                ctx.snapshot.publish(output);
            }
            (task, restore)
        }
        Err(panic) => {
            tracing::error!(query = %name, error = %panic, "restoring the state file panicked; loading the history afresh");
            return QueryTask::new(config);
        }
    };
    ctx.telemetry.state_restored(&name, restore.outcome());
    ctx.telemetry.warmup(
        &name,
        match &restore {
            Restore::Resumed { series } => Warmup::Restored { series: *series },
            Restore::Refitted { series } => Warmup::Refitted { series: *series },
            Restore::Cold { reason, .. } => Warmup::Loading {
                state: Some(reason),
            },
        },
    );
    let seconds = started.elapsed().as_secs_f64();
    match &restore {
        Restore::Resumed { series } => {
            tracing::info!(query = %name, series, seconds, "models restored from the state file; fetching the gap since")
        }
        Restore::Refitted { series } => {
            tracing::info!(query = %name, series, seconds, "windows restored from the state file; the model settings changed, so the models are refitted")
        }
        Restore::Cold { reason, why } => {
            if *reason == "missing" {
                tracing::info!(query = %name, "no state file yet; loading the history");
            } else {
                tracing::warn!(query = %name, reason, %why, "state file not used; loading the history afresh");
            }
        }
    }
    task
}

/// Writes the task's state file on the blocking pool; a failure is logged and counted, and
/// the previous file stays.
pub async fn save(ctx: &Context, store: &Arc<StateStore>, task: QueryTask) -> QueryTask {
    let name = task.config.name.clone();
    let config = Arc::clone(&task.config);
    let store = Arc::clone(store);
    let now_ms = ctx.clock.now_ms();
    let saved = tokio::task::spawn_blocking(move || {
        let outcome = write_file(&store, &task, now_ms);
        (task, outcome)
    })
    .await;
    let now_seconds = ctx.clock.now_ms() as f64 / 1000.0;
    match saved {
        Ok((task, Ok(bytes))) => {
            ctx.telemetry.state_written(&name, Some(bytes), now_seconds);
            tracing::debug!(query = %name, bytes, "state file written");
            task
        }
        Ok((task, Err(error))) => {
            ctx.telemetry.state_written(&name, None, now_seconds);
            tracing::warn!(query = %name, %error, "the state file could not be written; the previous one stays");
            task
        }
        Err(panic) => {
            ctx.telemetry.state_written(&name, None, now_seconds);
            tracing::error!(query = %name, error = %panic, "writing the state file panicked");
            QueryTask::new(config)
        }
    }
}
