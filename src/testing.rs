//! Test doubles shared by unit tests: a scripted HTTP upstream on 127.0.0.1.

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

/// One request as text (lossy) and its body's bytes.
type Recorded = (String, Vec<u8>);

/// One scripted answer.
#[derive(Clone)]
pub enum Canned {
    Reply {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    Hang,
    /// Reads the request, then closes the connection without an answer.
    Close,
    /// Answers 307 Temporary Redirect to `location` (the method and body are kept).
    Redirect {
        location: String,
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
                                seen.lock().expect("lock").push((text, body));
                                break;
                            }
                        }
                    }
                    match canned {
                        Canned::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
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

    pub fn requests(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("lock");
        requests.iter().map(|(text, _)| text.clone()).collect()
    }

    /// The bodies of the requests, byte for byte.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        let requests = self.requests.lock().expect("lock");
        requests.iter().map(|(_, body)| body.clone()).collect()
    }
}
