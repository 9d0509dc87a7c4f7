//! Errors as one line of text for logs, self-metric reasons and audit records: an error with
//! its causes, and a failed HTTP exchange without its URL (which can carry a secret).

/// A failed HTTP exchange on one line, without the URL reqwest puts in its message: a URL can
/// carry a secret in its query string or path, and the caller names the endpoint redacted.
pub fn transport_error(error: reqwest::Error) -> String {
    error_chain(&error.without_url())
}

/// An error and its causes on one line; reqwest's own message alone says little.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
