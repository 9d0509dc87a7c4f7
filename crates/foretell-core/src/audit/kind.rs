//! What an audit record says happened, named once. Records store the kind as its dotted text
//! (general to specific, past tense), which is what is signed and what `foretell audit list
//! --kind` filters on; writers name it with [`EventKind`] so a misspelt kind does not compile.
//! Verification reads any text: a log written by another version may hold kinds this one
//! does not know.

use std::fmt;

/// Every kind of record foretell writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    ProcessStarted,
    ProcessStopped,
    ConfigLoaded,
    ConfigReloaded,
    ConfigRejected,
    ModelRefit,
    KeyRotated,
    AlertReceived,
    AlertDeduplicated,
    AlertRefused,
    AlertEnriched,
    AlertSuppressed,
    AlertForwarded,
    AlertRetried,
    AlertDeadLettered,
    AlertDeadLetterRetried,
    /// Records older than the retention were deleted; this anchors the chain after them.
    AuditPruned,
    /// The log's head was found behind a sequence number seen before (a restored backup).
    AuditHeadWentBackwards,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        EventKind::ProcessStarted,
        EventKind::ProcessStopped,
        EventKind::ConfigLoaded,
        EventKind::ConfigReloaded,
        EventKind::ConfigRejected,
        EventKind::ModelRefit,
        EventKind::KeyRotated,
        EventKind::AlertReceived,
        EventKind::AlertDeduplicated,
        EventKind::AlertRefused,
        EventKind::AlertEnriched,
        EventKind::AlertSuppressed,
        EventKind::AlertForwarded,
        EventKind::AlertRetried,
        EventKind::AlertDeadLettered,
        EventKind::AlertDeadLetterRetried,
        EventKind::AuditPruned,
        EventKind::AuditHeadWentBackwards,
    ];

    /// The text stored and signed in the record.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::ProcessStarted => "process.started",
            EventKind::ProcessStopped => "process.stopped",
            EventKind::ConfigLoaded => "config.loaded",
            EventKind::ConfigReloaded => "config.reloaded",
            EventKind::ConfigRejected => "config.rejected",
            EventKind::ModelRefit => "model.refit",
            EventKind::KeyRotated => "key.rotated",
            EventKind::AlertReceived => "alert.received",
            EventKind::AlertDeduplicated => "alert.deduplicated",
            EventKind::AlertRefused => "alert.refused",
            EventKind::AlertEnriched => "alert.enriched",
            EventKind::AlertSuppressed => "alert.suppressed",
            EventKind::AlertForwarded => "alert.forwarded",
            EventKind::AlertRetried => "alert.retried",
            EventKind::AlertDeadLettered => "alert.dead_lettered",
            EventKind::AlertDeadLetterRetried => "alert.dead_letter_retried",
            EventKind::AuditPruned => "audit.pruned",
            EventKind::AuditHeadWentBackwards => "audit.head_went_backwards",
        }
    }

    /// The kind a record's text names, if this version writes it.
    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// True when `text` (a stored record's kind) is this kind.
    pub fn is(self, text: &str) -> bool {
        self.as_str() == text
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_and_is_dotted_past_tense_text() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let text = kind.as_str();
            let (area, what) = text.split_once('.').expect("dotted");
            assert!(!area.is_empty() && !what.is_empty(), "{text}");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{text}"
            );
            // Past tense: a regular verb, or one of the two irregular ones.
            assert!(
                what.ends_with("ed") || ["refit", "head_went_backwards"].contains(&what),
                "past tense: {text}"
            );
        }
        let distinct: std::collections::HashSet<&str> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(distinct.len(), EventKind::ALL.len());
        assert_eq!(EventKind::parse("alert.teleported"), None);
        assert!(EventKind::AlertForwarded.is("alert.forwarded"));
    }
}
