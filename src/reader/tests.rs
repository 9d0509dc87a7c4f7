use std::path::Path;

use super::*;
use crate::config::{self, SystemEnvironment};
use foretell_testing::{json, matrix, Canned, FakeUpstream};

fn reader_for(url: &str, extra: &str) -> PrometheusReader {
    let text = format!(
        "prometheus:\n  url: {url}\n  timeout: 500ms\n  retry:\n    max_attempts: 3\n    initial_backoff: 1ms\n    max_backoff: 5ms\n{extra}queries:\n  - name: q\n    expr: up\n"
    );
    let config =
        config::parse(&text, Path::new("test.yml"), &SystemEnvironment).expect("valid config");
    PrometheusReader::new(&config.prometheus).expect("client")
}

fn query(start_ms: i64, end_ms: i64, step_ms: i64) -> RangeQuery<'static> {
    RangeQuery {
        expr: "up",
        start_ms,
        end_ms,
        step_ms,
    }
}

#[test]
fn ranges_split_at_the_point_limit_on_the_grid() {
    assert_eq!(split_range(0, 90, 10, 11_000), vec![(0, 90)]);
    assert_eq!(split_range(0, 90, 10, 4), vec![(0, 30), (40, 70), (80, 90)]);
    assert_eq!(split_range(0, 0, 10, 4), vec![(0, 0)]);
    assert!(split_range(10, 0, 10, 4).is_empty());
    // 25,000 points at the Prometheus limit: 11,000 + 11,000 + 3,000.
    let chunks = split_range(0, 24_999, 1, 11_000);
    let sizes: Vec<i64> = chunks.iter().map(|(s, e)| e - s + 1).collect();
    assert_eq!(sizes, vec![11_000, 11_000, 3_000]);
}

#[tokio::test]
async fn split_requests_are_merged_per_series() {
    let upstream = FakeUpstream::start(vec![
        json(
            200,
            &matrix(&[("a", &[(0, "1"), (10, "2")]), ("b", &[(10, "5")])]),
        ),
        json(200, &matrix(&[("a", &[(20, "3")])])),
    ])
    .await;
    let reader = reader_for(&upstream.url, "  max_points_per_request: 2\n");
    let answer = reader
        .query_range(&query(0, 20_000, 10_000))
        .await
        .expect("ok");
    assert_eq!(answer.requests, 2);
    assert_eq!(answer.series.len(), 2);
    let a: Vec<f64> = answer.series[0].1.iter().map(|s| s.value).collect();
    assert_eq!(a, vec![1.0, 2.0, 3.0]);
    let requests = upstream.requests();
    assert!(
        requests[0].starts_with("POST /api/v1/query_range HTTP/1.1"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].ends_with("query=up&start=0&end=10&step=10"),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].ends_with("query=up&start=20&end=20&step=10"),
        "{}",
        requests[1]
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let upstream = FakeUpstream::start(vec![
        Canned::Reply {
            status: 503,
            content_type: "text/plain",
            body: "Service Unavailable".into(),
        },
        json(200, &matrix(&[("a", &[(0, "1")])])),
    ])
    .await;
    let answer = reader_for(&upstream.url, "")
        .query_range(&query(0, 0, 1000))
        .await
        .expect("ok");
    assert_eq!(answer.retries, 1);
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn bad_queries_are_not_retried_and_keep_prometheus_words() {
    for status in [400, 422] {
        let upstream = FakeUpstream::start(vec![json(
            status,
            r#"{"status":"error","errorType":"bad_data","error":"1:4: parse error: unexpected <op:*>"}"#,
        )])
        .await;
        let error = reader_for(&upstream.url, "")
            .query_range(&query(0, 0, 1000))
            .await
            .expect_err("fails");
        assert_eq!(error.reason(), FailureReason::BadQuery);
        assert!(!error.means_upstream_down());
        assert!(
            error
                .to_string()
                .contains("parse error: unexpected <op:*> (errorType bad_data)"),
            "{error}"
        );
        assert_eq!(
            upstream.requests().len(),
            1,
            "a {status} must not be retried"
        );
    }
}

#[tokio::test]
async fn html_and_plain_text_error_pages_are_server_errors_with_an_excerpt() {
    let upstream = FakeUpstream::start(vec![Canned::Reply {
        status: 502,
        content_type: "text/html",
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
    }])
    .await;
    let error = reader_for(&upstream.url, "")
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::ServerError);
    assert!(error.means_upstream_down());
    assert!(
        error.to_string().contains(
            "HTTP 502: not an API answer; body starts with: <html><body><h1>502 Bad Gateway"
        ),
        "{error}"
    );
    assert_eq!(upstream.requests().len(), 3, "retried up to max_attempts");
}

