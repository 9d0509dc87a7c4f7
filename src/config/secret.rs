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
    /// Whether every user of the machine may read the file (a secret then is not one).
    fn world_readable(&self, _path: &Path) -> bool {
        false
    }
}

/// The real process environment and file system.
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_bounded(path, MAX_FILE_BYTES)
    }

    fn world_readable(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
}

/// The largest file foretell reads as configuration, keys, tokens or certificates.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a regular file of at most `max_bytes`. Anything else is refused before it is opened
/// (a FIFO would block the reader, and so a reload, until someone writes to it; a device or a
/// huge file would be read without end).
pub fn read_bounded(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket, device or directory)",
        ));
    }
    if metadata.len() > max_bytes {
        return Err(too_large(max_bytes));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(max_bytes));
    }
    Ok(bytes)
}

fn too_large(max_bytes: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {max_bytes} bytes, more than such a file ever needs"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, item 8: a FIFO as a token file hung check-config and wedged reloads; files
    /// were read with no size cap.
    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("token.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let started = crate::clock::Stopwatch::start();
        let error = read_bounded(&fifo, 1024).expect_err("a FIFO");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let error = read_bounded(dir.path(), 1024).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).expect("write");
        let error = read_bounded(&big, 1024).expect_err("too large");
        assert!(
            error.to_string().contains("larger than 1024 bytes"),
            "{error}"
        );
        assert_eq!(read_bounded(&big, 2048).expect("fits").len(), 2048);
        let error = read_bounded(Path::new("/dev/zero"), 1024).expect_err("a device");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
        assert_eq!(secret.expose(), "hunter2");
    }
}
