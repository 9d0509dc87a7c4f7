//! Test support shared by foretell's unit tests and its end-to-end tests: one scripted HTTP
//! fake on 127.0.0.1 ([`FakeUpstream`]: Prometheus, an alert receiver, a remote-write
//! endpoint) and one bounded wait ([`eventually`]).
// Test support: a failed expectation is the test failing.
#![allow(clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A scripted HTTP/1.1 upstream on 127.0.0.1: answers requests with the canned responses in
/// order (the last one repeats) and records each request's head and body.
pub struct FakeUpstream {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<(Vec<Canned>, usize)>>,
}

/// One request as text (lossy), its body's bytes and the status it was answered with (`None`:
/// not answered with a status line).
type Recorded = (String, Vec<u8>, Option<u16>);

/// One scripted answer.
#[derive(Clone)]
pub enum Canned {
    Reply {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// An empty answer with only this status (no `Retry-After`), as a plain receiver gives.
    Status(u16),
    Hang,
    /// Reads the request, then closes the connection without an answer.
    Close,
    /// Answers 307 Temporary Redirect to `location` (the method and body are kept).
    Redirect {
        location: String,
    },
    /// Answers 200 with `body` as gzip-compressed JSON (`Content-Encoding: gzip`), as a
    /// Prometheus asked for it does.
    Gzipped {
        body: String,
    },
    /// Answers 200 with a head announcing `length` bytes, then sends the body one byte per
    /// `every`, as a proxy stuck behind a slow link would.
    Trickle {
        length: usize,
        every: Duration,
    },
}

pub fn json(status: u16, body: &str) -> Canned {
    Canned::Reply {
        status,
        content_type: "application/json",
        body: body.to_owned(),
    }
}

pub fn matrix(series: &[(&str, &[(i64, &str)])]) -> String {
    let result: Vec<String> = series
        .iter()
        .map(|(instance, points)| {
            let values: Vec<String> = points
                .iter()
                .map(|(t, v)| format!("[{t},\"{v}\"]"))
                .collect();
            format!(
                r#"{{"metric":{{"__name__":"up","instance":"{instance}"}},"values":[{}]}}"#,
                values.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
        result.join(",")
    )
}

impl FakeUpstream {
    pub async fn start(script: Vec<Canned>) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let script = Arc::new(Mutex::new((script, 0usize)));
        let scripted = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let canned = {
                    let mut script = scripted.lock().expect("lock");
                    let (answers, served) = &mut *script;
                    let canned = answers[(*served).min(answers.len() - 1)].clone();
                    *served += 1;
                    canned
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut len = 0;
                    // Read until the head and the announced body have arrived.
                    loop {
                        if len == buf.len() {
                            // A large request (a delivery of many alerts): read on.
                            buf.resize(buf.len() * 2, 0);
                        }
                        let Ok(n) = socket.read(&mut buf[len..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        len += n;
                        let text = String::from_utf8_lossy(&buf[..len]).to_string();
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let content_length = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if len >= head_end + 4 + content_length {
                                let body = buf[head_end + 4..len].to_vec();
                                let status = match &canned {
                                    Canned::Reply { status, .. } | Canned::Status(status) => {
                                        Some(*status)
                                    }
                                    Canned::Redirect { .. } => Some(307),
                                    Canned::Trickle { .. } | Canned::Gzipped { .. } => Some(200),
                                    Canned::Hang | Canned::Close => None,
                                };
                                seen.lock().expect("lock").push((text, body, status));
                                break;
                            }
                        }
                    }
                    match canned {
                        Canned::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                        Canned::Status(status) => {
                            let response = format!(
                                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = socket.write_all(response.as_bytes()).await;
                        }
                        Canned::Close => {}
                        Canned::Redirect { location } => {
                            let response = format!(
                                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = socket.write_all(response.as_bytes()).await;
                        }
                        Canned::Trickle { length, every } => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
                            );
                            if socket.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            for _ in 0..length {
                                tokio::time::sleep(every).await;
                                if socket.write_all(b" ").await.is_err() {
                                    return;
                                }
                            }
                        }
                        Canned::Gzipped { body } => {
                            use std::io::Write as _;
                            let mut encoder = flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::default(),
                            );
                            encoder.write_all(body.as_bytes()).expect("gzip");
                            let compressed = encoder.finish().expect("gzip");
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                compressed.len()
                            );
                            let _ = socket.write_all(head.as_bytes()).await;
                            let _ = socket.write_all(&compressed).await;
                        }
                        Canned::Reply {
                            status,
                            content_type,
                            body,
                        } => {
                            let response = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = socket.write_all(response.as_bytes()).await;
                        }
                    }
                });
            }
        });
        FakeUpstream {
            url,
            requests,
            script,
        }
    }

    /// Answers the next requests from `script` (its last answer repeating), as from the start.
    pub fn rescript(&self, script: Vec<Canned>) {
        *self.script.lock().expect("lock") = (script, 0);
    }

    /// Every request so far, head and body as text, oldest first.
    pub fn requests(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("lock");
        requests.iter().map(|(text, _, _)| text.clone()).collect()
    }

    /// The bodies of the requests, byte for byte.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        let requests = self.requests.lock().expect("lock");
        requests.iter().map(|(_, body, _)| body.clone()).collect()
    }

    /// Head (as text) and body of the requests answered with a 2xx: what a receiver took.
    pub fn accepted(&self) -> Vec<(String, Vec<u8>)> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .filter(|(_, _, status)| status.is_some_and(|s| (200..300).contains(&s)))
            .map(|(text, body, _)| {
                let head = text
                    .split_once("\r\n\r\n")
                    .map_or(text.as_str(), |(h, _)| h);
                (head.to_owned(), body.clone())
            })
            .collect()
    }
}

/// Polls `check` until it gives a value and returns it, for at most `within`; past that the
/// test fails, naming `what` it waited for. The wait is bounded by the runtime's timer, so it
/// needs no clock of its own.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    // Often enough for in-process work, without hammering a real server.
    let poll = (within / 100).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let polled = tokio::time::timeout(within, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(poll).await;
        }
    })
    .await;
    match polled {
        Ok(value) => value,
        Err(_) => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// [`eventually`] for a condition that is checked without waiting.
pub async fn eventually_true(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    eventually(what, within, || std::future::ready(done().then_some(()))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_returns_the_first_value_and_fails_past_its_bound() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(1), || {
            calls += 1;
            std::future::ready((calls == 3).then_some(calls * 10))
        })
        .await;
        assert_eq!(value, 30);
        let never = tokio::spawn(eventually_true(
            "something that never happens",
            Duration::from_millis(50),
            || false,
        ));
        let failure = never.await.expect_err("the wait fails");
        assert!(failure.is_panic());
    }

    #[tokio::test]
    async fn the_fake_records_requests_and_what_it_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fake = FakeUpstream::start(vec![json(503, "{}"), json(200, "{}")]).await;
        let address = fake.url.trim_start_matches("http://").to_owned();
        for n in 0..2 {
            let mut socket = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            let request = format!("POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n{n}");
            socket.write_all(request.as_bytes()).await.expect("send");
            let mut answer = String::new();
            socket.read_to_string(&mut answer).await.expect("answer");
            assert!(answer.starts_with(if n == 0 {
                "HTTP/1.1 503"
            } else {
                "HTTP/1.1 200"
            }));
        }
        assert_eq!(fake.requests().len(), 2);
        let accepted = fake.accepted();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].1, b"1");
        assert!(accepted[0].0.starts_with("POST /hook"));
    }
}