#[tokio::test]
async fn truncated_json_on_success_is_a_decode_error() {
    let upstream = FakeUpstream::start(vec![json(
        200,
        r#"{"status":"success","data":{"resultType":"matr"#,
    )])
    .await;
    let error = reader_for(&upstream.url, "")
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::Decode);
    assert!(error.to_string().contains("EOF while parsing"), "{error}");
}

#[tokio::test]
async fn an_oversized_single_point_is_refused() {
    let big = matrix(&[("a", &[(0, "1"); 200])]);
    let upstream = FakeUpstream::start(vec![json(200, &big)]).await;
    let error = reader_for(&upstream.url, "  max_response_bytes: 1024\n")
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::TooLarge);
    assert!(
        error
            .to_string()
            .contains("max_response_bytes (1024 bytes)"),
        "{error}"
    );
}

/// `prometheus.compression: gzip` asks for gzip and reads the compressed answer; without it
/// nothing is asked (a Prometheus answers plain JSON then).
#[tokio::test]
async fn answers_are_asked_for_gzip_only_when_configured() {
    let body = matrix(&[("a", &[(0, "1"), (10, "2")])]);
    let upstream = FakeUpstream::start(vec![Canned::Gzipped { body: body.clone() }]).await;
    let answer = reader_for(&upstream.url, "  compression: gzip\n")
        .query_range(&query(0, 10_000, 10_000))
        .await
        .expect("a gzip answer is decoded");
    let values: Vec<f64> = answer.series[0].1.iter().map(|s| s.value).collect();
    assert_eq!(values, vec![1.0, 2.0]);
    let head = upstream.requests()[0].to_ascii_lowercase();
    assert!(head.contains("\r\naccept-encoding: gzip\r\n"), "{head}");

    let plain = FakeUpstream::start(vec![json(200, &body)]).await;
    reader_for(&plain.url, "")
        .query_range(&query(0, 10_000, 10_000))
        .await
        .expect("plain");
    let head = plain.requests()[0].to_ascii_lowercase();
    assert!(!head.contains("accept-encoding"), "{head}");
}

/// The response cap counts decoded bytes: a small compressed answer that inflates beyond it is
/// refused as a large plain one is, so gzip cannot carry a memory bomb past it.
#[tokio::test]
async fn a_compressed_answer_is_capped_by_its_decoded_size() {
    let big = matrix(&[("a", &[(0, "1"); 2000])]);
    let upstream = FakeUpstream::start(vec![Canned::Gzipped { body: big }]).await;
    let error = reader_for(
        &upstream.url,
        "  compression: gzip\n  max_response_bytes: 4096\n",
    )
    .query_range(&query(0, 0, 1000))
    .await
    .expect_err("refused");
    assert_eq!(error.reason(), FailureReason::TooLarge, "{error}");
}

#[tokio::test]
async fn an_oversized_range_is_fetched_in_halves() {
    // Regression (issue 2): 1,000 series x 2 days answered 86 MB in one request and the first
    // load failed forever. The first answer is too large; each half then fits.
    let big = matrix(&[("a", &[(0, "1"); 200])]);
    let upstream = FakeUpstream::start(vec![
        json(200, &big),
        json(200, &matrix(&[("a", &[(0, "1"), (10, "2")])])),
        json(200, &matrix(&[("a", &[(20, "3"), (30, "4")])])),
    ])
    .await;
    let answer = reader_for(&upstream.url, "  max_response_bytes: 1024\n")
        .query_range(&query(0, 30_000, 10_000))
        .await
        .expect("loads in halves");
    assert_eq!(answer.requests, 3);
    let values: Vec<f64> = answer.series[0].1.iter().map(|s| s.value).collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0]);
    let requests = upstream.requests();
    assert!(
        requests[1].ends_with("start=0&end=10&step=10"),
        "{}",
        requests[1]
    );
    assert!(
        requests[2].ends_with("start=20&end=30&step=10"),
        "{}",
        requests[2]
    );
}

