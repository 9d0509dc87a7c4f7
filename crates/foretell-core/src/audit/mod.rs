//! The signed audit log's pure part: keys, the canonical encoding and MAC of a record, the
//! chain that links records, and verification with a class for each kind of tampering.
//! Storage (SQLite) lives in the binary; everything here works on values.

pub mod anchor;
pub mod event;
pub mod keys;
pub mod kind;
pub mod record;
pub mod verify;

pub use anchor::{Anchor, ANCHOR_KIND};
pub use event::{
    AlertRef, Arrived, Assessed, ConfidentAssessment, DeliveryAttempt, EnrichedSummary, Event,
};
pub use keys::{AuditKey, KeyError, KeyRing};
pub use kind::EventKind;
pub use record::{Chain, Entry, Record, GENESIS_MAC, MAC_BYTES};
pub use verify::{
    mac_prefix_value, verify, ChainStart, ExpectedHead, Problem, ProblemClass, Verification,
    Verifier, HEAD_WENT_BACKWARDS_KIND,
};
