//! The `audit` section: where the signed audit log lives and the keys that sign it.

use std::path::PathBuf;
use std::time::Duration;

use foretell_core::audit::KeyRing;

use super::raw::RawAudit;
use super::validator::Validator;

const DEFAULT_AUDIT_VERIFY_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the signed audit log lives and the keys that sign it (the last one signs; the
/// earlier ones verify records written before a rotation).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    pub path: PathBuf,
    pub keys: KeyRing,
    /// How often the sidecar verifies its own log (`None`: never).
    pub verify_interval: Option<Duration>,
}

impl Validator<'_> {
    pub(super) fn audit(&mut self, raw: &RawAudit) -> Option<AuditConfig> {
        if raw.path.trim().is_empty() {
            self.fail("audit.path", "must name the SQLite file of the audit log");
        }
        let (origin, text) = match (&raw.key_file, &raw.key_env) {
            (Some(_), Some(_)) => {
                self.fail("audit", "set either key_file or key_env, not both");
                return None;
            }
            (None, None) => {
                self.fail(
                    "audit",
                    "needs key_file or key_env: the keys that sign the log (KEY_ID:HEX_SECRET per line)",
                );
                return None;
            }
            (Some(file), None) => {
                let bytes = self.read_secret_file("audit.key_file", file)?;
                match String::from_utf8(bytes) {
                    Ok(text) => ("audit.key_file", text),
                    Err(_) => {
                        self.fail("audit.key_file", format!("`{file}` is not UTF-8 text"));
                        return None;
                    }
                }
            }
            (None, Some(var)) => match self.env.var(var) {
                Some(text) => ("audit.key_env", text),
                None => {
                    self.fail(
                        "audit.key_env",
                        format!("environment variable `{var}` is not set"),
                    );
                    return None;
                }
            },
        };
        let keys = match KeyRing::parse(&text) {
            Ok(keys) => keys,
            Err(error) => {
                self.fail(origin, error.to_string());
                return None;
            }
        };
        let verify_interval = match raw.verify_interval.as_deref() {
            None => Some(DEFAULT_AUDIT_VERIFY_INTERVAL),
            Some("off") => None,
            Some(text) => Some(self.positive_duration(
                "audit.verify_interval",
                Some(text),
                DEFAULT_AUDIT_VERIFY_INTERVAL,
            )?),
        };
        (!raw.path.trim().is_empty()).then(|| AuditConfig {
            path: self.base_dir.join(&raw.path),
            keys,
            verify_interval,
        })
    }
}