#[tokio::test]
async fn unreachable_and_silent_upstreams_are_classified() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let error = reader_for(&format!("http://127.0.0.1:{port}"), "")
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::Connect);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot reach http://127.0.0.1:{port}/api/v1/query_range"
        )),
        "{error}"
    );

    let upstream = FakeUpstream::start(vec![Canned::Hang]).await;
    let error = reader_for(&upstream.url, "")
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::Timeout);
    assert!(error.means_upstream_down());
}

#[tokio::test]
async fn thanos_partial_response_is_sent_when_configured() {
    let upstream = FakeUpstream::start(vec![json(200, &matrix(&[("a", &[(0, "1")])]))]).await;
    let reader = reader_for(&upstream.url, "  partial_response: false\n");
    reader.query_range(&query(0, 0, 10_000)).await.expect("ok");
    let requests = upstream.requests();
    assert!(
        requests[0].ends_with("query=up&start=0&end=0&step=10&partial_response=false"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn credentials_and_tenant_headers_are_sent_and_path_prefix_kept() {
    let upstream = FakeUpstream::start(vec![json(200, &matrix(&[]))]).await;
    std::env::set_var("FORETELL_TEST_READER_TOKEN", "tok-123");
    let reader = reader_for(
        &format!("{}/prometheus/", upstream.url),
        "  bearer_token_env: FORETELL_TEST_READER_TOKEN\n  headers:\n    X-Scope-OrgID: team-a\n",
    );
    reader.query_range(&query(0, 0, 1000)).await.expect("ok");
    let request = upstream.requests()[0].to_ascii_lowercase();
    assert!(
        request.starts_with("post /prometheus/api/v1/query_range "),
        "{request}"
    );
    assert!(
        request.contains("authorization: bearer tok-123"),
        "{request}"
    );
    assert!(request.contains("x-scope-orgid: team-a"), "{request}");
}

/// A resolver whose every lookup fails the way a name server answering NXDOMAIN makes the
/// system resolver fail, counting the lookups.
struct NoSuchHost(std::sync::atomic::AtomicUsize);

impl reqwest::dns::Resolve for NoSuchHost {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("failed to lookup address information: Name or service not known ({host})"),
            )) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_a_dns_failure_retried_with_backoff() {
    let text = "prometheus:\n  url: http://prometheus.invalid:9090\n  timeout: 500ms\n  retry:\n    max_attempts: 3\n    initial_backoff: 20ms\n    max_backoff: 40ms\nqueries:\n  - name: q\n    expr: up\n";
    let config = config::parse(text, Path::new("test.yml"), &SystemEnvironment).expect("valid");
    let resolver = Arc::new(NoSuchHost(Default::default()));
    let reader =
        PrometheusReader::with_resolver(&config.prometheus, Arc::clone(&resolver)).expect("client");
    let started = crate::clock::Stopwatch::start();
    let error = reader
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::Dns);
    assert_eq!(error.reason().as_str(), "dns");
    assert!(error.is_retryable() && error.means_upstream_down());
    let message = error.to_string();
    assert!(
        message.starts_with("cannot resolve the host of http://prometheus.invalid:9090/")
            && message.contains("Name or service not known"),
        "{message}"
    );
    // Three lookups, with backoff between them: no hot loop.
    assert_eq!(
        resolver.0.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one lookup per attempt"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
}

#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_cut_off_at_the_timeout() {
    // 100 KB at a byte per 10 ms would take 17 minutes.
    let upstream = FakeUpstream::start(vec![Canned::Trickle {
        length: 100_000,
        every: std::time::Duration::from_millis(10),
    }])
    .await;
    let reader = reader_for(&upstream.url, "");
    let started = crate::clock::Stopwatch::start();
    let error = reader
        .query_range(&query(0, 0, 1000))
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::Timeout, "{error}");
    // Three attempts of 500 ms each and their backoff, not the body's 17 minutes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn retries_of_a_range_that_fails_in_the_end_are_counted_too() {
    let upstream = FakeUpstream::start(vec![Canned::Reply {
        status: 503,
        content_type: "text/plain",
        body: "overloaded".into(),
    }])
    .await;
    let reader = reader_for(&upstream.url, "");
    let mut retries = 0;
    let error = reader
        .query_range_counting(&query(0, 0, 1000), &mut retries)
        .await
        .expect_err("fails");
    assert_eq!(error.reason(), FailureReason::ServerError);
    assert_eq!((retries, upstream.requests().len()), (2, 3));
}

