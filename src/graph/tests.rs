use super::*;
use url::Url;

#[test]
fn requests_are_read_with_defaults_and_errors_say_which_parameter() {
    let request = parse_request("query=demo&series=%7Binstance%3D%22a%22%7D").expect("valid");
    assert_eq!(request.source, Source::Query("demo".into()));
    assert_eq!(request.series, Labels::from_pairs([("instance", "a")]));
    assert_eq!(request.range, DEFAULT_RANGE);
    let request = parse_request("expr=rate(x%5B5m%5D)&range=1h").expect("valid");
    assert_eq!(request.source, Source::Expr("rate(x[5m])".into()));
    assert_eq!(request.range, Duration::from_secs(3600));
    for (query, says) in [
        ("", "name the series"),
        ("query=a&expr=b", "not both"),
        ("query=a&range=0s", "`range`"),
        ("query=a&range=soon", "`range`"),
        ("query=a&series=%7Bjob%3D~%22a%22%7D", "`series`"),
        ("query=a&colour=red", "unknown parameter `colour`"),
    ] {
        let error = parse_request(query).expect_err(query).to_string();
        assert!(error.contains(says), "{query}: {error}");
    }
}

#[test]
fn links_read_back_as_the_same_request() {
    let base = Url::parse("http://foretell.example:9896/").expect("url");
    let labels = Labels::from_pairs([
        ("__name__", "up"),
        ("job", "a&b=\"c\""),
        ("instance", "x y"),
    ]);
    let signer = signer();
    let link = link(
        &base,
        &Source::Expr("sum(rate(x[5m])) > 1".into()),
        &labels,
        Some(&signer),
    );
    assert!(
        link.starts_with("http://foretell.example:9896/graph?expr="),
        "{link}"
    );
    let request = parse_request(link.split_once('?').expect("query").1).expect("parses");
    assert_eq!(request.source, Source::Expr("sum(rate(x[5m])) > 1".into()));
    assert!(signer.verify(
        "sum(rate(x[5m])) > 1",
        request.signature.as_deref().expect("signed")
    ));
    assert_eq!(
        request.series,
        Labels::from_pairs([("job", "a&b=\"c\""), ("instance", "x y")])
    );
    let prefixed = Url::parse("https://ops.example/foretell").expect("url");
    assert!(link_for_query(&prefixed).starts_with("https://ops.example/foretell/graph?query=q"));
}

fn link_for_query(base: &Url) -> String {
    link(base, &Source::Query("q".into()), &Labels::default(), None)
}

fn signer() -> LinkSigner {
    LinkSigner::new(
        &foretell_core::audit::KeyRing::parse(&format!("k1:{}", "5a".repeat(32))).expect("keys"),
    )
}

fn grapher(prometheus: &str, on_demand: bool, now_ms: i64) -> Grapher {
    grapher_with(
        prometheus,
        on_demand.then_some(GraphExpressions::Any),
        now_ms,
    )
}

fn grapher_with(prometheus: &str, expressions: Option<GraphExpressions>, now_ms: i64) -> Grapher {
    let text = format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 2s\n  retry:\n    max_attempts: 1\nqueries:\n  - name: demo\n    expr: up\n    step: 1m\n    history: 6h\n"
    );
    let config = crate::config::parse(
        &text,
        std::path::Path::new("test.yml"),
        &crate::config::SystemEnvironment,
    )
    .expect("config");
    Grapher::new(
        PrometheusReader::new(&config.prometheus).expect("client"),
        &config.queries,
        expressions.map(|graph_expressions| ExpressionCharts {
            settings: OnDemandConfig {
                history: Duration::from_secs(6 * 3600),
                step: Duration::from_secs(60),
                timeout: Duration::from_secs(2),
                graph_expressions,
            },
            signer: signer(),
        }),
        Arc::new(crate::clock::ManualClock::new(now_ms)),
    )
}

/// Eight hours of a noisy series at 1m ending at `end_s`, with a spike near the end.
fn history(end_s: i64) -> String {
    let points: Vec<(i64, String)> = (0..480)
        .map(|i| {
            let value = 50.0 + ((i * 7919) % 17) as f64 / 4.0 + if i == 470 { 60.0 } else { 0.0 };
            (end_s - (479 - i) * 60, value.to_string())
        })
        .collect();
    let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
    foretell_testing::matrix(&[("a", &borrowed)])
}

