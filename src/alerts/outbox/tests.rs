use super::*;
use crate::db::Database;
use foretell_core::audit::KeyRing;

const SCHEDULE: RetrySchedule = RetrySchedule {
    initial_backoff_ms: 1_000,
    max_backoff_ms: 300_000,
    give_up_after_ms: 86_400_000,
};

fn writer(dir: &tempfile::TempDir) -> (Database, std::path::PathBuf) {
    let path = dir.path().join("audit.db");
    let keys = KeyRing::parse(&format!("k1:{}", "09".repeat(32))).expect("keys");
    (Database::open(&path, keys).expect("open"), path)
}

fn accept_one(writer: &mut Database, group: &str, dedupe: &str, now_ms: i64) -> Accepted {
    accept_within(writer, group, dedupe, now_ms, 10_000)
}

fn accept_within(
    writer: &mut Database,
    group: &str,
    dedupe: &str,
    now_ms: i64,
    max_queued: u64,
) -> Accepted {
    writer
        .transaction(|transaction, appender| {
            accept(
                transaction,
                appender,
                b"{}",
                foretell_core::audit::Arrived {
                    group_key: group.into(),
                    receiver: "foretell".into(),
                    status: "firing".into(),
                    alerts: 0,
                    fingerprints: Vec::new(),
                    bytes: 2,
                },
                dedupe,
                60_000,
                max_queued,
                now_ms,
            )
        })
        .expect("commit")
        .0
}

#[test]
fn past_the_limit_notifications_are_refused_and_audited_but_duplicates_still_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, path) = writer(&dir);
    assert_eq!(
        accept_within(&mut writer, "g", "a", 0, 2),
        Accepted::Stored(1)
    );
    assert_eq!(
        accept_within(&mut writer, "g", "b", 1, 2),
        Accepted::Stored(2)
    );
    assert_eq!(
        accept_within(&mut writer, "g", "c", 2, 2),
        Accepted::Overflow { queued: 2 }
    );
    assert_eq!(
        accept_within(&mut writer, "g", "a", 3, 2),
        Accepted::Duplicate(1),
        "a duplicate adds nothing to the queue"
    );
    let connection = open_reader(&path).expect("reader");
    assert_eq!(queued(&connection).expect("count"), 2);
    let refused: Vec<(String, String)> = connection
        .prepare("SELECT kind, outcome FROM records WHERE kind = 'alert.refused'")
        .expect("query")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(
        refused,
        vec![("alert.refused".to_owned(), "overflow".to_owned())]
    );
}

#[test]
fn the_same_notification_within_the_window_is_a_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, _) = writer(&dir);
    assert_eq!(accept_one(&mut writer, "g", "k", 0), Accepted::Stored(1));
    assert_eq!(
        accept_one(&mut writer, "g", "k", 59_999),
        Accepted::Duplicate(1)
    );
    assert_eq!(
        accept_one(&mut writer, "g", "k", 130_000),
        Accepted::Stored(2),
        "a repeat after the window is a new notification"
    );
    assert_eq!(
        accept_one(&mut writer, "g", "other", 130_001),
        Accepted::Stored(3)
    );
}

#[test]
fn only_the_oldest_pending_delivery_of_a_group_is_a_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, path) = writer(&dir);
    for (n, group) in ["a", "b", "a"].iter().enumerate() {
        let id = match accept_one(&mut writer, group, &n.to_string(), n as i64) {
            Accepted::Stored(id) => id,
            other => panic!("{other:?}"),
        };
        writer
            .transaction(|transaction, _| {
                route(
                    transaction,
                    id,
                    group,
                    &[NewDelivery {
                        receiver: "r".into(),
                        body: vec![],
                    }],
                    10,
                )
            })
            .expect("route");
    }
    let reader = open_reader(&path).expect("reader");
    let first: Vec<(i64, String)> = heads(&reader, "r", 15, &SCHEDULE, 10)
        .expect("heads")
        .into_iter()
        .map(|d| (d.id, d.group_key))
        .collect();
    assert_eq!(first, vec![(1, "a".into()), (2, "b".into())]);
    writer
        .transaction(|transaction, _| settle(transaction, 1, DELIVERED, 20, 20, None))
        .expect("settle");
    let then: Vec<i64> = heads(&reader, "r", 25, &SCHEDULE, 10)
        .expect("heads")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        then,
        vec![2, 3],
        "the next of group a moves up once the first is done"
    );
    assert_eq!(backlog(&reader).expect("backlog"), (2, Some(10)));
}

