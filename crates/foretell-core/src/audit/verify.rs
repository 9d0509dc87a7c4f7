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
//!   an older copy. A chain alone cannot see that;
//! - a head pinned by its MAC as well (`--expect-head SEQ:MAC`, or
//!   `foretell_audit_head_mac_prefix` in Prometheus) whose record now has another MAC, or a
//!   record in which foretell itself noted that its head went backwards, means the log was
//!   **rolled back** and written again past the cut;
//! - a file with no record at all is **empty** (every record deleted, the table dropped), and
//!   one that holds no audit log (a zero-byte file, another program's database) is **not a
//!   log**: neither is ever reported clean.

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
    RolledBack,
    Empty,
    NotALog,
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
            ProblemClass::RolledBack => "rolled back",
            ProblemClass::Empty => "empty",
            ProblemClass::NotALog => "not a log",
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

impl Default for ChainStart {
    fn default() -> Self {
        ChainStart::GENESIS
    }
}

/// The kind of record foretell appends when it opens a log whose head is behind the head it
/// had written (records deleted, an older copy restored): the sequence numbers in between are
/// never reused, so the gap stays visible to every later verification.
pub const HEAD_WENT_BACKWARDS_KIND: &str = super::EventKind::AuditHeadWentBackwards.as_str();

/// Bytes of a MAC that `foretell_audit_head_mac_prefix` carries: 48 bits, exact in the float64
/// of a Prometheus sample, and beyond any guess by someone without the key.
pub const MAC_PREFIX_BYTES: usize = 6;

/// The first [`MAC_PREFIX_BYTES`] of a MAC as an integer, as the head's MAC is exported.
pub fn mac_prefix_value(mac: &[u8; MAC_BYTES]) -> u64 {
    mac[..MAC_PREFIX_BYTES]
        .iter()
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
}

/// The head as recorded somewhere the log's writer cannot reach: its sequence number and,
/// optionally, the first bytes of its MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedHead {
    pub seq: u64,
    pub mac_prefix: Option<Vec<u8>>,
}

impl ExpectedHead {
    /// Reads `SEQ` or `SEQ:MAC`, where MAC is the decimal value of
    /// `foretell_audit_head_mac_prefix` (at most 15 digits) or at least 16 hex digits of the
    /// record's MAC as `foretell audit show` prints it.
    pub fn parse(text: &str) -> Result<ExpectedHead, String> {
        let (seq_text, mac_text) = match text.split_once(':') {
            Some((seq, mac)) => (seq, Some(mac)),
            None => (text, None),
        };
        let seq = seq_text.trim().parse::<u64>().map_err(|_| {
            format!("`{seq_text}` is not a sequence number; expected SEQ or SEQ:MAC")
        })?;
        let mac_prefix = match mac_text.map(str::trim) {
            None => None,
            Some(mac)
                if !mac.is_empty()
                    && mac.len() <= 15
                    && mac.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let value: u64 = mac
                    .parse()
                    .map_err(|_| format!("`{mac}` is not a MAC prefix"))?;
                if value >= 1 << (8 * MAC_PREFIX_BYTES) {
                    return Err(format!(
                        "`{mac}` is larger than a {}-byte MAC prefix (foretell_audit_head_mac_prefix)",
                        MAC_PREFIX_BYTES
                    ));
                }
                Some(value.to_be_bytes()[8 - MAC_PREFIX_BYTES..].to_vec())
            }
            Some(mac) => {
                let bytes = super::keys::decode_hex(mac)
                    .filter(|bytes| bytes.len() >= 8 && bytes.len() <= MAC_BYTES)
                    .ok_or_else(|| {
                        format!("`{mac}` is neither the decimal foretell_audit_head_mac_prefix nor 16 to 64 hex digits of a MAC")
                    })?;
                Some(bytes)
            }
        };
        Ok(ExpectedHead { seq, mac_prefix })
    }
}