#[tokio::test]
async fn a_tracked_series_is_fetched_alone_and_drawn() {
    let end_s = 1_800_000_000;
    let prometheus =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::json(200, &history(end_s))])
            .await;
    let grapher = grapher(&prometheus.url, false, end_s * 1000 + 5_000);
    let request =
        parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=2h").expect("valid");
    let svg = grapher
        .render(&request, &Snapshot::default())
        .await
        .expect("drawn");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(
        svg.contains(r#"<title>up{instance=&quot;a&quot;}</title>"#),
        "{svg}"
    );
    assert!(svg.contains("class=\"anomalous\"") || svg.contains("class=\"outside\""));
    let requests = prometheus.requests();
    assert_eq!(requests.len(), 2, "a probe, then the range: {requests:?}");
    // Restricted to the one series (a selector gets a matcher); the newest point first,
    // then 6h fitted before the 2h shown, ending on the grid.
    for request in &requests {
        assert!(
            request.contains("query=up%7Binstance%3D%22a%22%7D&"),
            "{request}"
        );
        assert!(request.contains(&format!("end={end_s}")), "{request}");
    }
    assert!(
        requests[0].contains(&format!("start={end_s}&")),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].contains(&format!("start={}", end_s - (360 + 120 - 1) * 60)),
        "{}",
        requests[1]
    );
}

/// A snapshot of query `demo` tracking `up{instance="a"}`, whose live record holds
/// `recorded` points at 1m ending at `end_s` with an incident of three points near the end,
/// and a 1h forecast.
fn tracked(end_s: i64, recorded: usize) -> Snapshot {
    use foretell_core::chart::record::{LiveRecord, SharedRecord};
    use foretell_core::model::{Band, Observation};
    use foretell_core::snapshot::{export_labels, QueryOutput};
    let record = SharedRecord::new(LiveRecord::new(60_000, 360));
    let band = Band {
        expected: 50.0,
        lower: 45.0,
        upper: 55.0,
    };
    for i in 0..recorded {
        let incident = i + 10 >= recorded && i + 7 < recorded;
        let value = if incident {
            90.0
        } else {
            50.0 + (i % 5) as f64
        };
        let observation = Observation {
            band,
            score: foretell_core::model::anomaly_score(&band, value),
            surprise: 0.0,
        };
        let at_ms = (end_s - (recorded - 1 - i) as i64 * 60) * 1000;
        record.with(|r| r.push(at_ms, &observation, value, if incident { 0.9 } else { 0.0 }));
    }
    let labels = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
    let state = SeriesState::Ready {
        band,
        score: Some(0.2),
        probability: 0.0,
        forecasts: vec![Band {
            expected: 51.0,
            lower: 40.0,
            upper: 62.0,
        }],
        threshold_eta_seconds: None,
        excursion: Default::default(),
    };
    Snapshot::default().with_query(QueryOutput {
        query: "demo".into(),
        evaluated_at_ms: end_s * 1000,
        horizons: vec!["1h".into()],
        series: vec![SeriesOutput::new(export_labels("demo", &labels), state).with_record(record)],
    })
}

/// Issue 19, item 1: a tracked series is drawn from what the live model did, with the
/// forecast it exports; Prometheus is not asked.
#[tokio::test]
async fn a_tracked_series_is_drawn_from_its_live_record() {
    let end_s = 1_800_000_000;
    let down = grapher("http://127.0.0.1:9", false, end_s * 1000 + 20_000);
    let svg = down
        .render(
            &parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=2h&width=1200")
                .expect("valid"),
            &tracked(end_s, 300),
        )
        .await
        .expect("drawn without Prometheus");
    assert!(svg.contains("width=\"1200\""), "{svg}");
    assert!(
        svg.contains("<title>up{instance=&quot;a&quot;}</title>"),
        "{svg}"
    );
    assert!(svg.contains("live record"), "{svg}");
    assert!(!svg.contains("class=\"replayed\""), "{svg}");
    // 120 points, the incident's three outside the band, one episode.
    assert!(svg.contains("<desc>120 points, 3 outside the 99% band, 1 anomaly episode(s); forecast for 1 steps.</desc>"), "{svg}");
    assert_eq!(svg.matches("class=\"episode\"").count(), 1);
    assert!(svg.contains("class=\"forecast\" d=\"M"), "{svg}");
}