/// Issue 16, item 8: a redirect to another origin was followed carrying `X-Scope-OrgID` and
/// `X-Api-Key`. Within the origin a redirect is still followed.
#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() {
    let elsewhere = FakeUpstream::start(vec![json(200, &matrix(&[]))]).await;
    let redirecting = FakeUpstream::start(vec![Canned::Redirect {
        location: format!("{}/api/v1/query_range", elsewhere.url),
    }])
    .await;
    let reader = reader_for(
        &redirecting.url,
        "  headers:\n    X-Scope-OrgID: tenant-a\n",
    );
    let error = reader
        .query_range(&query(0, 60_000, 60_000))
        .await
        .expect_err("not followed");
    assert!(error.to_string().contains("another origin"), "{error}");
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the other origin"
    );
    assert!(redirecting.requests()[0].contains("x-scope-orgid: tenant-a"));

    let moved = FakeUpstream::start(vec![json(200, &matrix(&[("a", &[(60, "1")])]))]).await;
    moved.rescript(vec![
        Canned::Redirect {
            location: format!("{}/moved/api/v1/query_range", moved.url),
        },
        json(200, &matrix(&[("a", &[(60, "1")])])),
    ]);
    let answer = reader_for(&moved.url, "")
        .query_range(&query(0, 60_000, 60_000))
        .await
        .expect("followed within the origin");
    assert_eq!(answer.series.len(), 1);
    assert!(moved.requests()[1].contains("/moved/api/v1/query_range"));
}

const PROMETHEUS_FLAGS: &str =
    r#"{"status":"success","data":{"query.lookback-delta":"5m","web.listen-address":":9090"}}"#;
const PROMETHEUS_BUILDINFO: &str =
    r#"{"status":"success","data":{"version":"2.42.0+ds","branch":"debian/sid"}}"#;

/// A `query_range` answer with one series of one point.
fn one_series() -> Canned {
    json(200, &matrix(&[("a", &[(0, "1")])]))
}

/// `times` history loads of `range` one after the other.
async fn load_history(
    reader: &PrometheusReader,
    range: RangeQuery<'_>,
    times: usize,
) -> Vec<RangeAnswer> {
    let mut answers = Vec::new();
    for _ in 0..times {
        answers.push(
            reader
                .history_counting(&range, &mut 0)
                .await
                .expect("history loads"),
        );
    }
    answers
}

