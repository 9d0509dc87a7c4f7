//! The durable outbox in the audit database: notifications as received, then one delivery per
//! receiver. The SQL is in plain functions on a transaction (tested without a runtime);
//! [`Outbox`] is the stages' handle, which runs each write on the database writer so that the
//! state change commits with the record that describes it. Reads use their own connection
//! (WAL lets them run beside the writer).

use std::path::Path;

use foretell_core::alerts::delivery::RetrySchedule;
use foretell_core::audit::{Arrived, Event};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use crate::audit::ledger::Appender;
use crate::db::{self, DbError};

mod handle;
pub use handle::{Admission, Arrival, Outbox, Settled};

/// Notification states.
pub const RECEIVED: &str = "received";
pub const ROUTED: &str = "routed";
/// Delivery states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

/// Identity of a notification for HA deduplication: group, status and each alert's
/// fingerprint, status and start, in order. Two Alertmanager peers sending the same group
/// produce the same key; `endsAt` and annotations are left out as peers may differ there.
pub fn dedupe_key(notification: &foretell_core::alerts::webhook::Notification) -> String {
    let mut hasher = Sha256::new();
    let mut field = |text: &str| {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    };
    field(&notification.group_key);
    field(status_text(notification.status));
    for alert in &notification.alerts {
        field(&alert.fingerprint);
        field(status_text(alert.status));
        field(&alert.starts_at_ms.to_string());
    }
    foretell_core::audit::keys::encode_hex(&hasher.finalize())
}

pub fn status_text(status: foretell_core::alerts::webhook::AlertStatus) -> &'static str {
    match status {
        foretell_core::alerts::webhook::AlertStatus::Firing => "firing",
        foretell_core::alerts::webhook::AlertStatus::Resolved => "resolved",
    }
}

/// What became of a notification handed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored under this id.
    Stored(i64),
    /// The same notification arrived within the dedupe window; stored earlier under this id.
    Duplicate(i64),
    /// Refused (and audited): this many notifications and deliveries wait already, the limit.
    Overflow { queued: u64 },
}

/// Stores a notification (or notes it as a duplicate) with its audit record, in `transaction`.
#[allow(clippy::too_many_arguments)]
pub fn accept(
    transaction: &Transaction,
    appender: &mut Appender,
    body: &[u8],
    arrived: Arrived,
    dedupe_key: &str,
    dedupe_window_ms: i64,
    max_queued: u64,
    now_ms: i64,
) -> Result<Accepted, rusqlite::Error> {
    let earlier: Option<i64> = transaction
        .query_row(
            "SELECT id FROM notifications WHERE dedupe_key = ?1 AND received_ms >= ?2 \
             ORDER BY id DESC LIMIT 1",
            params![dedupe_key, now_ms.saturating_sub(dedupe_window_ms)],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = earlier {
        appender.append(
            transaction,
            Event::AlertDeduplicated {
                arrived,
                duplicate_of: id,
            }
            .entry(now_ms),
        )?;
        return Ok(Accepted::Duplicate(id));
    }
    // The overflow policy: past the limit new notifications are refused, so Alertmanager keeps
    // them and retries, instead of the disk filling while a receiver is down. What was
    // accepted stays and is delivered.
    let waiting = queued(transaction)?;
    if waiting >= max_queued {
        appender.append(
            transaction,
            Event::AlertRefused {
                arrived,
                queued: i64::try_from(waiting).unwrap_or(i64::MAX),
                max_queued: i64::try_from(max_queued).unwrap_or(i64::MAX),
            }
            .entry(now_ms),
        )?;
        return Ok(Accepted::Overflow { queued: waiting });
    }
    transaction.execute(
        "INSERT INTO notifications (received_ms, group_key, dedupe_key, body, state) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_ms, arrived.group_key, dedupe_key, body, RECEIVED],
    )?;
    let id = transaction.last_insert_rowid();
    appender.append(
        transaction,
        Event::AlertReceived {
            arrived,
            notification: id,
        }
        .entry(now_ms),
    )?;
    Ok(Accepted::Stored(id))
}

/// A stored notification waiting for enrichment.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: i64,
    pub received_ms: i64,
    pub body: Vec<u8>,
}