/// Issue 19, item 1: a range longer than the record replays the rest from Prometheus,
/// labelled; when Prometheus cannot be asked, the live part is still drawn.
#[tokio::test]
async fn a_range_beyond_the_record_is_replayed_and_labelled() {
    let end_s = 1_800_000_000;
    let request =
        parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=6h").expect("valid");
    let down = grapher("http://127.0.0.1:9", false, end_s * 1000);
    let svg = down
        .render(&request, &tracked(end_s, 100))
        .await
        .expect("the live part is drawn");
    assert!(svg.contains("could not be replayed"), "{svg}");
    assert!(svg.contains("<desc>100 points"), "{svg}");
    let prometheus =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::json(200, &history(end_s))])
            .await;
    let up = grapher(&prometheus.url, false, end_s * 1000);
    let svg = up
        .render(&request, &tracked(end_s, 100))
        .await
        .expect("drawn");
    assert!(svg.contains("class=\"replayed\""), "{svg}");
    assert!(svg.contains("live record since"), "{svg}");
    assert!(svg.contains("<desc>360 points"), "{svg}");
    let requests = prometheus.requests();
    // Only the part before the record: it ends the step before the record's first point.
    let last_replayed = end_s - 100 * 60;
    assert!(
        requests
            .iter()
            .all(|r| r.contains(&format!("end={last_replayed}"))),
        "{requests:?}"
    );
}

/// Issue 19, item 1: the quickstart's 1d chart marked nearly every point outside a band
/// that was not drawn. The chart's model was fitted on the history before the range, which
/// Prometheus held only partly: without two daily cycles the model lost its season (and
/// with exactly two its band was far too narrow). A replay now starts where Prometheus
/// holds the live model's window, and shows the values before it without a band.
#[tokio::test]
async fn a_replay_does_not_fit_a_model_the_live_one_never_was() {
    let end_s: i64 = 1_800_000_000;
    let day = 1440;
    // 2.5 days at 1m of a daily cycle with noise; the query keeps 2 days of history.
    let points: Vec<(i64, String)> = (0..day * 5 / 2)
        .map(|i| {
            let t = end_s - (day * 5 / 2 - 1 - i) as i64 * 60;
            let phase = (t.rem_euclid(86_400)) as f64 / 86_400.0 * std::f64::consts::TAU;
            let noise = foretell_core::synthetic::uniform_noise(i, 3) * 4.0;
            (t, format!("{:.3}", 100.0 + 40.0 * phase.sin() + noise))
        })
        .collect();
    let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
    let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
        200,
        &foretell_testing::matrix(&[("a", &borrowed)]),
    )])
    .await;
    let text = format!(
        "prometheus:\n  url: {}\nqueries:\n  - name: demo\n    expr: up\n    step: 1m\n    history: 2d\n    model:\n      seasonality: 1d\n",
        prometheus.url
    );
    let config = crate::config::parse(
        &text,
        std::path::Path::new("t.yml"),
        &crate::config::SystemEnvironment,
    )
    .expect("config");
    let grapher = Grapher::new(
        PrometheusReader::new(&config.prometheus).expect("client"),
        &config.queries,
        None,
        Arc::new(crate::clock::ManualClock::new(end_s * 1000)),
    );
    let svg = grapher
        .render(
            &parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=1d").expect("valid"),
            &Snapshot::default(),
        )
        .await
        .expect("drawn");
    assert!(svg.contains("no band before"), "{svg}");
    let desc = svg
        .split("<desc>")
        .nth(1)
        .and_then(|d| d.split(' ').nth(2))
        .expect("desc");
    let outside: usize = desc.parse().expect("a count");
    // Half a day has a band (720 points): at 99 %, a handful outside, not most.
    assert!(outside <= 10, "{outside} outside: {svg}");
    assert!(svg.contains("class=\"band\" d=\"M"), "the band is drawn");
}

#[tokio::test]
async fn unknown_queries_expressions_when_off_and_failures_say_so() {
    let end_s = 1_800_000_000;
    let down = grapher("http://127.0.0.1:9", false, end_s * 1000);
    let request = |q: &str| parse_request(q).expect("valid");
    let error = down
        .render(&request("query=nope"), &Snapshot::default())
        .await
        .expect_err("unknown");
    assert!(matches!(error, GraphError::NotFound(_)), "{error}");
    let error = down
        .render(&request("expr=up"), &Snapshot::default())
        .await
        .expect_err("off");
    assert!(error.to_string().contains("alerts.on_demand"), "{error}");
    let error = down
        .render(&request("query=demo"), &Snapshot::default())
        .await
        .expect_err("down");
    assert_eq!(error.status(), http::StatusCode::BAD_GATEWAY, "{error}");
    let error = down
        .render(&request("query=demo&range=30d"), &Snapshot::default())
        .await
        .expect_err("too long");
    assert!(error.to_string().contains("at most 5000"), "{error}");
    let prometheus =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::json(200, &history(end_s))])
            .await;
    let up = grapher(&prometheus.url, true, end_s * 1000);
    let error = up
        .render(
            &request("expr=up&series=%7Binstance%3D%22b%22%7D"),
            &Snapshot::default(),
        )
        .await
        .expect_err("no such series");
    assert!(
        error.to_string().contains("no series with the labels"),
        "{error}"
    );
    let svg = up
        .render(&request("expr=up"), &Snapshot::default())
        .await
        .expect("the only series");
    assert!(svg.contains("expression up"), "{svg}");
}

