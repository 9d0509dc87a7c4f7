//! The web configuration file of the Prometheus exporter toolkit (`--web.config.file`), so
//! operators secure foretell's listener the way they secure node_exporter and Prometheus:
//! TLS (`tls_server_config`) and basic auth with bcrypt hashes (`basic_auth_users`).
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/foretell/tls.crt
//!   key_file: /etc/foretell/tls.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: /etc/foretell/clients.pem
//!   min_version: TLS12                             # TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...                         # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("{file}: {field}: {message}")]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTlsServer>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsServer {
    cert_file: String,
    key_file: String,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// The validated file: what the listener enforces (the default: plain HTTP, no auth).
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub basic_auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|a| a.users.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// Reads and validates `path`; relative file names in it are relative to its folder.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let bytes = crate::config::read_bounded(path, crate::config::MAX_FILE_BYTES).map_err(|e| {
        WebConfigError::Invalid {
            file: path.to_owned(),
            message: format!("cannot read: {e}"),
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| WebConfigError::Invalid {
        file: path.to_owned(),
        message: "not UTF-8 text".into(),
    })?;
    crate::config::nesting::check(&text).map_err(|message| WebConfigError::Invalid {
        file: path.to_owned(),
        message,
    })?;
    let raw: RawWebConfig = serde_norway::from_str(&text).map_err(|e| WebConfigError::Invalid {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let field = |field: &str, message: String| WebConfigError::Field {
        file: path.to_owned(),
        field: field.to_owned(),
        message,
    };
    let tls = raw
        .tls_server_config
        .map(|tls| server_tls(&tls, base).map_err(|(name, message)| field(name, message)))
        .transpose()?
        .map(Arc::new);
    let mut users = BTreeMap::new();
    for (user, hash) in raw.basic_auth_users {
        if user.contains(':') || user.is_empty() {
            return Err(field(
                &format!("basic_auth_users.{user}"),
                "user names must be non-empty and hold no `:`".to_owned(),
            ));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(field(
                &format!("basic_auth_users.{user}"),
                "must be a bcrypt hash (`$2y$...`, for example from `htpasswd -nBC 10 USER`), not a password".to_owned(),
            ));
        }
        users.insert(user, hash);
    }
    let basic_auth = match users.values().next() {
        None => None,
        Some(first) => {
            // Unknown users are checked against a hash of the same cost, so the answer time
            // does not tell which user names exist.
            let cost = first
                .parse::<bcrypt::HashParts>()
                .map_or(bcrypt::DEFAULT_COST, |parts| parts.get_cost());
            let unknown_user_hash = bcrypt::hash("foretell: no such user", cost)
                .map_err(|e| field("basic_auth_users", e.to_string()))?;
            Some(Arc::new(BasicAuth {
                users,
                unknown_user_hash,
                verified: Mutex::new(HashMap::new()),
            }))
        }
    };
    Ok(WebConfig { tls, basic_auth })
}

fn server_tls(
    raw: &RawTlsServer,
    base: &Path,
) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let read = |name: &'static str, file: &str| {
        let path = base.join(file);
        crate::config::read_bounded(&path, crate::config::MAX_FILE_BYTES)
            .map_err(|e| (name, format!("cannot read {}: {e}", path.display())))
    };
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read("tls_server_config.cert_file", &raw.cert_file)?)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                (
                    "tls_server_config.cert_file",
                    format!("not PEM certificates: {e}"),
                )
            })?;
    if certificates.is_empty() {
        return Err((
            "tls_server_config.cert_file",
            "holds no certificate".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("tls_server_config.key_file", &raw.key_file)?)
        .map_err(|e| {
            (
                "tls_server_config.key_file",
                format!("not a PEM private key: {e}"),
            )
        })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match (
        raw.min_version.as_deref().unwrap_or("TLS12"),
        raw.max_version.as_deref().unwrap_or("TLS13"),
    ) {
        ("TLS12", "TLS13") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        ("TLS12", "TLS12") => &[&rustls::version::TLS12],
        ("TLS13", "TLS13") => &[&rustls::version::TLS13],
        (min, max) => {
            return Err((
                "tls_server_config.min_version",
                format!("TLS12 or TLS13, at most max_version; got min {min}, max {max} (TLS 1.0 and 1.1 are not offered)"),
            ))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| ("tls_server_config.min_version", e.to_string()))?;
    let client_auth = raw.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match client_auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca_file) = &raw.client_ca_file else {
                return Err((
                    "tls_server_config.client_ca_file",
                    format!("is required with client_auth_type {client_auth}"),
                ));
            };
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&read(
                "tls_server_config.client_ca_file",
                ca_file,
            )?) {
                let certificate = certificate.map_err(|e| {
                    ("tls_server_config.client_ca_file", format!("not PEM certificates: {e}"))
                })?;
                roots.add(certificate).map_err(|e| {
                    ("tls_server_config.client_ca_file", format!("unusable CA: {e}"))
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| ("tls_server_config.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err((
                "tls_server_config.client_auth_type",
                format!("NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, got `{other}`"),
            ))
        }
    };
    let mut config = builder.with_single_cert(certificates, key).map_err(|e| {
        (
            "tls_server_config.key_file",
            format!("does not match the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Users and their bcrypt hashes, with the outcome of each verified credential kept so a
/// scraper does not pay (and cannot make foretell pay) a bcrypt computation per request.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    unknown_user_hash: String,
    /// SHA-256 of `user:password` → whether it matched; bounded.
    verified: Mutex<HashMap<[u8; 32], bool>>,
}

/// Distinct credentials remembered; beyond this the memory is cleared (a flood of wrong
/// passwords then costs bcrypt time, as it would without the cache).
const REMEMBERED_CREDENTIALS: usize = 1024;

/// bcrypt reads at most this many bytes of a password and ignores the rest; a longer one is
/// refused rather than checked by its first 72 bytes (the exporter toolkit refuses it too).
const MAX_BCRYPT_PASSWORD_BYTES: usize = 72;

impl BasicAuth {
    /// The configured user the `Authorization` header value carries with its password, if any.
    pub fn allows(&self, authorization: Option<&str>) -> Option<String> {
        let (user, password) = authorization.and_then(decode_basic)?;
        if password.len() > MAX_BCRYPT_PASSWORD_BYTES {
            return None;
        }
        let key: [u8; 32] = Sha256::digest(format!("{user}:{password}").as_bytes()).into();
        if let Some(&known) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return known.then_some(user);
        }
        let hash = self
            .users
            .get(&user)
            .map_or(self.unknown_user_hash.as_str(), String::as_str);
        let matched =
            bcrypt::verify(&password, hash).unwrap_or(false) && self.users.contains_key(&user);
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= REMEMBERED_CREDENTIALS {
            verified.clear();
        }
        verified.insert(key, matched);
        matched.then_some(user)
    }
}

/// `Basic base64(user:password)` → `(user, password)`.
fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls")
    }

    /// A web config file in a scratch folder beside copies of the fixture certificates.
    fn written(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["ca.crt", "server.crt", "server.key"] {
            std::fs::copy(fixtures().join(name), dir.path().join(name)).expect("copy");
        }
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn error_of(text: &str) -> String {
        let (_dir, path) = written(text);
        match load(&path) {
            Err(error) => error.to_string(),
            Ok(config) => panic!("accepted: {config:?}"),
        }
    }

    #[test]
    fn a_file_with_tls_and_users_loads_relative_to_its_folder() {
        let hash = bcrypt::hash("s3cret-password", 4).expect("hash");
        let (_dir, path) = written(&format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\nbasic_auth_users:\n  prometheus: {hash}\n"
        ));
        let config = load(&path).expect("valid");
        assert!(config.tls.is_some());
        let debug = format!("{config:?}");
        assert!(
            debug.contains("prometheus") && !debug.contains(&hash),
            "{debug}"
        );
        let (_dir, path) = written("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
        assert!(load(&path).expect("mutual TLS").basic_auth.is_none());
        let (_dir, path) = written("{}\n");
        let empty = load(&path).expect("an empty file is valid");
        assert!(empty.tls.is_none() && empty.basic_auth.is_none());
    }

    #[test]
    fn mistakes_name_the_file_and_field() {
        let message = error_of("basic_auth_users:\n  alice: hunter2\n");
        assert!(
            message.contains("web.yml: basic_auth_users.alice: must be a bcrypt hash"),
            "{message}"
        );
        assert!(
            !message.contains("hunter2"),
            "the password is not echoed: {message}"
        );
        let message =
            error_of("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n");
        assert!(
            message.contains("tls_server_config.cert_file: cannot read")
                && message.contains("missing.crt"),
            "{message}"
        );
        let message =
            error_of("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n");
        assert!(
            message.contains("tls_server_config.cert_file: holds no certificate"),
            "{message}"
        );
        let message =
            error_of("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n");
        assert!(
            message.contains("tls_server_config.key_file: not a PEM private key"),
            "{message}"
        );
        let message = error_of("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS11\n");
        assert!(
            message.contains("tls_server_config.min_version"),
            "{message}"
        );
        let message = error_of("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n");
        assert!(message.contains("client_ca_file: is required"), "{message}");
        let message = error_of("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n");
        assert!(message.contains("client_auth_type: NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, got `Sometimes`"), "{message}");
        let message = error_of("tls_config:\n  cert_file: x\n");
        assert!(message.contains("unknown field `tls_config`"), "{message}");
    }

    /// One user with `password`, hashed at bcrypt's lowest cost to keep tests quick.
    fn auth_of(user: &str, password: &str) -> BasicAuth {
        BasicAuth {
            users: BTreeMap::from([(user.to_owned(), bcrypt::hash(password, 4).expect("hash"))]),
            unknown_user_hash: bcrypt::hash("x", 4).expect("hash"),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// `Authorization: Basic ...` for `user:password` text.
    fn header(credentials: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn basic_auth_checks_users_and_passwords() {
        let auth = auth_of("prometheus", "right");
        let user = Some("prometheus".to_owned());
        assert_eq!(auth.allows(Some(&header("prometheus:right"))), user);
        assert_eq!(
            auth.allows(Some(&header("prometheus:right"))),
            user,
            "remembered"
        );
        assert_eq!(auth.allows(Some(&header("prometheus:wrong"))), None);
        assert_eq!(auth.allows(Some(&header("nobody:right"))), None);
        assert_eq!(auth.allows(Some(&header("prometheus"))), None, "no colon");
        assert_eq!(auth.allows(Some("Bearer right")), None);
        assert_eq!(auth.allows(Some("Basic !!!")), None);
        assert_eq!(auth.allows(None), None);
        assert_eq!(auth.verified.lock().expect("lock").len(), 3);
    }

    /// Issue 16, item 8: bcrypt ignores bytes past 72, so any password sharing the first 72
    /// bytes of the real one got in.
    #[test]
    fn passwords_longer_than_bcrypt_reads_are_refused() {
        let long = "p".repeat(72);
        let auth = auth_of("ops", &long);
        assert_eq!(
            auth.allows(Some(&header(&format!("ops:{long}")))),
            Some("ops".to_owned())
        );
        for extra in ["x", "anything at all"] {
            assert_eq!(
                auth.allows(Some(&header(&format!("ops:{long}{extra}")))),
                None,
                "72 bytes and {extra:?}"
            );
        }
    }
}
