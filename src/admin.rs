//! `foretell dead-letters list|retry`: a client of a running foretell's dead-letter API, so an
//! operator does not need curl and jq at 3 a.m. Requeueing goes through the running process
//! (which owns the outbox's writer and wakes its forwarders), never straight into SQLite.

use crate::views::markup::terminal_cell;
use std::fmt::Write as _;
use std::time::Duration;

use foretell_core::timestamp::format_rfc3339;
use url::Url;

use crate::alerts::outbox::DeadLetter;
use crate::server::{DEAD_LETTERS_PATH, DEAD_LETTERS_RETRY_PATH};

/// Where `--url` points when not given: the default listen address, locally.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9896";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("--url: `{0}` is not an http:// or https:// URL, e.g. http://127.0.0.1:9896")]
    BadUrl(String),
    #[error("cannot reach foretell at {url}: {detail} (is it running? is --url right?)")]
    Unreachable { url: String, detail: String },
    #[error("foretell at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error(
        "foretell at {url} sent a dead letter this version cannot read (line {line}): {detail}"
    )]
    Garbled {
        url: String,
        line: usize,
        detail: String,
    },
}

pub struct AdminClient {
    base: Url,
    client: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: &str) -> Result<AdminClient, AdminError> {
        let base = Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| AdminError::BadUrl(base.to_owned()))?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("foretell-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdminError::Unreachable {
                url: base.to_string(),
                detail: e.to_string(),
            })?;
        Ok(AdminClient { base, client })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// Sends `request` and returns the body of a 2xx answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<String, AdminError> {
        let unreachable = |e: reqwest::Error| AdminError::Unreachable {
            url: url.to_owned(),
            detail: crate::error_text::transport_error(e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(AdminError::Refused {
                url: url.to_owned(),
                status: status.as_u16(),
                message: body.trim().to_owned(),
            })
        }
    }

    pub async fn list(&self) -> Result<Vec<DeadLetter>, AdminError> {
        let url = self.endpoint(DEAD_LETTERS_PATH);
        let body = self.send(self.client.get(&url), &url).await?;
        parse_dead_letters(&body).map_err(|(line, detail)| AdminError::Garbled {
            url,
            line,
            detail,
        })
    }

    /// Requeues the dead letters `ids`, or all of them; returns foretell's answer.
    pub async fn retry(&self, ids: Option<&[i64]>) -> Result<String, AdminError> {
        let query = match ids {
            Some(ids) => ids
                .iter()
                .map(|id| format!("id={id}"))
                .collect::<Vec<_>>()
                .join("&"),
            None => "all".to_owned(),
        };
        let url = format!("{}?{query}", self.endpoint(DEAD_LETTERS_RETRY_PATH));
        self.send(self.client.post(&url), &url).await
    }
}

/// Reads the API's JSON lines; `(line, problem)` for the first unreadable one.
pub fn parse_dead_letters(body: &str) -> Result<Vec<DeadLetter>, (usize, String)> {
    body.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| (i + 1, e.to_string())))
        .collect()
}

/// A table for people: one dead letter per line, the error last (it is the long part).
pub fn render_table(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let receiver_width = letters
        .iter()
        .map(|l| l.receiver.chars().count())
        .max()
        .unwrap_or(0)
        .max("RECEIVER".len());
    let mut out = format!(
        "{:>6}  {:<receiver_width$}  {:>8}  {:<20}  {:<30}  LAST ERROR\n",
        "ID", "RECEIVER", "ATTEMPTS", "DEAD SINCE", "GROUP"
    );
    for letter in letters {
        let group: String = terminal_cell(&letter.group_key).chars().take(30).collect();
        let error = terminal_cell(letter.last_error.as_deref().unwrap_or("-"));
        let _ = writeln!(
            out,
            "{:>6}  {:<receiver_width$}  {:>8}  {:<20}  {:<30}  {error}",
            letter.id,
            terminal_cell(&letter.receiver),
            letter.attempts,
            format_rfc3339(letter.updated_ms),
            group
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use foretell_testing::{json, Canned, FakeUpstream};

    fn letter(id: i64, error: Option<&str>) -> DeadLetter {
        DeadLetter {
            id,
            notification_id: 1,
            receiver: "pager".into(),
            group_key: "{}:{alertname=\"HighErrors\"}".into(),
            attempts: 3,
            created_ms: 1_700_000_000_000,
            updated_ms: 1_700_000_060_000,
            last_error: error.map(str::to_owned),
        }
    }

    #[test]
    fn lines_read_back_and_a_bad_one_is_named() {
        let body = format!(
            "{}\n\n{}\n",
            serde_json::to_string(&letter(1, Some("400"))).expect("json"),
            serde_json::to_string(&letter(2, None)).expect("json")
        );
        let letters = parse_dead_letters(&body).expect("valid");
        assert_eq!(letters, vec![letter(1, Some("400")), letter(2, None)]);
        let error = parse_dead_letters(&format!("{body}{{\"id\":\"x\"}}\n")).expect_err("bad");
        assert_eq!(error.0, 4);
    }

    #[test]
    fn the_table_has_one_line_per_letter_with_its_error() {
        let table = render_table(&[letter(17, Some("HTTP 400: bad\nrequest\u{1b}[2J"))]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(
            lines[0].starts_with("    ID  RECEIVER  ATTEMPTS"),
            "{table}"
        );
        assert!(lines[1].contains("17  pager"), "{table}");
        assert!(lines[1].contains("2023-11-14T22:14:20Z"), "{table}");
        assert!(
            lines[1].ends_with("HTTP 400: bad\\u{a}request\\u{1b}[2J"),
            "escape sequences are shown, not obeyed: {table}"
        );
        assert_eq!(render_table(&[]), "no dead letters\n");
    }

    #[tokio::test]
    async fn requests_name_the_letters_and_refusals_carry_foretells_reason() {
        let foretell = FakeUpstream::start(vec![
            json(200, "requeued 2 dead letter(s): [3, 4]\n"),
            Canned::Reply {
                status: 403,
                content_type: "text/plain",
                body: "Lifecycle API is not enabled (set server.enable_lifecycle: true).\n".into(),
            },
        ])
        .await;
        let client = AdminClient::new(&foretell.url).expect("client");
        let answer = client.retry(Some(&[3, 4])).await.expect("requeued");
        assert!(answer.contains("requeued 2"), "{answer}");
        let error = client.retry(None).await.expect_err("refused").to_string();
        assert!(
            error.contains("answered 403") && error.contains("enable_lifecycle"),
            "{error}"
        );
        let requests = foretell.requests();
        assert!(
            requests[0].starts_with("POST /api/v1/dead-letters/retry?id=3&id=4 "),
            "{}",
            requests[0]
        );
        assert!(
            requests[1].starts_with("POST /api/v1/dead-letters/retry?all "),
            "{}",
            requests[1]
        );

        let down = AdminClient::new("http://127.0.0.1:9").expect("client");
        let error = down.list().await.expect_err("down").to_string();
        assert!(
            error.contains("cannot reach foretell at http://127.0.0.1:9"),
            "{error}"
        );
        assert!(AdminClient::new("localhost:9896").is_err());
    }
}