fn paths(upstream: &FakeUpstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|r| r.lines().next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_server_that_does_not_report_its_lookback_gets_query_range() {
    let upstream = FakeUpstream::start(vec![
        Canned::Status(404),
        Canned::Status(404),
        one_series(),
        one_series(),
    ])
    .await;
    let reader = reader_for(&upstream.url, "");
    for answer in load_history(&reader, query(0, 0, 1000), 2).await {
        assert!(!answer.remote_read);
        assert_eq!(answer.series.len(), 1);
    }
    assert_eq!(
        paths(&upstream),
        vec![
            "GET /api/v1/status/flags HTTP/1.1",
            "GET /api/v1/status/buildinfo HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn a_refused_remote_read_falls_back_to_query_range_until_asked_again() {
    let upstream = FakeUpstream::start(vec![
        json(200, PROMETHEUS_FLAGS),
        json(200, PROMETHEUS_BUILDINFO),
        Canned::Status(404),
        one_series(),
        one_series(),
    ])
    .await;
    let reader = reader_for(&upstream.url, "");
    for answer in load_history(&reader, query(600_000, 660_000, 60_000), 2).await {
        assert!(!answer.remote_read);
    }
    let requests = upstream.requests();
    assert_eq!(
        paths(&upstream),
        vec![
            "GET /api/v1/status/flags HTTP/1.1",
            "GET /api/v1/status/buildinfo HTTP/1.1",
            "POST /api/v1/read HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
        ]
    );
    // The read asked for the selector's stored samples from a lookback before the first grid
    // point, snappy-compressed, as Prometheus' remote read expects.
    let read = requests[2].to_ascii_lowercase();
    assert!(read.contains("content-encoding: snappy"), "{read}");
    assert!(
        read.contains("x-prometheus-remote-read-version: 0.1.0"),
        "{read}"
    );
    let body = snap::raw::Decoder::new()
        .decompress_vec(&upstream.bodies()[2])
        .expect("snappy");
    let matchers = foretell_core::selector::matchers("up").expect("a selector");
    assert_eq!(
        body,
        wire::remote_read::encode_request(&matchers, 600_000 - 300_000, 660_000)
    );
}

#[tokio::test]
async fn an_answer_that_is_not_streamed_chunks_falls_back_and_other_expressions_never_try() {
    let upstream = FakeUpstream::start(vec![
        json(200, PROMETHEUS_FLAGS),
        json(200, PROMETHEUS_BUILDINFO),
        Canned::Reply {
            status: 200,
            content_type: "application/x-protobuf",
            body: "samples".to_owned(),
        },
        one_series(),
        one_series(),
    ])
    .await;
    let reader = reader_for(&upstream.url, "");
    assert!(!load_history(&reader, query(0, 0, 1000), 1).await[0].remote_read);
    let computed = RangeQuery {
        expr: "rate(up[5m])",
        ..query(0, 0, 1000)
    };
    load_history(&reader, computed, 1).await;
    assert_eq!(paths(&upstream).len(), 5);
    assert_eq!(paths(&upstream)[2], "POST /api/v1/read HTTP/1.1");
}

#[tokio::test]
async fn a_transient_failure_to_ask_is_asked_again_and_off_never_asks() {
    let upstream = FakeUpstream::start(vec![
        Canned::Status(503),
        one_series(),
        Canned::Status(404),
        Canned::Status(404),
        one_series(),
    ])
    .await;
    let reader = reader_for(&upstream.url, "");
    load_history(&reader, query(0, 0, 1000), 2).await;
    assert_eq!(
        paths(&upstream),
        vec![
            "GET /api/v1/status/flags HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
            "GET /api/v1/status/flags HTTP/1.1",
            "GET /api/v1/status/buildinfo HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
        ]
    );
    let upstream = FakeUpstream::start(vec![one_series()]).await;
    let reader = reader_for(&upstream.url, "  remote_read: off\n");
    load_history(&reader, query(0, 0, 1000), 1).await;
    assert_eq!(paths(&upstream), vec!["POST /api/v1/query_range HTTP/1.1"]);
}

#[tokio::test]
async fn requests_in_flight_together_ask_the_server_once() {
    let upstream = FakeUpstream::start(vec![
        Canned::Status(404),
        Canned::Status(404),
        one_series(),
        one_series(),
    ])
    .await;
    let reader = reader_for(&upstream.url, "");
    let range = query(0, 0, 1000);
    let (mut first_retries, mut second_retries) = (0, 0);
    let (first, second) = tokio::join!(
        reader.history_counting(&range, &mut first_retries),
        reader.history_counting(&range, &mut second_retries),
    );
    assert!(first.is_ok() && second.is_ok());
    let asked: Vec<String> = paths(&upstream)
        .into_iter()
        .filter(|p| p.starts_with("GET"))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
}

#[tokio::test]
async fn what_the_server_said_is_asked_again_later() {
    let upstream = FakeUpstream::start(vec![
        Canned::Status(404),
        Canned::Status(404),
        one_series(),
        json(200, PROMETHEUS_FLAGS),
        json(200, PROMETHEUS_BUILDINFO),
        Canned::Status(400),
        one_series(),
    ])
    .await;
    let mut reader = reader_for(&upstream.url, "");
    reader.remote_read.ask_again_after(Duration::ZERO);
    load_history(&reader, query(0, 0, 1000), 2).await;
    assert_eq!(
        paths(&upstream),
        vec![
            "GET /api/v1/status/flags HTTP/1.1",
            "GET /api/v1/status/buildinfo HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
            "GET /api/v1/status/flags HTTP/1.1",
            "GET /api/v1/status/buildinfo HTTP/1.1",
            "POST /api/v1/read HTTP/1.1",
            "POST /api/v1/query_range HTTP/1.1",
        ],
        "a server found without remote read is asked again, and then read from"
    );
}