/// Opens a reading connection on the audit database.
pub fn open_reader(path: &Path) -> Result<Connection, DbError> {
    db::open(path)
}

pub fn received(connection: &Connection, limit: usize) -> Result<Vec<Received>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(
        "SELECT id, received_ms, body FROM notifications WHERE state = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![RECEIVED, limit as i64], |row| {
        Ok(Received {
            id: row.get(0)?,
            received_ms: row.get(1)?,
            body: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// One receiver's copy of a notification.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDelivery {
    pub receiver: String,
    pub body: Vec<u8>,
}

/// Marks a notification routed and queues its deliveries, in `transaction`.
pub fn route(
    transaction: &Transaction,
    notification_id: i64,
    group_key: &str,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> Result<(), rusqlite::Error> {
    let changed = transaction.execute(
        "UPDATE notifications SET state = ?1 WHERE id = ?2 AND state = ?3",
        params![ROUTED, notification_id, RECEIVED],
    )?;
    if changed == 0 {
        // Routed already (a second router pass after a restart); nothing to add.
        return Ok(());
    }
    for delivery in deliveries {
        transaction.execute(
            "INSERT INTO deliveries (notification_id, receiver, group_key, body, state, \
             created_ms, next_attempt_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
            params![
                notification_id,
                delivery.receiver,
                group_key,
                delivery.body,
                PENDING,
                now_ms
            ],
        )?;
    }
    Ok(())
}

/// A delivery waiting for its next attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: i64,
    pub group_key: String,
    pub body: Vec<u8>,
    pub attempts: u32,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    /// When `next_attempt_ms` was set.
    pub scheduled_ms: i64,
}

/// The oldest pending delivery of each group of `receiver`, soonest due first; a later
/// notification of a group waits until the earlier one is delivered or dead-lettered, which
/// keeps the order per `groupKey`. Deliveries that `delivery::is_due` takes as due because the
/// wall clock stepped back since they were scheduled sort as due `now_ms`, so a step cannot
/// push them behind `limit` others.
pub fn heads(
    connection: &Connection,
    receiver: &str,
    now_ms: i64,
    schedule: &RetrySchedule,
    limit: usize,
) -> Result<Vec<Delivery>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(
        "SELECT id, notification_id, group_key, body, attempts, created_ms, next_attempt_ms, \
         updated_ms FROM deliveries d WHERE receiver = ?1 AND state = ?2 AND id = (\
             SELECT min(id) FROM deliveries e \
             WHERE e.receiver = d.receiver AND e.group_key = d.group_key AND e.state = ?2) \
         ORDER BY CASE WHEN updated_ms > ?4 OR next_attempt_ms - ?4 > ?5 THEN ?4 \
                  ELSE next_attempt_ms END, id \
         LIMIT ?3",
    )?;
    let parameters = params![
        receiver,
        PENDING,
        limit as i64,
        now_ms,
        schedule.longest_wait_ms()
    ];
    let rows = statement.query_map(parameters, |row| {
        Ok(Delivery {
            id: row.get(0)?,
            notification_id: row.get(1)?,
            group_key: row.get(2)?,
            body: row.get(3)?,
            attempts: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
            created_ms: row.get(5)?,
            next_attempt_ms: row.get(6)?,
            scheduled_ms: row.get(7)?,
        })
    })?;
    rows.collect()
}

/// Records the end of an attempt: delivered, retry at a time, or dead.
pub fn settle(
    transaction: &Transaction,
    delivery_id: i64,
    state: &str,
    next_attempt_ms: i64,
    now_ms: i64,
    error: Option<&str>,
) -> Result<(), rusqlite::Error> {
    transaction.execute(
        "UPDATE deliveries SET state = ?1, attempts = attempts + 1, next_attempt_ms = ?2, \
         updated_ms = ?3, last_error = ?4 WHERE id = ?5",
        params![state, next_attempt_ms, now_ms, error, delivery_id],
    )?;
    Ok(())
}

/// Deletes notifications received before `before_ms` whose deliveries are all delivered (or
/// that had none: suppressed or unrouted), with their deliveries; dead letters and pending
/// deliveries are kept. The audit records of what happened stay. Returns the notifications
/// deleted.
pub fn purge_settled(transaction: &Transaction, before_ms: i64) -> Result<usize, rusqlite::Error> {
    let settled = "SELECT id FROM notifications n WHERE n.state = ?1 AND n.received_ms < ?2 \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id AND d.state != ?3)";
    transaction.execute(
        &format!("DELETE FROM deliveries WHERE notification_id IN ({settled})"),
        params![ROUTED, before_ms, DELIVERED],
    )?;
    transaction.execute(
        &format!("DELETE FROM notifications WHERE id IN ({settled})"),
        params![ROUTED, before_ms, DELIVERED],
    )
}

/// Notifications waiting to be routed plus deliveries waiting to go out.
pub fn queued(connection: &Connection) -> Result<u64, rusqlite::Error> {
    connection.query_row(
        "SELECT (SELECT count(*) FROM notifications WHERE state = ?1) \
              + (SELECT count(*) FROM deliveries WHERE state = ?2)",
        params![RECEIVED, PENDING],
        |row| Ok(row.get::<_, i64>(0)?.max(0) as u64),
    )
}

/// Pending deliveries and the creation time of the oldest, for self-metrics.
pub fn backlog(connection: &Connection) -> Result<(u64, Option<i64>), rusqlite::Error> {
    connection.query_row(
        "SELECT count(*), min(created_ms) FROM deliveries WHERE state = ?1",
        params![PENDING],
        |row| Ok((row.get::<_, i64>(0)?.max(0) as u64, row.get(1)?)),
    )
}

/// One alert as the status page shows it: its `alert.enriched` record and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentAlert {
    pub at_ms: i64,
    pub alertname: String,
    pub confidence: Option<f64>,
    /// The series it was assessed on, or why it was not.
    pub detail: String,
    pub chart: Option<String>,
    /// Per receiver: `delivered to pager`, `pending for tickets`, `dead letter for chat`,
    /// `suppressed for pager`; `no route matched` when none took it.
    pub outcome: String,
}