impl From<u64> for ExpectedHead {
    fn from(seq: u64) -> Self {
        ExpectedHead {
            seq,
            mac_prefix: None,
        }
    }
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
/// head against `expect_head` when given. Holds the records in memory; a stored log is checked
/// in one streaming pass with [`Verifier`].
pub fn verify(
    log_id: &str,
    records: &[Record],
    keys: &KeyRing,
    start: ChainStart,
    expect_head: Option<ExpectedHead>,
) -> Verification {
    let mut verifier = Verifier::new(log_id, keys, start, expect_head);
    for record in records {
        verifier.push(record);
    }
    verifier.finish()
}

/// Key ids listed at most when no record verifies (a log names one or two).
const MAX_KEY_IDS_NAMED: usize = 16;

/// A verification fed one record at a time in storage order, in memory that does not grow
/// with the log: the first problem is found in order, and the few facts that classify it
/// (whether its successor still links to it, whether a skipped sequence number turns up
/// later, whether any record verifies at all) are gathered as the rest streams past.
pub struct Verifier<'k> {
    log_id: String,
    keys: &'k KeyRing,
    start: ChainStart,
    expect_head: Option<ExpectedHead>,
    /// Records pushed so far.
    position: usize,
    expected_seq: u64,
    expected_prev: [u8; MAC_BYTES],
    result: Verification,
    /// Whether any record's MAC verifies, and the key ids the log names.
    any_valid: bool,
    key_ids: std::collections::BTreeSet<String>,
    /// Whether a checked record is the signed anchor of the prune the chain starts after.
    anchored: bool,
    /// Whether the checked record at the pinned head's seq carries the pinned MAC.
    pinned_matches: Option<bool>,
    pending: Option<Pending>,
}

/// A problem found whose class depends on records after it.
enum Pending {
    /// A record whose MAC fails: modified in place if its successor links to its MAC,
    /// inserted if the chain runs past it.
    BadMac {
        position: usize,
        seq: u64,
        mac: [u8; MAC_BYTES],
        expected_seq: u64,
    },
    /// Sequence numbers skipped before `seq`: reordered if the first of them comes later,
    /// missing otherwise.
    Skipped {
        position: usize,
        seq: u64,
        expected_seq: u64,
        found_later: bool,
    },
}

