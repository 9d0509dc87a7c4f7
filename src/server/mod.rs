//! The HTTP listener: `/metrics`, health, readiness and the lifecycle API, on hyper 1.

mod routes;
mod status;
pub mod web_config;

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::exporter::registry::Registry;
use crate::exporter::telemetry::Telemetry;
use crate::pipeline::{SnapshotCell, UpstreamHealth};
pub use routes::{handle, DEAD_LETTERS_PATH, DEAD_LETTERS_RETRY_PATH, WEBHOOK_PATH};
use web_config::{BasicAuth, WebConfig};

/// The client address of a request, set by the listener (the webhook's rate limit is per
/// address).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// The web configuration's user a request authenticated as, set by the listener.
#[derive(Clone, Debug)]
pub struct User(pub String);

/// Who asked for an administrative action over HTTP, for its audit record: the path, the
/// user (with `basic_auth_users`) and the client address, e.g.
/// `http:/-/reload user=ops address=10.0.0.7:51234`.
pub fn http_actor<B>(path: &str, request: &hyper::Request<B>) -> String {
    let mut actor = format!("http:{path}");
    if let Some(User(user)) = request.extensions().get::<User>() {
        let shown: String = user
            .chars()
            .take(64)
            .map(|c| if c.is_control() || c == ' ' { '_' } else { c })
            .collect();
        actor.push_str(&format!(" user={shown}"));
    }
    if let Some(Peer(address)) = request.extensions().get::<Peer>() {
        actor.push_str(&format!(" address={address}"));
    }
    actor
}

/// A request to reload the configuration file, answered with the outcome.
pub struct ReloadRequest {
    /// Who asked ([`http_actor`]), for the audit record.
    pub actor: String,
    pub reply: oneshot::Sender<Result<(), ReloadError>>,
}

/// Why a reload was refused; the running configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The new Prometheus client could not be built (a CA file, say).
    #[error(transparent)]
    Prometheus(#[from] crate::reader::ReadError),
    /// The folder of `state.path` could not be created.
    #[error("state.path: cannot create {}: {source}", path.display())]
    StateFolder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Everything the routes read.
pub struct AppState {
    pub snapshot: Arc<SnapshotCell>,
    pub telemetry: Arc<Telemetry>,
    pub upstream: Arc<UpstreamHealth>,
    pub lifecycle_enabled: AtomicBool,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub shutting_down: AtomicBool,
    /// The Alertmanager webhook receiver, when `alerts` is configured.
    pub alerts: Option<Arc<crate::alerts::AlertPath>>,
    /// Every stage's self-metrics, rendered after the predictions on `/metrics`.
    pub registry: Arc<Registry>,
    /// Charts of series (`/graph`).
    pub graphs: Arc<crate::graph::Grapher>,
    /// What the status page says about the configuration; replaced on reload.
    pub info: std::sync::RwLock<StatusInfo>,
    /// `/metrics` buffers kept from one scrape to the next.
    pub scrape_buffers: Arc<std::sync::Mutex<crate::exporter::scrape::ScrapeBuffers>>,
    /// `server.max_exported_series`, followed on reload.
    pub max_exported_series: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    /// A state with the lifecycle endpoints off, no alert path and nothing configured to show;
    /// callers set what differs (`AppState { alerts: ..., ..AppState::new(...) }`).
    pub fn new(
        snapshot: Arc<SnapshotCell>,
        telemetry: Arc<Telemetry>,
        reload: mpsc::Sender<ReloadRequest>,
        graphs: Arc<crate::graph::Grapher>,
    ) -> AppState {
        AppState {
            snapshot,
            upstream: Arc::new(UpstreamHealth::new(Arc::clone(&telemetry))),
            registry: Arc::new(Registry::with(telemetry.clone())),
            telemetry,
            lifecycle_enabled: AtomicBool::new(false),
            reload,
            shutting_down: AtomicBool::new(false),
            alerts: None,
            graphs,
            info: Default::default(),
            scrape_buffers: Default::default(),
            max_exported_series: Arc::new(std::sync::atomic::AtomicUsize::new(
                crate::config::DEFAULT_MAX_EXPORTED_SERIES,
            )),
        }
    }
}

/// The configuration as the status page shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub prometheus_url: String,
    pub queries: Vec<QueryInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueryInfo {
    pub name: String,
    pub expr: String,
    pub step: Duration,
    pub history: Duration,
    pub evaluation_interval: Duration,
    /// It compares its series with their peers (`queries[].peers`).
    pub peers: bool,
}

impl StatusInfo {
    pub fn of(config: &crate::config::Config) -> StatusInfo {
        StatusInfo {
            prometheus_url: config.prometheus.url.to_string(),
            queries: config
                .queries
                .iter()
                .map(|q| QueryInfo {
                    name: q.name.clone(),
                    expr: q.expr.clone(),
                    step: q.step,
                    history: q.history,
                    evaluation_interval: q.evaluation_interval,
                    peers: q.peers.is_some(),
                })
                .collect(),
        }
    }
}

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is cancelled, then lets in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    web: WebConfig,
    stop: CancellationToken,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let tls = web.tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let basic_auth = web.basic_auth.clone();
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let state = Arc::clone(&state);
            let basic_auth = basic_auth.clone();
            request.extensions_mut().insert(Peer(peer));
            async move {
                if let Some(refused) = authenticate(&state, basic_auth, &mut request).await {
                    return Ok::<_, Infallible>(refused);
                }
                Ok::<_, Infallible>(handle(&state, request).await)
            }
        });
        let builder = {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            builder
        };
        match &tls {
            None => {
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = watched.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's own task, bounded like a request
                // head, so a client that stalls it holds up nobody else. The watcher is taken
                // now, so shutdown waits for this connection too once it is established.
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "connections still open after the shutdown grace period; closing them"),
    }
}

