//! Checking a stored log: every record's MAC, its place in the chain, and the head.
//!
//! Records are checked in storage order (the order they were appended in), not sorted by
//! sequence number, so that rows moved around are seen as moved. The first problem is reported
//! with a class that says what happened to the log, as far as the evidence allows:
//!
//! - a record whose MAC fails but whose successor still links to its MAC was **modified** in
//!   place; one whose successor links past it was **inserted**;
//! - a valid record after a gap in the sequence means records are **missing**, or
//!   **reordered** when the skipped numbers turn up later;
//! - a record naming another log's id was spliced in from a **foreign log**;
//! - no record verifying at all, or one signed with a key id the verifier lacks, is a
//!   **wrong key**;
//! - a head below what an independent record of it says (`--expect-head`, or
//!   `foretell_audit_head_seq` in Prometheus) means the log was **truncated** or rolled back to
//!   an older copy. A chain alone cannot see that.

use std::collections::HashSet;
use std::fmt;

use super::anchor::Anchor;
use super::keys::KeyRing;
use super::record::{mac_is_valid, Record, GENESIS_MAC, MAC_BYTES};

/// What kind of tampering (or mistake) a problem points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemClass {
    Modified,
    Missing,
    Inserted,
    Reordered,
    Truncated,
    WrongKey,
    ForeignLog,
}

impl ProblemClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemClass::Modified => "modified",
            ProblemClass::Missing => "missing",
            ProblemClass::Inserted => "inserted",
            ProblemClass::Reordered => "reordered",
            ProblemClass::Truncated => "truncated",
            ProblemClass::WrongKey => "wrong key",
            ProblemClass::ForeignLog => "foreign log",
        }
    }
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub class: ProblemClass,
    /// Position in storage order (0 = oldest stored row), when the problem is at a row.
    pub position: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.message)
    }
}

/// Where the chain legitimately begins: after `seq` with MAC `mac` (a pruned log), or at the
/// genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainStart {
    pub after_seq: u64,
    pub prev_mac: [u8; MAC_BYTES],
}

impl ChainStart {
    pub const GENESIS: ChainStart = ChainStart {
        after_seq: 0,
        prev_mac: GENESIS_MAC,
    };
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Records checked and found in order before the first problem (all of them when none).
    pub checked: u64,
    /// Sequence number of the newest valid record in order.
    pub head_seq: u64,
    pub problem: Option<Problem>,
}