impl<'k> Verifier<'k> {
    pub fn new(
        log_id: &str,
        keys: &'k KeyRing,
        start: ChainStart,
        expect_head: Option<ExpectedHead>,
    ) -> Verifier<'k> {
        Verifier {
            log_id: log_id.to_owned(),
            keys,
            start,
            expect_head,
            position: 0,
            expected_seq: start.after_seq + 1,
            expected_prev: start.prev_mac,
            result: Verification {
                checked: 0,
                head_seq: start.after_seq,
                problem: None,
            },
            any_valid: false,
            key_ids: std::collections::BTreeSet::new(),
            anchored: false,
            pinned_matches: None,
            pending: None,
        }
    }

    /// Takes the next record in storage order.
    pub fn push(&mut self, record: &Record) {
        let position = self.position;
        self.position += 1;
        let validity = mac_is_valid(record, self.keys);
        self.any_valid |= validity == Some(true);
        // Looked up before cloning: a log names one or two ids, read once per record.
        if self.key_ids.len() < MAX_KEY_IDS_NAMED && !self.key_ids.contains(&record.key_id) {
            self.key_ids.insert(record.key_id.clone());
        }
        match &mut self.pending {
            Some(Pending::BadMac {
                position: at,
                seq,
                mac,
                ..
            }) => {
                let problem = if record.prev_mac == *mac {
                    modified(*at, *seq)
                } else {
                    inserted(*at, *seq)
                };
                self.result.problem = Some(problem);
                self.pending = None;
                return;
            }
            Some(Pending::Skipped {
                expected_seq,
                found_later,
                ..
            }) => {
                *found_later |= record.seq == *expected_seq;
                return;
            }
            None => {}
        }
        if self.result.problem.is_some() {
            return;
        }
        let problem = |class: ProblemClass, message: String| Problem {
            class,
            position: Some(position),
            message,
        };
        let seq = record.seq;
        let expected_seq = self.expected_seq;
        if record.log_id != self.log_id {
            self.result.problem = Some(problem(
                ProblemClass::ForeignLog,
                format!(
                    "the record at position {position} (seq {seq}) belongs to log {}, not {}",
                    record.log_id, self.log_id
                ),
            ));
            return;
        }
        match validity {
            None => {
                self.result.problem = Some(problem(
                    ProblemClass::WrongKey,
                    format!(
                        "record seq {seq} is signed with key `{}`, which the key file does not hold",
                        record.key_id
                    ),
                ));
                return;
            }
            Some(false) => {
                self.pending = Some(Pending::BadMac {
                    position,
                    seq,
                    mac: record.mac,
                    expected_seq,
                });
                return;
            }
            Some(true) => {}
        }
        if seq > expected_seq {
            if record.entry.kind == HEAD_WENT_BACKWARDS_KIND {
                self.result.problem = Some(problem(
                    ProblemClass::RolledBack,
                    format!(
                        "records seq {expected_seq}..{} are gone: the log was rolled back to seq {} and foretell, finding its head behind the one it had written, recorded so at seq {seq}",
                        seq - 1,
                        expected_seq - 1
                    ),
                ));
            } else {
                self.pending = Some(Pending::Skipped {
                    position,
                    seq,
                    expected_seq,
                    found_later: false,
                });
            }
            return;
        }
        if seq < expected_seq {
            self.result.problem = Some(problem(
                ProblemClass::Reordered,
                format!("record seq {seq} is stored after seq {}", expected_seq - 1),
            ));
            return;
        }
        if record.prev_mac != self.expected_prev {
            self.result.problem = Some(problem(
                ProblemClass::Modified,
                format!("record seq {seq} does not link to the record before it"),
            ));
            return;
        }
        self.result.checked += 1;
        self.result.head_seq = seq;
        self.expected_seq = seq + 1;
        self.expected_prev = record.mac;
        if self.start.after_seq > 0 && !self.anchored {
            self.anchored = Anchor::parse(&record.entry).is_some_and(|anchor| {
                anchor.through_seq == self.start.after_seq
                    && anchor.through_mac == self.start.prev_mac
            });
        }
        if let Some(expected) = &self.expect_head {
            if expected.seq == seq {
                self.pinned_matches = Some(
                    expected
                        .mac_prefix
                        .as_ref()
                        .is_none_or(|prefix| record.mac.starts_with(prefix)),
                );
            }
        }
    }

    /// The outcome once every record was pushed.
    pub fn finish(mut self) -> Verification {
        if self.position == 0 {
            self.result.problem = Some(Problem {
                class: ProblemClass::Empty,
                position: None,
                message: "the log holds no record: every record was deleted (or foretell stopped before writing its first)".into(),
            });
            return self.result;
        }
        if !self.any_valid {
            self.result.checked = 0;
            self.result.head_seq = self.start.after_seq;
            self.result.problem = Some(Problem {
                class: ProblemClass::WrongKey,
                position: Some(0),
                message: format!(
                    "none of the {} records verifies with the keys given ({}); the log names key ids {}",
                    self.position,
                    self.keys.ids().collect::<Vec<_>>().join(", "),
                    self.key_ids.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
            return self.result;
        }
        match self.pending.take() {
            Some(Pending::BadMac {
                position,
                seq,
                expected_seq,
                ..
            }) => {
                // The newest record: modified when it is where the chain expects it.
                self.result.problem = Some(if seq == expected_seq {
                    modified(position, seq)
                } else {
                    inserted(position, seq)
                });
            }
            Some(Pending::Skipped {
                position,
                seq,
                expected_seq,
                found_later,
            }) => {
                self.result.problem = Some(Problem {
                    class: if found_later {
                        ProblemClass::Reordered
                    } else {
                        ProblemClass::Missing
                    },
                    position: Some(position),
                    message: if found_later {
                        format!("record seq {seq} is stored where seq {expected_seq} belongs; {expected_seq} comes later")
                    } else {
                        format!(
                            "records seq {expected_seq}..{} are missing before seq {seq}",
                            seq - 1
                        )
                    },
                });
            }
            None => {}
        }
        if self.result.problem.is_some() {
            return self.result;
        }
        if self.start.after_seq > 0 && !self.anchored {
            // A log that starts late must hold the signed anchor of the prune that cut it there.
            self.result.problem = Some(Problem {
                class: ProblemClass::Missing,
                position: None,
                message: format!(
                    "records up to seq {} are gone and no signed prune anchor accounts for them",
                    self.start.after_seq
                ),
            });
            return self.result;
        }
        if let Some(expected) = &self.expect_head {
            if self.result.head_seq < expected.seq {
                self.result.problem = Some(Problem {
                    class: ProblemClass::Truncated,
                    position: None,
                    message: format!(
                        "the newest record is seq {}, but seq {} was written: the tail was cut off or an older copy restored",
                        self.result.head_seq, expected.seq
                    ),
                });
            } else if expected.mac_prefix.is_some()
                && expected.seq > self.start.after_seq
                && self.pinned_matches != Some(true)
            {
                self.result.problem = Some(Problem {
                    class: ProblemClass::RolledBack,
                    position: None,
                    message: format!(
                        "record seq {} does not carry the MAC it was written with: the log was rolled back and written again past the cut",
                        expected.seq
                    ),
                });
            }
        }
        self.result
    }
}

fn modified(position: usize, seq: u64) -> Problem {
    Problem {
        class: ProblemClass::Modified,
        position: Some(position),
        message: format!(
            "record seq {seq} was changed after it was signed (its MAC does not match its content)"
        ),
    }
}

fn inserted(position: usize, seq: u64) -> Problem {
    Problem {
        class: ProblemClass::Inserted,
        position: Some(position),
        message: format!("the record at position {position} (claiming seq {seq}) was not signed by this log's key and the chain runs past it"),
    }
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
        let outcome = verify("L", &records, &keys, ChainStart::GENESIS, Some(10.into()));
        assert_eq!(
            outcome,
            Verification {
                checked: 10,
                head_seq: 10,
                problem: None
            }
        );
        // Issue 16, item 6: a log with every record deleted was reported clean.
        let empty = verify("L", &[], &keys, ChainStart::GENESIS, None);
        assert_eq!(
            (empty.checked, class(&empty)),
            (0, Some(ProblemClass::Empty))
        );
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
        let outcome = verify("L", &records, &keys, ChainStart::GENESIS, Some(3.into()));
        assert_eq!((outcome.checked, outcome.problem), (3, None));
    }

    #[test]
    fn each_kind_of_tampering_gets_its_class() {
        let keys = keys(&[("k1", 1)]);
        let records = log(&keys, "L", 10);
        let check = |records: &[Record], expect_head: Option<u64>| {
            verify(
                "L",
                records,
                &keys,
                ChainStart::GENESIS,
                expect_head.map(Into::into),
            )
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

    /// Issue 16, item 5: seq 17-19 of 19 deleted and the log continued from 16 printed OK for
    /// `--expect-head 19`. Pinned by its MAC too, the rewritten head is seen; and foretell's
    /// own record of a head that went backwards is a rolled-back log forever after.
    #[test]
    fn a_head_pinned_by_its_mac_sees_a_rollback_written_over() {
        let keys = keys(&[("k1", 1)]);
        let original = log(&keys, "L", 19);
        let pin = |seq: usize| ExpectedHead {
            seq: seq as u64,
            mac_prefix: Some(original[seq - 1].mac[..MAC_PREFIX_BYTES].to_vec()),
        };
        assert_eq!(
            verify("L", &original, &keys, ChainStart::GENESIS, Some(pin(19))).problem,
            None
        );
        // Rolled back to 16 and written again: 17, 18, 19 carry other MACs.
        let mut rewritten = original[..16].to_vec();
        let mut chain = Chain::resume("L", 16, original[15].mac);
        for i in 0..3 {
            let record = chain.next(&keys, entry(100 + i));
            chain.commit(&record);
            rewritten.push(record);
        }
        assert_eq!(
            verify("L", &rewritten, &keys, ChainStart::GENESIS, Some(19.into())).problem,
            None,
            "the number alone cannot see it"
        );
        let outcome = verify("L", &rewritten, &keys, ChainStart::GENESIS, Some(pin(19)));
        assert_eq!(class(&outcome), Some(ProblemClass::RolledBack));
        // foretell noticed the rollback when it reopened the log: it went on at 20.
        let mut noticed = original[..16].to_vec();
        let mut chain = Chain::resume("L", 19, original[15].mac);
        let mut note = entry(200);
        note.kind = HEAD_WENT_BACKWARDS_KIND.into();
        let record = chain.next(&keys, note);
        chain.commit(&record);
        noticed.push(record);
        let outcome = verify("L", &noticed, &keys, ChainStart::GENESIS, None);
        assert_eq!(class(&outcome), Some(ProblemClass::RolledBack));
        assert!(outcome
            .problem
            .expect("problem")
            .message
            .contains("seq 17..19 are gone"),);
    }

    #[test]
    fn expected_heads_read_seq_and_either_mac_form() {
        let mac: [u8; MAC_BYTES] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let decimal = format!("42:{}", mac_prefix_value(&mac));
        let from_metric = ExpectedHead::parse(&decimal).expect("decimal");
        assert_eq!(from_metric.seq, 42);
        assert!(mac.starts_with(from_metric.mac_prefix.as_deref().expect("prefix")));
        let hex = format!("42:{}", crate::audit::keys::encode_hex(&mac));
        assert_eq!(
            ExpectedHead::parse(&hex).expect("hex").mac_prefix,
            Some(mac.to_vec())
        );
        assert_eq!(ExpectedHead::parse("7").expect("seq"), 7.into());
        for bad in ["x", "7:", "7:zz", "7:abcdef", "7:999999999999999"] {
            assert!(ExpectedHead::parse(bad).is_err(), "{bad}");
        }
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
            verify("L", &records, &both, ChainStart::GENESIS, Some(6.into())).problem,
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
        let outcome = verify("L", &records[4..], &keys, start, Some(11.into()));
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