/// The newest `limit` enriched alerts, newest first.
pub fn recent_alerts(
    connection: &Connection,
    limit: usize,
) -> Result<Vec<RecentAlert>, rusqlite::Error> {
    let mut enriched = connection.prepare_cached(
        "SELECT ts_ms, subject, details FROM records WHERE kind = 'alert.enriched' \
         AND outcome != 'summarised' ORDER BY seq DESC LIMIT ?1",
    )?;
    let rows: Vec<(i64, String, String)> = enriched
        .query_map(params![limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    // A receiver's copy holds only its alerts; bodies are compact JSON written by the router,
    // so the alert's fingerprint field is found without parsing a body that may be megabytes.
    let mut deliveries = connection.prepare_cached(
        "SELECT receiver, state FROM deliveries WHERE notification_id = ?1 \
         AND instr(body, ?2) > 0 ORDER BY id",
    )?;
    let mut suppressed = connection.prepare_cached(
        "SELECT outcome, details FROM records WHERE kind = 'alert.suppressed' AND subject = ?1 \
         AND ts_ms >= ?2 ORDER BY seq",
    )?;
    let mut alerts = Vec::with_capacity(rows.len());
    for (at_ms, subject, details) in rows {
        let details: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
        let fingerprint = details["fingerprint"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let notification = details["notification"].as_i64().unwrap_or(-1);
        let mut outcomes = Vec::new();
        let held: Vec<(String, serde_json::Value)> = suppressed
            .query_map(params![subject, at_ms], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(outcome, text)| (outcome, serde_json::from_str(&text).unwrap_or_default()))
            .filter(|(_, d): &(String, serde_json::Value)| {
                d["notification"].as_i64() == Some(notification)
            })
            .collect();
        for (outcome, d) in &held {
            match outcome.as_str() {
                "unrouted" => outcomes.push("no route matched".to_owned()),
                _ => outcomes.push(format!(
                    "suppressed for {}",
                    d["receiver"].as_str().unwrap_or("?")
                )),
            }
        }
        let field = format!(
            "\"fingerprint\":{}",
            serde_json::Value::from(fingerprint.as_str())
        );
        let carried: Vec<(String, String)> = deliveries
            .query_map(params![notification, field.as_bytes()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (receiver, state) in carried {
            outcomes.push(match state.as_str() {
                DELIVERED => format!("delivered to {receiver}"),
                DEAD => format!("dead letter for {receiver}"),
                _ => format!("pending for {receiver}"),
            });
        }
        if outcomes.is_empty() {
            outcomes.push("not routed yet".to_owned());
        }
        let confidence = details["confidence"].as_f64();
        let detail = details["series"]
            .as_str()
            .or_else(|| details["reason"].as_str())
            .unwrap_or_default()
            .to_owned();
        alerts.push(RecentAlert {
            at_ms,
            alertname: subject
                .rsplit_once('/')
                .map_or(subject.as_str(), |(name, _)| name)
                .to_owned(),
            confidence,
            detail,
            chart: details["graph"].as_str().map(str::to_owned),
            outcome: outcomes.join("; "),
        });
    }
    Ok(alerts)
}

/// A delivery that will not be retried automatically.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    pub notification_id: i64,
    pub receiver: String,
    pub group_key: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub last_error: Option<String>,
}

pub fn dead_letters(connection: &Connection) -> Result<Vec<DeadLetter>, rusqlite::Error> {
    let mut statement = connection.prepare(
        "SELECT id, notification_id, receiver, group_key, attempts, created_ms, updated_ms, \
         last_error FROM deliveries WHERE state = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map(params![DEAD], |row| {
        Ok(DeadLetter {
            id: row.get(0)?,
            notification_id: row.get(1)?,
            receiver: row.get(2)?,
            group_key: row.get(3)?,
            attempts: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
            created_ms: row.get(5)?,
            updated_ms: row.get(6)?,
            last_error: row.get(7)?,
        })
    })?;
    rows.collect()
}

/// Puts dead letters back in the queue (all, or the ids given), each with its audit record;
/// returns the ids requeued. The give-up age counts again from now.
pub fn requeue_dead_letters(
    transaction: &Transaction,
    appender: &mut Appender,
    ids: Option<&[i64]>,
    actor: &str,
    now_ms: i64,
) -> Result<Vec<i64>, rusqlite::Error> {
    let dead: Vec<(i64, String, String)> = {
        let mut statement = transaction
            .prepare("SELECT id, receiver, group_key FROM deliveries WHERE state = ?1")?;
        let rows = statement.query_map(params![DEAD], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut requeued = Vec::new();
    for (id, receiver, group_key) in dead {
        if ids.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        transaction.execute(
            "UPDATE deliveries SET state = ?1, attempts = 0, created_ms = ?2, \
             next_attempt_ms = ?2, updated_ms = ?2 WHERE id = ?3",
            params![PENDING, now_ms, id],
        )?;
        let record = Event::AlertDeadLetterRetried {
            group_key,
            delivery: id,
            receiver,
        }
        .entry_by(now_ms, actor);
        appender.append(transaction, record)?;
        requeued.push(id);
    }
    Ok(requeued)
}

#[cfg(test)]
mod tests;
