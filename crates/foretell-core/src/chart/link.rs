//! Signed chart links: `/graph?expr=...` draws only expressions foretell itself linked to.
//!
//! A chart of an arbitrary expression would make foretell a PromQL proxy with its own
//! credentials and tenant header. Enriched alerts link to charts of their rule's expression,
//! so each such link carries `sig`, an HMAC of the expression under a key derived from the
//! audit keys: any key of the ring verifies (links keep working across a rotation), and only
//! the newest signs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit::KeyRing;

/// The purpose the link key is derived for (see [`crate::audit::AuditKey::derive`]).
const PURPOSE: &str = "chart links v1";
/// Bytes of the MAC a link carries: 128 bits, hex-encoded.
const SIGNATURE_BYTES: usize = 16;

/// Signs and checks chart links.
#[derive(Clone)]
pub struct LinkSigner {
    /// Derived keys, the signing one first.
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl LinkSigner {
    pub fn new(ring: &KeyRing) -> LinkSigner {
        let mut keys = vec![ring.active().derive(PURPOSE)];
        keys.extend(
            ring.ids()
                .filter(|id| *id != ring.active().id())
                .filter_map(|id| ring.get(id))
                .map(|key| key.derive(PURPOSE)),
        );
        LinkSigner { keys }
    }

    /// The signature of a link to a chart of `expr`.
    pub fn sign(&self, expr: &str) -> String {
        crate::audit::keys::encode_hex(&signature(&self.keys[0], expr))
    }

    /// True when `signature` is one of ours for `expr` (compared in constant time).
    pub fn verify(&self, expr: &str, signature: &str) -> bool {
        let Some(given) = crate::audit::keys::decode_hex(signature) else {
            return false;
        };
        self.keys.iter().any(|key| {
            let mut mac = keyed(key);
            mac.update(expr.as_bytes());
            mac.verify_truncated_left(&given).is_ok() && given.len() == SIGNATURE_BYTES
        })
    }
}

fn keyed(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn signature(key: &[u8; 32], expr: &str) -> [u8; SIGNATURE_BYTES] {
    let mut mac = keyed(key);
    mac.update(expr.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; SIGNATURE_BYTES];
    out.copy_from_slice(&full[..SIGNATURE_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).expect("keys")
    }

    #[test]
    fn links_verify_for_their_expression_only_and_survive_a_rotation() {
        let old = ring(&format!("k1:{}", "11".repeat(32)));
        let rotated = ring(&format!("k1:{}\nk2:{}", "11".repeat(32), "22".repeat(32)));
        let signer = LinkSigner::new(&old);
        let sig = signer.sign("rate(http_requests_total[5m]) > 1");
        assert_eq!(sig.len(), 32);
        assert!(signer.verify("rate(http_requests_total[5m]) > 1", &sig));
        assert!(!signer.verify("secret_metric{tenant=\"other\"}", &sig));
        assert!(!signer.verify("rate(http_requests_total[5m]) > 1", &sig[..30]));
        assert!(!signer.verify("rate(http_requests_total[5m]) > 1", "not hex"));
        assert!(!signer.verify("rate(http_requests_total[5m]) > 1", ""));
        let after = LinkSigner::new(&rotated);
        assert!(after.verify("rate(http_requests_total[5m]) > 1", &sig));
        assert_ne!(after.sign("x"), signer.sign("x"), "the newest key signs");
        let stranger = LinkSigner::new(&ring(&format!("k1:{}", "33".repeat(32))));
        assert!(!stranger.verify("rate(http_requests_total[5m]) > 1", &sig));
    }
}
