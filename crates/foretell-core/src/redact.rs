//! URLs as foretell shows them: in logs, error messages, audit records, status pages and API
//! answers. The one place that decides what of a URL is secret.
//!
//! Credentials hide in three parts of a URL: the userinfo (`https://user:pass@host`), the query
//! string (`?api_key=...`, `?token=...`) and, for webhook receivers, the path (Slack, Teams
//! and most chat webhooks put their token there: `/services/T0/B0/XXXX`). Those parts are
//! replaced by `<secret>`; scheme, host and port stay, since they are what an operator needs to
//! recognise the endpoint. Works on text that is not a valid URL too (a malformed URL in a
//! configuration is echoed in the error that rejects it).

/// What replaces a hidden part.
pub const HIDDEN: &str = "<secret>";

/// Whether a URL's path may be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// An API endpoint (Prometheus, remote write): the path names the API, not a secret.
    Shown,
    /// A webhook receiver: the path often is the credential.
    Hidden,
}

/// `text` with userinfo, query string and fragment (and with [`Path::Hidden`] the path)
/// replaced by [`HIDDEN`], control characters escaped, at most 256 characters.
pub fn url(text: &str, path: Path) -> String {
    let text = text.trim();
    let (before_query, query) = match text.find(['?', '#']) {
        Some(at) => (&text[..at], Some(&text[at..at + 1])),
        None => (text, None),
    };
    let (scheme, rest) = match before_query.find("://") {
        Some(at) => (&before_query[..at + 3], &before_query[at + 3..]),
        None => ("", before_query),
    };
    let (authority, path_part) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let mut shown = String::with_capacity(text.len().min(256));
    shown.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            shown.push_str(HIDDEN);
            shown.push_str(&authority[at..]);
        }
        None => shown.push_str(authority),
    }
    match path {
        Path::Hidden if !matches!(path_part, "" | "/") => {
            shown.push('/');
            shown.push_str(HIDDEN);
        }
        _ => shown.push_str(path_part),
    }
    if let Some(separator) = query {
        shown.push_str(separator);
        shown.push_str(HIDDEN);
    }
    let mut bounded = String::with_capacity(shown.len().min(300));
    for c in shown.chars().take(256) {
        if c.is_control() {
            bounded.extend(c.escape_default());
        } else {
            bounded.push(c);
        }
    }
    if shown.chars().count() > 256 {
        bounded.push('…');
    }
    bounded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_every_part_are_hidden() {
        for (text, path, expected) in [
            (
                "http://prometheus:9090",
                Path::Shown,
                "http://prometheus:9090",
            ),
            (
                "https://user:hunter2@prometheus:9090/api",
                Path::Shown,
                "https://<secret>@prometheus:9090/api",
            ),
            (
                "http://user:p@ss@prom:99999",
                Path::Shown,
                "http://<secret>@prom:99999",
            ),
            (
                "https://mimir/prometheus?api_key=abc123&x=1",
                Path::Shown,
                "https://mimir/prometheus?<secret>",
            ),
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                Path::Hidden,
                "https://hooks.slack.com/<secret>",
            ),
            (
                "https://hooks.example/",
                Path::Hidden,
                "https://hooks.example/",
            ),
            (
                "http://[::1]:9093/hook#token",
                Path::Shown,
                "http://[::1]:9093/hook#<secret>",
            ),
            (
                "user:hunter2@prometheus:9090",
                Path::Shown,
                "<secret>@prometheus:9090",
            ),
            ("ftp://a\nb", Path::Shown, "ftp://a\\nb"),
        ] {
            assert_eq!(url(text, path), expected, "{text}");
        }
    }

    #[test]
    fn long_text_is_cut() {
        let long = format!("http://{}", "a".repeat(10_000));
        let shown = url(&long, Path::Shown);
        assert!(shown.chars().count() <= 257, "{}", shown.len());
        assert!(shown.ends_with('…'));
    }
}
