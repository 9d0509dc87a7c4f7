//! Audit records and their signature.
//!
//! The MAC of a record is HMAC-SHA256 over a canonical byte encoding of every field but the MAC
//! itself: a version tag, then each field as an 8-byte big-endian length and its bytes, in a
//! fixed order. The encoding includes the log's random id, the sequence number and the
//! previous record's MAC, so a record cannot be edited, moved to another position, or moved
//! into another log without its MAC failing, and each MAC vouches for the whole chain before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::{AuditKey, KeyRing};

/// Bytes of a MAC (HMAC-SHA256).
pub const MAC_BYTES: usize = 32;
/// The previous MAC of the first record of a log.
pub const GENESIS_MAC: [u8; MAC_BYTES] = [0; MAC_BYTES];
/// Prefix of the canonical encoding; a new encoding gets a new tag.
const ENCODING_TAG: &[u8] = b"foretell-audit-v1";

/// What a decision says, before it is placed in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub timestamp_ms: i64,
    /// Dotted, general to specific: `process.started`, `config.reloaded`, `model.refit`.
    pub kind: String,
    /// Who or what decided: `foretell`, `admin:127.0.0.1`, `alertmanager`.
    pub actor: String,
    /// What it is about: a query, an alert fingerprint, a config file.
    pub subject: String,
    /// `ok`, `failed`, `rejected`, `suppressed`, ...
    pub outcome: String,
    /// Details as a JSON object's text, signed exactly as given.
    pub details: String,
}

/// A signed record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub log_id: String,
    pub seq: u64,
    pub entry: Entry,
    pub key_id: String,
    pub prev_mac: [u8; MAC_BYTES],
    pub mac: [u8; MAC_BYTES],
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// The bytes the MAC covers.
pub fn canonical_bytes(
    log_id: &str,
    seq: u64,
    entry: &Entry,
    key_id: &str,
    prev_mac: &[u8; MAC_BYTES],
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(ENCODING_TAG.len() + 160 + entry.details.len() + entry.subject.len());
    put(&mut out, ENCODING_TAG);
    put(&mut out, log_id.as_bytes());
    put(&mut out, &seq.to_be_bytes());
    put(&mut out, &entry.timestamp_ms.to_be_bytes());
    put(&mut out, entry.kind.as_bytes());
    put(&mut out, entry.actor.as_bytes());
    put(&mut out, entry.subject.as_bytes());
    put(&mut out, entry.outcome.as_bytes());
    put(&mut out, entry.details.as_bytes());
    put(&mut out, key_id.as_bytes());
    put(&mut out, prev_mac);
    out
}

fn hmac(key: &AuditKey) -> Hmac<Sha256> {
    key.mac()
}

/// Signs `entry` as record `seq` of log `log_id`, after the record whose MAC is `prev_mac`.
pub fn sign(
    key: &AuditKey,
    log_id: &str,
    seq: u64,
    entry: Entry,
    prev_mac: [u8; MAC_BYTES],
) -> Record {
    let mut mac = hmac(key);
    mac.update(&canonical_bytes(log_id, seq, &entry, key.id(), &prev_mac));
    Record {
        log_id: log_id.to_owned(),
        seq,
        entry,
        key_id: key.id().to_owned(),
        prev_mac,
        mac: mac.finalize().into_bytes().into(),
    }
}

/// Whether the record's MAC is right under the key it names (`None`: no such key in `keys`).
/// The comparison is constant-time.
pub fn mac_is_valid(record: &Record, keys: &KeyRing) -> Option<bool> {
    let key = keys.get(&record.key_id)?;
    let mut mac = hmac(key);
    mac.update(&canonical_bytes(
        &record.log_id,
        record.seq,
        &record.entry,
        &record.key_id,
        &record.prev_mac,
    ));
    Some(mac.verify_slice(&record.mac).is_ok())
}

/// Places entries in a chain: the writer's view of the log's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    log_id: String,
    head_seq: u64,
    head_mac: [u8; MAC_BYTES],
}