/// Verifies `records` (storage order) of log `log_id` against `keys`, from `start`, and the
/// head against `expect_head` when given.
pub fn verify(
    log_id: &str,
    records: &[Record],
    keys: &KeyRing,
    start: ChainStart,
    expect_head: Option<u64>,
) -> Verification {
    let mut result = Verification {
        checked: 0,
        head_seq: start.after_seq,
        problem: None,
    };
    let validity: Vec<Option<bool>> = records.iter().map(|r| mac_is_valid(r, keys)).collect();
    if !records.is_empty() && !validity.contains(&Some(true)) {
        let mut used: Vec<&str> = records.iter().map(|r| r.key_id.as_str()).collect();
        used.sort_unstable();
        used.dedup();
        result.problem = Some(Problem {
            class: ProblemClass::WrongKey,
            position: Some(0),
            message: format!(
                "none of the {} records verifies with the keys given ({}); the log names key ids {}",
                records.len(),
                keys.ids().collect::<Vec<_>>().join(", "),
                used.join(", ")
            ),
        });
        return result;
    }
    let present: HashSet<u64> = records.iter().map(|r| r.seq).collect();
    let mut expected_seq = start.after_seq + 1;
    let mut expected_prev = start.prev_mac;
    for (position, record) in records.iter().enumerate() {
        let problem = |class: ProblemClass, message: String| Problem {
            class,
            position: Some(position),
            message,
        };
        let seq = record.seq;
        if record.log_id != log_id {
            result.problem = Some(problem(
                ProblemClass::ForeignLog,
                format!(
                    "the record at position {position} (seq {seq}) belongs to log {}, not {log_id}",
                    record.log_id
                ),
            ));
            return result;
        }
        match validity[position] {
            None => {
                result.problem = Some(problem(
                    ProblemClass::WrongKey,
                    format!(
                        "record seq {seq} is signed with key `{}`, which the key file does not hold",
                        record.key_id
                    ),
                ));
                return result;
            }
            Some(false) => {
                let successor_links = records
                    .get(position + 1)
                    .map_or(seq == expected_seq, |next| next.prev_mac == record.mac);
                result.problem = Some(if successor_links {
                    problem(
                        ProblemClass::Modified,
                        format!("record seq {seq} was changed after it was signed (its MAC does not match its content)"),
                    )
                } else {
                    problem(
                        ProblemClass::Inserted,
                        format!("the record at position {position} (claiming seq {seq}) was not signed by this log's key and the chain runs past it"),
                    )
                });
                return result;
            }
            Some(true) => {}
        }
        if seq > expected_seq {
            result.problem = Some(if present.contains(&expected_seq) {
                problem(
                    ProblemClass::Reordered,
                    format!("record seq {seq} is stored where seq {expected_seq} belongs; {expected_seq} comes later"),
                )
            } else {
                problem(
                    ProblemClass::Missing,
                    format!(
                        "records seq {expected_seq}..{} are missing before seq {seq}",
                        seq - 1
                    ),
                )
            });
            return result;
        }
        if seq < expected_seq {
            result.problem = Some(problem(
                ProblemClass::Reordered,
                format!("record seq {seq} is stored after seq {}", expected_seq - 1),
            ));
            return result;
        }
        if record.prev_mac != expected_prev {
            result.problem = Some(problem(
                ProblemClass::Modified,
                format!("record seq {seq} does not link to the record before it"),
            ));
            return result;
        }
        result.checked += 1;
        result.head_seq = seq;
        expected_seq = seq + 1;
        expected_prev = record.mac;
    }
    if start.after_seq > 0 {
        // A log that starts late must hold the signed anchor of the prune that cut it there.
        let anchored = records[..result.checked as usize].iter().any(|record| {
            Anchor::parse(&record.entry).is_some_and(|anchor| {
                anchor.through_seq == start.after_seq && anchor.through_mac == start.prev_mac
            })
        });
        if !anchored {
            result.problem = Some(Problem {
                class: ProblemClass::Missing,
                position: None,
                message: format!(
                    "records up to seq {} are gone and no signed prune anchor accounts for them",
                    start.after_seq
                ),
            });
            return result;
        }
    }
    if let Some(expected) = expect_head {
        if result.head_seq < expected {
            result.problem = Some(Problem {
                class: ProblemClass::Truncated,
                position: None,
                message: format!(
                    "the newest record is seq {}, but seq {expected} was written: the tail was cut off or an older copy restored",
                    result.head_seq
                ),
            });
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::keys::KeyRing;
    use crate::audit::record::{sign, Chain, Entry};

    fn keys(text_ids: &[(&str, u8)]) -> KeyRing {
        let text: Vec<String> = text_ids
            .iter()
            .map(|(id, byte)| format!("{id}:{}", format!("{byte:02x}").repeat(32)))
            .collect();
        KeyRing::parse(&text.join("\n")).expect("valid")
    }

    fn entry(i: usize) -> Entry {
        Entry {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            kind: "alert.forwarded".into(),
            actor: "foretell".into(),
            subject: format!("fp{i}"),
            outcome: "ok".into(),
            details: format!(r#"{{"n":{i}}}"#),
        }
    }

    fn log(keys: &KeyRing, log_id: &str, count: usize) -> Vec<Record> {
        let mut chain = Chain::resume(log_id, 0, GENESIS_MAC);
        (0..count)
            .map(|i| {
                let record = chain.next(keys, entry(i));
                chain.commit(&record);
                record
            })
            .collect()
    }

    fn class(outcome: &Verification) -> Option<ProblemClass> {
        outcome.problem.as_ref().map(|p| p.class)
    }

    #[test]
    fn an_intact_log_verifies_to_its_head() {
        let keys = keys(&[("k1", 1)]);
        let records = log(&keys, "L", 10);
        let outcome = verify("L", &records, &keys, ChainStart::GENESIS, Some(10));
        assert_eq!(
            outcome,
            Verification {
                checked: 10,
                head_seq: 10,
                problem: None
            }
        );
        let empty = verify("L", &[], &keys, ChainStart::GENESIS, None);
        assert_eq!((empty.checked, empty.problem), (0, None));
    }

    #[test]
    fn records_are_ordered_by_sequence_so_a_wall_clock_stepping_back_is_no_tampering() {
        let keys = keys(&[("k1", 1)]);
        let mut chain = Chain::resume("L", 0, GENESIS_MAC);
        let steps = [0, -3_600_000, 86_400_000];
        let records: Vec<Record> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut entry = entry(i);
                entry.timestamp_ms += step;
                let record = chain.next(&keys, entry);
                chain.commit(&record);
                record
            })
            .collect();
        let outcome = verify("L", &records, &keys, ChainStart::GENESIS, Some(3));
        assert_eq!((outcome.checked, outcome.problem), (3, None));
    }

    #[test]
    fn each_kind_of_tampering_gets_its_class() {
        let keys = keys(&[("k1", 1)]);
        let records = log(&keys, "L", 10);
        let check = |records: &[Record], expect_head: Option<u64>| {
            verify("L", records, &keys, ChainStart::GENESIS, expect_head)
        };

        let mut modified = records.clone();
        modified[4].entry.details = r#"{"n":999}"#.into();
        let outcome = check(&modified, None);
        assert_eq!(class(&outcome), Some(ProblemClass::Modified));
        assert_eq!(outcome.checked, 4);

        let mut deleted = records.clone();
        deleted.remove(4);
        let outcome = check(&deleted, None);
        assert_eq!(class(&outcome), Some(ProblemClass::Missing));
        assert!(outcome
            .problem
            .expect("problem")
            .message
            .contains("seq 5..5"));

        let mut swapped = records.clone();
        swapped.swap(3, 6);
        assert_eq!(class(&check(&swapped, None)), Some(ProblemClass::Reordered));

        let forger = self::keys(&[("k1", 2)]);
        let mut inserted = records.clone();
        let forged = sign(forger.active(), "L", 5, entry(99), records[3].mac);
        inserted.insert(4, forged);
        assert_eq!(class(&check(&inserted, None)), Some(ProblemClass::Inserted));

        let truncated = &records[..7];
        assert_eq!(
            check(truncated, None).problem,
            None,
            "a chain alone cannot see a cut tail"
        );
        let outcome = check(truncated, Some(10));
        assert_eq!(class(&outcome), Some(ProblemClass::Truncated));
        assert_eq!(outcome.head_seq, 7);

        let other_log = log(&keys, "M", 10);
        let mut spliced = records.clone();
        spliced[5] = other_log[5].clone();
        assert_eq!(
            class(&check(&spliced, None)),
            Some(ProblemClass::ForeignLog)
        );

        let wrong = self::keys(&[("k1", 3)]);
        let outcome = verify("L", &records, &wrong, ChainStart::GENESIS, None);
        assert_eq!(class(&outcome), Some(ProblemClass::WrongKey));
        assert_eq!(outcome.checked, 0);
    }

    #[test]
    fn a_rotated_log_needs_every_key_it_was_signed_with() {
        let old = keys(&[("k1", 1)]);
        let both = keys(&[("k1", 1), ("k2", 2)]);
        let mut chain = Chain::resume("L", 0, GENESIS_MAC);
        let mut records = Vec::new();
        for i in 0..6 {
            let ring = if i < 3 { &old } else { &both };
            let record = chain.next(ring, entry(i));
            chain.commit(&record);
            records.push(record);
        }
        assert_eq!(records[3].key_id, "k2");
        assert_eq!(
            verify("L", &records, &both, ChainStart::GENESIS, Some(6)).problem,
            None
        );
        let outcome = verify("L", &records, &old, ChainStart::GENESIS, None);
        assert_eq!(class(&outcome), Some(ProblemClass::WrongKey));
        assert_eq!(outcome.checked, 3);
    }

    #[test]
    fn a_pruned_log_verifies_from_its_signed_anchor_only() {
        let keys = keys(&[("k1", 1)]);
        let mut records = log(&keys, "L", 10);
        let anchor = Anchor {
            through_seq: 4,
            through_mac: records[3].mac,
            removed: 4,
        };
        let chain = Chain::resume("L", 10, records[9].mac);
        let record = chain.next(&keys, anchor.entry(5, "admin"));
        records.push(record);
        let start = ChainStart {
            after_seq: 4,
            prev_mac: records[3].mac,
        };
        let outcome = verify("L", &records[4..], &keys, start, Some(11));
        assert_eq!((outcome.checked, outcome.problem), (7, None));
        // Without the start the same rows look like the first four went missing.
        let outcome = verify("L", &records[4..], &keys, ChainStart::GENESIS, None);
        assert_eq!(class(&outcome), Some(ProblemClass::Missing));
        // A start that no anchor vouches for (someone deleted more and moved the start) fails.
        let moved = ChainStart {
            after_seq: 6,
            prev_mac: records[5].mac,
        };
        let outcome = verify("L", &records[6..], &keys, moved, None);
        assert_eq!(class(&outcome), Some(ProblemClass::Missing));
        assert!(outcome
            .problem
            .expect("problem")
            .message
            .contains("no signed prune anchor"));
    }
}
