//! Secrets and where they come from.

use std::fmt;
use std::io;
use std::path::Path;

use foretell_core::redact;
use url::Url;

/// A credential. Its `Debug` never shows the value, so it cannot leak through logs or error
/// chains; the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An endpoint URL that may carry a credential: an `api_key` in the query string, a token in
/// a webhook's path. `Display` and `Debug` show it redacted ([`foretell_core::redact::url`]),
/// so logs, errors and pages cannot leak it; requests reach the whole URL through
/// [`SecretUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: Url,
    path: redact::Path,
}

impl SecretUrl {
    pub fn new(url: Url, path: redact::Path) -> Self {
        SecretUrl { url, path }
    }

    pub fn expose(&self) -> &Url {
        &self.url
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact::url(self.url.as_str(), self.path))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where configuration loading reads environment variables and referenced files. Parsing
/// gets one passed in, so tests use maps instead of the real process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The real process environment and file system.
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
        assert_eq!(secret.expose(), "hunter2");
    }
}
