//! Credentials on outgoing requests: the one place a configured [`Auth`] becomes an
//! `Authorization` header, for the Prometheus reader, the alert forwarder and remote write.

use crate::config::Auth;

/// `request` with the credentials of `auth` (none: unchanged). The secret is exposed only
/// into the header, which reqwest marks sensitive so it is never logged.
pub fn authorize(request: reqwest::RequestBuilder, auth: Option<&Auth>) -> reqwest::RequestBuilder {
    match auth {
        Some(Auth::Bearer(token)) => request.bearer_auth(token.expose()),
        Some(Auth::Basic { username, password }) => {
            request.basic_auth(username, Some(password.expose()))
        }
        None => request,
    }
}