/// `None` when the request may proceed; otherwise the 401 to answer. With `basic_auth_users`
/// every path needs a configured user, except the webhook when `alerts.bearer_token_file` (or
/// `_env`) protects it: Alertmanager sends one `Authorization` header, and the webhook's own
/// token is checked by the receiver.
async fn authenticate<B>(
    state: &AppState,
    basic_auth: Option<Arc<BasicAuth>>,
    request: &mut hyper::Request<B>,
) -> Option<hyper::Response<http_body_util::Full<bytes::Bytes>>> {
    let basic_auth = basic_auth?;
    let webhook_has_token = state
        .alerts
        .as_ref()
        .is_some_and(|alerts| alerts.webhook().has_token());
    if request.uri().path() == WEBHOOK_PATH && webhook_has_token {
        return None;
    }
    let header = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // bcrypt is deliberately slow: off the async threads.
    let allowed = tokio::task::spawn_blocking(move || basic_auth.allows(header.as_deref()))
        .await
        .unwrap_or(None);
    if let Some(user) = allowed {
        request.extensions_mut().insert(User(user));
        return None;
    }
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"Unauthorized: this foretell requires a user of its web configuration file\n",
    )));
    *response.status_mut() = hyper::StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"foretell\""),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_and_basic_auth_guard_the_listener() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: {hash}\n",
                fixtures.join("server.crt").display(),
                fixtures.join("server.key").display()
            ),
        )
        .expect("write");
        let web = web_config::load(&path).expect("valid");
        let (state, _reloads) = routes::tests::state(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(state),
            web,
            stop.clone(),
            Duration::from_secs(1),
        ));
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.crt")).expect("ca"))
                .expect("pem");
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let url = format!("https://127.0.0.1:{port}/metrics");
        let anonymous = client.get(&url).send().await.expect("TLS works");
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Basic realm=\"foretell\""
        );
        let wrong = client
            .get(&url)
            .basic_auth("prometheus", Some("nope"))
            .send()
            .await
            .expect("answer");
        assert_eq!(wrong.status(), 401);
        let allowed = client
            .get(&url)
            .basic_auth("prometheus", Some("pw"))
            .send()
            .await
            .expect("answer");
        assert_eq!(allowed.status(), 200);
        assert!(allowed
            .text()
            .await
            .expect("body")
            .contains("foretell_build_info"));
        let health = client
            .get(format!("https://127.0.0.1:{port}/-/healthy"))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            health.status(),
            401,
            "every path, as in the exporter toolkit"
        );
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .is_err(),
            "plain HTTP gets no answer"
        );
        stop.cancel();
        server.await.expect("stops");
    }

    #[tokio::test]
    async fn shutdown_waits_for_a_request_in_flight_on_a_tls_connection() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                fixtures.join("server.crt").display(),
                fixtures.join("server.key").display()
            ),
        )
        .expect("write");
        let web = web_config::load(&path).expect("valid");
        // A reload holds its request open until the test answers it.
        let (state, mut reloads) = routes::tests::state(true);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(state),
            web,
            stop.clone(),
            Duration::from_secs(10),
        ));
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.crt")).expect("ca"))
                .expect("pem");
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("client");
        let in_flight = tokio::spawn(
            client
                .post(format!("https://127.0.0.1:{port}/-/reload"))
                .send(),
        );
        let reload = reloads.recv().await.expect("the reload arrives");
        stop.cancel();
        // Once the listener is closed the server is draining: it may only finish when the
        // request in flight has been answered.
        foretell_testing::eventually_true("the listener closed", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        })
        .await;
        assert!(
            !server.is_finished(),
            "shutdown waits for the TLS connection's request"
        );
        reload.reply.send(Ok(())).expect("answer");
        let response = in_flight.await.expect("join").expect("answered");
        assert_eq!(response.status(), 200);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("drained once answered")
            .expect("stops");
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_head_is_cut_off_and_others_are_served() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (state, _reloads) = routes::tests::state(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(state),
            WebConfig::default(),
            stop.clone(),
            Duration::from_secs(1),
        ));
        // Slowloris: a request head begun and never ended.
        let mut slow = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        // Meanwhile others are served at once.
        let started = crate::clock::Stopwatch::start();
        let response = reqwest::get(format!("http://{address}/-/healthy"))
            .await
            .expect("served");
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2));
        // The slow one is answered 408 or dropped once the head timeout passes.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            HEADER_READ_TIMEOUT + Duration::from_secs(5),
            slow.read_to_end(&mut answer),
        )
        .await;
        assert!(
            read.is_ok(),
            "the connection is closed after the head timeout"
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
        stop.cancel();
        server.await.expect("stops");
    }
}