impl Chain {
    /// A chain whose newest record is `head_seq` with MAC `head_mac` (0 and the genesis MAC for
    /// an empty log).
    pub fn resume(log_id: &str, head_seq: u64, head_mac: [u8; MAC_BYTES]) -> Chain {
        Chain {
            log_id: log_id.to_owned(),
            head_seq,
            head_mac,
        }
    }

    /// The next record, signed with the ring's active key. The chain advances only through
    /// [`Chain::commit`], once the record is durably stored.
    pub fn next(&self, keys: &KeyRing, entry: Entry) -> Record {
        sign(
            keys.active(),
            &self.log_id,
            self.head_seq + 1,
            entry,
            self.head_mac,
        )
    }

    /// Moves the head to `record` (which [`Chain::next`] made).
    pub fn commit(&mut self, record: &Record) {
        debug_assert_eq!(record.seq, self.head_seq + 1);
        self.head_seq = record.seq;
        self.head_mac = record.mac;
    }

    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    pub fn head_mac(&self) -> &[u8; MAC_BYTES] {
        &self.head_mac
    }

    pub fn log_id(&self) -> &str {
        &self.log_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::keys::KeyRing;

    pub(crate) fn ring() -> KeyRing {
        KeyRing::parse(&format!("k1:{}", "ab".repeat(32))).expect("valid")
    }

    pub(crate) fn entry(subject: &str) -> Entry {
        Entry {
            timestamp_ms: 1_700_000_000_000,
            kind: "alert.forwarded".into(),
            actor: "foretell".into(),
            subject: subject.into(),
            outcome: "ok".into(),
            details: r#"{"receiver":"pager"}"#.into(),
        }
    }

    type RecordChange = dyn Fn(&mut Record);

    #[test]
    fn a_signed_record_verifies_and_any_changed_field_does_not() {
        let keys = ring();
        let record = sign(keys.active(), "log-a", 7, entry("fp1"), [9; MAC_BYTES]);
        assert_eq!(mac_is_valid(&record, &keys), Some(true));
        let changes: Vec<Box<RecordChange>> = vec![
            Box::new(|r| r.log_id = "log-b".into()),
            Box::new(|r| r.seq = 8),
            Box::new(|r| r.entry.timestamp_ms += 1),
            Box::new(|r| r.entry.kind = "alert.suppressed".into()),
            Box::new(|r| r.entry.actor = "admin".into()),
            Box::new(|r| r.entry.subject = "fp2".into()),
            Box::new(|r| r.entry.outcome = "failed".into()),
            Box::new(|r| r.entry.details = r#"{"receiver":"chat"}"#.into()),
            Box::new(|r| r.prev_mac[0] ^= 1),
            Box::new(|r| r.mac[31] ^= 1),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = record.clone();
            change(&mut changed);
            assert_eq!(mac_is_valid(&changed, &keys), Some(false), "change {i}");
        }
        let mut unknown = record.clone();
        unknown.key_id = "k9".into();
        assert_eq!(mac_is_valid(&unknown, &keys), None);
    }

    #[test]
    fn field_boundaries_are_part_of_the_encoding() {
        // "ab" + "c" and "a" + "bc" must not sign the same bytes.
        let mut one = entry("x");
        one.actor = "ab".into();
        one.subject = "c".into();
        let mut two = entry("x");
        two.actor = "a".into();
        two.subject = "bc".into();
        assert_ne!(
            canonical_bytes("l", 1, &one, "k1", &GENESIS_MAC),
            canonical_bytes("l", 1, &two, "k1", &GENESIS_MAC)
        );
    }

    #[test]
    fn the_chain_links_each_record_to_the_previous_mac() {
        let keys = ring();
        let mut chain = Chain::resume("log-a", 0, GENESIS_MAC);
        let first = chain.next(&keys, entry("a"));
        // Not committed yet: asking again gives the same position.
        assert_eq!(chain.next(&keys, entry("a")), first);
        chain.commit(&first);
        let second = chain.next(&keys, entry("b"));
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(first.prev_mac, GENESIS_MAC);
        assert_eq!(second.prev_mac, first.mac);
        assert_eq!(chain.head_seq(), 1);
    }
}