/// Issue 16, item 3: `/graph?expr=` sent any expression to Prometheus with foretell's
/// credentials. By default only the expressions of links foretell signed are drawn.
#[tokio::test]
async fn expressions_are_drawn_only_from_signed_links_unless_any_is_allowed() {
    let end_s = 1_800_000_000;
    let prometheus =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::json(200, &history(end_s))])
            .await;
    let linked = grapher_with(
        &prometheus.url,
        Some(GraphExpressions::Linked),
        end_s * 1000,
    );
    let request = |q: &str| parse_request(q).expect("valid");
    for unsigned in [
        "expr=secret_metric%7Btenant%3D%22other%22%7D",
        "expr=secret_metric&sig=00112233445566778899aabbccddeeff",
    ] {
        let error = linked
            .render(&request(unsigned), &Snapshot::default())
            .await
            .expect_err("refused");
        assert_eq!(error.status(), http::StatusCode::FORBIDDEN, "{error}");
        assert!(error.to_string().contains("graph_expressions"), "{error}");
    }
    assert!(
        prometheus.requests().is_empty(),
        "nothing reached Prometheus"
    );
    let base = Url::parse("http://foretell.example/").expect("url");
    let signed = link(
        &base,
        &Source::Expr("up".into()),
        &Labels::default(),
        Some(&signer()),
    );
    let svg = linked
        .render(
            &request(signed.split_once('?').expect("query").1),
            &Snapshot::default(),
        )
        .await
        .expect("a link foretell made is drawn");
    assert!(svg.starts_with("<svg"));
    // A signature is for its expression only.
    let moved = signed.replace("expr=up", "expr=secret_metric");
    let error = linked
        .render(
            &request(moved.split_once('?').expect("query").1),
            &Snapshot::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(error.status(), http::StatusCode::FORBIDDEN);
}

/// Issue 16, item 3: two charts of a 300,000-series expression took RSS to 1.56 GB. The
/// newest point is probed first; more than MAX_CHART_SERIES series is refused before any
/// history is fetched.
#[tokio::test]
async fn an_expression_of_too_many_series_is_refused_after_one_point() {
    let end_s = 1_800_000_000;
    let many: Vec<(String, Vec<(i64, &str)>)> = (0..=MAX_CHART_SERIES)
        .map(|i| (format!("i{i}"), vec![(end_s, "1")]))
        .collect();
    let borrowed: Vec<(&str, &[(i64, &str)])> = many
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_slice()))
        .collect();
    let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
        200,
        &foretell_testing::matrix(&borrowed),
    )])
    .await;
    let any = grapher(&prometheus.url, true, end_s * 1000);
    let error = any
        .render(
            &parse_request("expr=up").expect("valid"),
            &Snapshot::default(),
        )
        .await
        .expect_err("too many");
    assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
    assert!(error.to_string().contains("returns 101 series"), "{error}");
    let requests = prometheus.requests();
    assert_eq!(requests.len(), 1, "only the probe: {requests:?}");
    assert!(requests[0].contains(&format!("start={end_s}&")));
}

#[test]
fn the_series_is_singled_out_or_the_ambiguity_reported() {
    let results = vec![
        (Labels::from_pairs([("instance", "a"), ("job", "x")]), ()),
        (Labels::from_pairs([("instance", "b"), ("job", "x")]), ()),
        (Labels::from_pairs([("job", "x")]), ()),
    ];
    let one = pick(&results, &Labels::from_pairs([("instance", "b")])).expect("one");
    assert_eq!(one.0.get("instance"), Some("b"));
    let exact = pick(&results, &Labels::from_pairs([("job", "x")])).expect("exact");
    assert_eq!(exact.0.len(), 1);
    let results = &results[..2];
    let error = pick(results, &Labels::from_pairs([("job", "x")])).expect_err("two");
    assert!(error.to_string().contains("2 series carry"), "{error}");
    let error = pick(results, &Labels::from_pairs([("job", "y")])).expect_err("none");
    assert!(matches!(error, GraphError::NotFound(_)));
}