#[test]
fn a_delivery_scheduled_before_the_clock_stepped_back_comes_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, path) = writer(&dir);
    for group in ["a", "b"] {
        let Accepted::Stored(id) = accept_one(&mut writer, group, group, 10) else {
            panic!("not stored");
        };
        writer
            .transaction(|transaction, _| {
                let delivery = [NewDelivery {
                    receiver: "r".into(),
                    body: vec![],
                }];
                route(transaction, id, group, &delivery, 10)
            })
            .expect("route");
    }
    // Delivery 1 was set at 500 for 1,000; delivery 2 at 100 for 200; the clock now reads 150.
    writer
        .transaction(|transaction, _| {
            settle(transaction, 1, PENDING, 1_000, 500, Some("HTTP 503"))?;
            settle(transaction, 2, PENDING, 200, 100, Some("HTTP 503"))
        })
        .expect("settle");
    let reader = open_reader(&path).expect("reader");
    let first: Vec<i64> = heads(&reader, "r", 150, &SCHEDULE, 1)
        .expect("heads")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(first, vec![1], "due now, not after the step");
    let later: Vec<i64> = heads(&reader, "r", 600, &SCHEDULE, 2)
        .expect("heads")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(later, vec![2, 1], "soonest due first otherwise");
}

#[test]
fn routing_twice_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, path) = writer(&dir);
    accept_one(&mut writer, "g", "k", 0);
    let delivery = [NewDelivery {
        receiver: "r".into(),
        body: vec![],
    }];
    for _ in 0..2 {
        writer
            .transaction(|transaction, _| route(transaction, 1, "g", &delivery, 1))
            .expect("route");
    }
    let reader = open_reader(&path).expect("reader");
    assert_eq!(backlog(&reader).expect("backlog").0, 1);
    assert!(received(&reader, 10).expect("received").is_empty());
}

#[test]
fn only_old_fully_delivered_notifications_are_purged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, path) = writer(&dir);
    // 1: old, delivered. 2: old, dead letter. 3: new, delivered. 4: old, suppressed (no delivery).
    for (n, received_ms) in [(1, 0), (2, 0), (3, 50_000), (4, 0)] {
        accept_one(&mut writer, "g", &n.to_string(), received_ms);
        let deliveries = if n == 4 {
            vec![]
        } else {
            vec![NewDelivery {
                receiver: "r".into(),
                body: vec![],
            }]
        };
        writer
            .transaction(|transaction, _| route(transaction, n, "g", &deliveries, received_ms))
            .expect("route");
    }
    writer
        .transaction(|transaction, _| {
            settle(transaction, 1, DELIVERED, 1, 1, None)?;
            settle(transaction, 2, DEAD, 1, 1, Some("HTTP 400"))?;
            settle(transaction, 3, DELIVERED, 1, 1, None)
        })
        .expect("settle");
    let purged = writer
        .transaction(|transaction, _| purge_settled(transaction, 10_000))
        .expect("purge")
        .0;
    assert_eq!(purged, 2);
    let reader = open_reader(&path).expect("reader");
    let left: Vec<i64> = reader
        .prepare("SELECT id FROM notifications ORDER BY id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(left, vec![2, 3], "the dead letter and the recent one stay");
    assert_eq!(dead_letters(&reader).expect("dead").len(), 1);
}
