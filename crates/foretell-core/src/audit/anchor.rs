//! Prune anchors: the signed record that lets a log drop its oldest records and still verify.
//!
//! Pruning deletes the records up to some `through_seq` and appends an anchor record naming
//! that seq and its MAC. The first kept record links to that MAC, so verification starts there
//! instead of at the genesis, and the anchor, signed and chained like any record, is the proof
//! that the gap was a prune and not a deletion.

use super::keys::{decode_hex, encode_hex};
use super::record::{Entry, MAC_BYTES};

/// The kind of an anchor record.
pub const ANCHOR_KIND: &str = super::EventKind::AuditPruned.as_str();

/// What an anchor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub through_seq: u64,
    pub through_mac: [u8; MAC_BYTES],
    pub removed: u64,
}

impl Anchor {
    /// The record's entry; its details are written in one fixed form that [`Anchor::parse`]
    /// reads back.
    pub fn entry(&self, timestamp_ms: i64, actor: &str) -> Entry {
        Entry {
            timestamp_ms,
            kind: ANCHOR_KIND.to_owned(),
            actor: actor.to_owned(),
            subject: format!("seq {}", self.through_seq),
            outcome: "ok".to_owned(),
            details: format!(
                r#"{{"through_seq":{},"through_mac":"{}","removed":{}}}"#,
                self.through_seq,
                encode_hex(&self.through_mac),
                self.removed
            ),
        }
    }

    /// The anchor an entry states, if it is one.
    pub fn parse(entry: &Entry) -> Option<Anchor> {
        if entry.kind != ANCHOR_KIND {
            return None;
        }
        let rest = entry.details.strip_prefix(r#"{"through_seq":"#)?;
        let (seq, rest) = rest.split_once(r#","through_mac":""#)?;
        let (mac, rest) = rest.split_once(r#"","removed":"#)?;
        let removed = rest.strip_suffix('}')?;
        Some(Anchor {
            through_seq: seq.parse().ok()?,
            through_mac: decode_hex(mac)?.try_into().ok()?,
            removed: removed.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_round_trips_through_its_entry() {
        let anchor = Anchor {
            through_seq: 41,
            through_mac: [7; MAC_BYTES],
            removed: 41,
        };
        let entry = anchor.entry(1_000, "admin");
        assert_eq!(entry.kind, "audit.pruned");
        assert_eq!(Anchor::parse(&entry), Some(anchor));
        let mut other = entry.clone();
        other.kind = "config.loaded".into();
        assert_eq!(Anchor::parse(&other), None);
        let mut garbled = entry;
        garbled.details = r#"{"through_seq":x}"#.into();
        assert_eq!(Anchor::parse(&garbled), None);
    }
}
