//! Audit keys: named HMAC secrets, read from a key file's text.
//!
//! A key file holds one key per line, `KEY_ID:HEX_SECRET` (at least 32 bytes of secret), with
//! blank lines and `#` comments allowed. The last key is the one new records are signed with;
//! the earlier ones stay for verifying records written before a rotation. The secret never
//! appears in `Debug` output or in errors.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Secrets shorter than this are refused: HMAC-SHA256 keys should carry 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// One HMAC key with its id.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    secret: Vec<u8>,
    /// HMAC state keyed once, cloned for each record.
    keyed: Hmac<Sha256>,
}

impl PartialEq for AuditKey {
    fn eq(&self, other: &AuditKey) -> bool {
        self.id == other.id && self.secret == other.secret
    }
}

impl Eq for AuditKey {}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl AuditKey {
    /// A key from raw secret bytes; an error when the id is not usable or the secret too short.
    pub fn new(id: &str, secret: Vec<u8>) -> Result<AuditKey, KeyError> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(KeyError::BadId { id: id.to_owned() });
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort {
                id: id.to_owned(),
                bytes: secret.len(),
            });
        }
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&secret).map_err(|_| KeyError::TooShort {
                id: id.to_owned(),
                bytes: secret.len(),
            })?;
        Ok(AuditKey {
            id: id.to_owned(),
            secret,
            keyed,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A fresh HMAC computation under this key.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// A key for another purpose derived from this one (HMAC of the purpose's name), so that
    /// nothing signed for that purpose can pass for an audit record, and the secret itself
    /// never leaves this type.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(b"foretell derived key\n");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    #[cfg(test)]
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// A problem in key material. Messages name the line and key id, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("line {line}: expected KEY_ID:HEX_SECRET")]
    Syntax { line: usize },
    #[error("line {line}: the secret of key `{id}` is not hexadecimal")]
    NotHex { line: usize, id: String },
    #[error("key id `{id}` may hold only letters, digits, `-`, `_` and `.`")]
    BadId { id: String },
    #[error("key `{id}` has {bytes} bytes of secret; at least {MIN_SECRET_BYTES} are needed")]
    TooShort { id: String, bytes: usize },
    #[error("line {line}: key id `{id}` appears twice")]
    Duplicate { line: usize, id: String },
    #[error("no key found (one KEY_ID:HEX_SECRET per line)")]
    Empty,
}

/// The keys a log may be signed with; the newest signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRing {
    keys: BTreeMap<String, AuditKey>,
    active: String,
}

impl KeyRing {
    /// Parses key-file text (see the module documentation).
    pub fn parse(text: &str) -> Result<KeyRing, KeyError> {
        let mut keys = BTreeMap::new();
        let mut active = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let (id, hex) = content.split_once(':').ok_or(KeyError::Syntax { line })?;
            let (id, hex) = (id.trim(), hex.trim());
            let secret = decode_hex(hex).ok_or_else(|| KeyError::NotHex {
                line,
                id: id.to_owned(),
            })?;
            let key = AuditKey::new(id, secret)?;
            if keys.contains_key(id) {
                return Err(KeyError::Duplicate {
                    line,
                    id: id.to_owned(),
                });
            }
            active = Some(id.to_owned());
            keys.insert(id.to_owned(), key);
        }
        let active = active.ok_or(KeyError::Empty)?;
        Ok(KeyRing { keys, active })
    }

    /// A ring of one key.
    pub fn single(key: AuditKey) -> KeyRing {
        let active = key.id.clone();
        KeyRing {
            keys: BTreeMap::from([(active.clone(), key)]),
            active,
        }
    }

    /// The key new records are signed with.
    pub fn active(&self) -> &AuditKey {
        &self.keys[&self.active]
    }

    pub fn get(&self, id: &str) -> Option<&AuditKey> {
        self.keys.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// Lower- or upper-case hex, even length.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const SECRET_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn the_last_key_signs_and_earlier_ones_stay_for_verifying() {
        let ring = KeyRing::parse(&format!(
            "# rotated 2026-11\nk1:{SECRET_A}\n\n  k2 : {SECRET_B}  \n"
        ))
        .expect("valid");
        assert_eq!(ring.active().id(), "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), vec!["k1", "k2"]);
        assert_eq!(
            ring.get("k1").expect("k1").secret(),
            &decode_hex(SECRET_A).expect("hex")[..]
        );
    }

    #[test]
    fn bad_key_files_name_the_line_and_never_the_secret() {
        let cases = [
            ("k1 {SECRET_A}", KeyError::Syntax { line: 1 }),
            (
                "\nk1:zz",
                KeyError::NotHex {
                    line: 2,
                    id: "k1".into(),
                },
            ),
            (
                "k1:0011",
                KeyError::TooShort {
                    id: "k1".into(),
                    bytes: 2,
                },
            ),
            ("k 1:{SECRET_A}", KeyError::BadId { id: "k 1".into() }),
            (
                "k1:{SECRET_A}\nk1:{SECRET_B}",
                KeyError::Duplicate {
                    line: 2,
                    id: "k1".into(),
                },
            ),
            ("# nothing\n", KeyError::Empty),
        ];
        for (text, expected) in cases {
            let text = text
                .replace("{SECRET_A}", SECRET_A)
                .replace("{SECRET_B}", SECRET_B);
            let error = KeyRing::parse(&text).expect_err(&text);
            assert_eq!(error, expected);
            assert!(!error.to_string().contains(&SECRET_A[..16]), "{error}");
        }
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let ring = KeyRing::parse(&format!("k1:{SECRET_A}")).expect("valid");
        let debug = format!("{ring:?}");
        assert!(
            debug.contains("<redacted>") && debug.contains("k1"),
            "{debug}"
        );
        assert!(
            !debug.contains("17, 34") && !debug.contains("0011"),
            "{debug}"
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(encode_hex(&[0, 255, 160]), "00ffa0");
    }
}
