use std::collections::HashMap;
use std::io;
use std::time::Duration;

use foretell_core::model::SeasonSpec;
use foretell_core::tracker::{FirstFit, Horizon, ThresholdBound, ThresholdSettings};

use super::*;

#[derive(Default)]
struct FakeEnvironment {
    vars: HashMap<String, String>,
    files: HashMap<PathBuf, Vec<u8>>,
    world_readable: std::collections::HashSet<PathBuf>,
}

impl Environment for FakeEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }

    fn world_readable(&self, path: &Path) -> bool {
        self.world_readable.contains(path)
    }
}

fn origin() -> &'static Path {
    Path::new("/etc/foretell/foretell.yml")
}

fn parse_text(text: &str) -> Result<Config, ConfigError> {
    parse(text, origin(), &FakeEnvironment::default())
}

fn field_errors(text: &str) -> Vec<String> {
    match parse_text(text) {
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

const MINIMAL: &str = "
prometheus:
  url: http://127.0.0.1:9090
queries:
  - name: load
    expr: node_load1
";

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = parse_text(MINIMAL).expect("valid");
    let query = &config.queries[0];
    assert_eq!(query.step, Duration::from_secs(60));
    assert_eq!(query.history, Duration::from_secs(7 * 86_400));
    assert_eq!(query.evaluation_interval, Duration::from_secs(60));
    assert_eq!(query.freshness, Duration::from_secs(300));
    assert_eq!(query.max_series, 10_000);
    assert_eq!(query.model.coverage.get(), 0.99);
    assert_eq!(query.model.min_points, 30);
    // 7 days of history at 1m: the daily cycle (1440 steps) fits twice, the weekly one does not.
    assert_eq!(query.model.season, SeasonSpec::Auto(vec![1440]));
    assert_eq!(query.refit_interval, Duration::from_secs(3600));
    assert_eq!(query.first_fit, FirstFit::Quick);
    assert_eq!(
        query.horizons,
        vec![Horizon {
            label: "1h".into(),
            steps: 60
        }]
    );
    assert_eq!(query.threshold, None);
    assert_eq!(config.prometheus.timeout, Duration::from_secs(10));
    assert_eq!(config.prometheus.max_points_per_request, 11_000);
    assert_eq!(
        config.server.listen_address.to_string(),
        DEFAULT_LISTEN_ADDRESS
    );
    assert!(!config.server.enable_lifecycle);
    assert_eq!(query.store_limits().capacity_points, 10_081);
}

#[test]
fn yaml_syntax_errors_name_line_and_column() {
    let err = parse_text("prometheus:\n  url: [unclosed\n").expect_err("invalid");
    let message = err.to_string();
    assert!(
        message.starts_with("/etc/foretell/foretell.yml: "),
        "{message}"
    );
    assert!(message.contains("line "), "{message}");
    assert!(message.contains("column "), "{message}");
}

#[test]
fn unknown_keys_are_rejected_with_their_location() {
    let text = MINIMAL.replace("expr: node_load1", "expr: node_load1\n    stepp: 1m");
    let message = parse_text(&text).expect_err("invalid").to_string();
    assert!(
        message.contains("queries[0].stepp: unknown key at line 7 column 5"),
        "{message}"
    );
}

#[test]
fn every_unknown_key_is_reported_with_the_other_problems() {
    let text = "
prometheus:
  url: http://127.0.0.1:9090
  timout: 5s
server: {listen_adress: 127.0.0.1:9896}
queries:
  - name: a
    expr: up
    step: 0s
    model:
      seasonalty: 1d
";
    assert_eq!(
        field_errors(text),
        vec![
            "prometheus.timout: unknown key at line 4 column 3; README.md's configuration reference lists the keys",
            "server.listen_adress: unknown key at line 5 column 10; README.md's configuration reference lists the keys",
            "queries[0].model.seasonalty: unknown key at line 11 column 7; README.md's configuration reference lists the keys",
            "queries[0].step: must be > 0, got 0s",
        ]
    );
}

/// Issue 19, item 5: a range vector parses but no range query can evaluate it.
#[test]
fn an_expression_that_is_not_an_instant_vector_is_refused() {
    for (expr, kind) in [
        ("node_load1[5m]", "matrix"),
        ("rate(x[5m])[10m:1m]", "matrix"),
        ("\"text\"", "string"),
    ] {
        let text = MINIMAL.replace("expr: node_load1", &format!("expr: '{expr}'"));
        let errors = field_errors(&text);
        assert_eq!(errors.len(), 1, "{expr}: {errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "queries[0].expr: must return an instant vector at line 6 column 11, got a {kind}"
            )),
            "{expr}: {errors:?}"
        );
    }
    let scalar = MINIMAL.replace("expr: node_load1", "expr: 'scalar(sum(up))'");
    assert!(
        parse_text(&scalar).is_ok(),
        "a scalar is a valid range query"
    );
}

#[test]
fn promql_that_does_not_parse_is_reported_with_its_position() {
    let text = MINIMAL.replace("expr: node_load1", "expr: sum(rate(foo[5m]) by");
    let errors = field_errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("queries[0].expr: not valid PromQL at line 6 column 11: "),
        "{errors:?}"
    );
    // What the README and the shipped configurations use parses.
    for expr in [
        "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "max_over_time(foretell_anomaly_probability[30m]) >= 0.2",
        "rate(errors_total[5m] @ end() offset 1h) / on(job) group_left rate(requests_total[5m])",
    ] {
        let text = MINIMAL.replace("expr: node_load1", &format!("expr: '{expr}'"));
        if let Err(error) = parse_text(&text) {
            panic!("{expr}: {error}");
        }
    }
}

#[test]
fn every_semantic_problem_is_reported_with_its_path() {
    let text = "
prometheus:
  url: ftp://example
  timeout: 10s
server:
  listen_address: nowhere
queries:
  - name: a
    expr: up
    step: 0s
  - name: a
    expr: ''
    step: 1m
    history: 1h
    evaluation_interval: 5s
    model:
      coverage: 1.5
      seasonality: 1d
";
    let errors = field_errors(text);
    let expected = [
        "prometheus.url: must be an http:// or https:// URL with a host, got `ftp://example`",
        "server.listen_address: `nowhere` is not HOST:PORT",
        "queries[0].step: must be > 0, got 0s",
        "queries[1].name: `a` is used by an earlier query",
        "queries[1].expr: must be a PromQL expression",
        "queries[1].evaluation_interval: must be longer than prometheus.timeout (10s), got 5s",
        "queries[1].model.coverage: coverage must be strictly between 0 and 1 (for example 0.99), got 1.5",
        "queries[1].model.seasonality: a season of 1d needs a history of at least two periods (2d) for MSTL to separate it, got 1h (raise `history`)",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn check_config_lines_prefix_each_problem_with_the_file() {
    let text = MINIMAL.replace("expr: node_load1", "expr: node_load1\n    step: 0s");
    let lines = parse_text(&text).expect_err("invalid").lines();
    assert_eq!(
        lines,
        vec!["/etc/foretell/foretell.yml: queries[0].step: must be > 0, got 0s"]
    );
}

#[test]
fn secrets_come_from_files_relative_to_the_config_or_from_env() {
    let mut env = FakeEnvironment::default();
    env.files.insert(
        PathBuf::from("/etc/foretell/token"),
        b"s3cr3t-token\n".to_vec(),
    );
    let text = MINIMAL.replace(
        "url: http://127.0.0.1:9090",
        "url: http://127.0.0.1:9090\n  bearer_token_file: token\n  headers:\n    X-Scope-OrgID: tenant-1",
    );
    let config = parse(&text, origin(), &env).expect("valid");
    assert_eq!(
        config.prometheus.auth,
        Some(Auth::Bearer(Secret::new("s3cr3t-token".into())))
    );
    assert_eq!(config.prometheus.headers[0].0.as_str(), "x-scope-orgid");
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cr3t-token"),
        "secret leaked into Debug: {debug}"
    );

    env.vars.insert("PROM_PASSWORD".into(), "pa55".into());
    let text = MINIMAL.replace(
        "url: http://127.0.0.1:9090",
        "url: http://127.0.0.1:9090\n  basic_auth:\n    username: foretell\n    password_env: PROM_PASSWORD",
    );
    let config = parse(&text, origin(), &env).expect("valid");
    assert_eq!(
        config.prometheus.auth,
        Some(Auth::Basic {
            username: "foretell".into(),
            password: Secret::new("pa55".into())
        })
    );
}

#[test]
fn missing_secret_sources_are_field_errors() {
    let text = MINIMAL.replace(
        "url: http://127.0.0.1:9090",
        "url: http://127.0.0.1:9090\n  bearer_token_file: /nope\n  basic_auth:\n    username: u\n    password_env: UNSET_VAR",
    );
    let errors = field_errors(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("prometheus.bearer_token_file: cannot read `/nope`")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e
            == "prometheus.basic_auth.password_env: environment variable `UNSET_VAR` is not set or empty"),
        "{errors:#?}"
    );
}

/// Issue 16, item 8: `X-Api-Key`, `Cookie` and `Proxy-Authorization` could be written inline.
#[test]
fn credential_headers_are_refused_in_plain_headers() {
    for header in [
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "X-Api-Key",
        "x-auth-token",
    ] {
        let text = MINIMAL.replace(
            "url: http://127.0.0.1:9090",
            &format!("url: http://127.0.0.1:9090\n  headers:\n    {header}: secret-value"),
        );
        let errors = field_errors(&text);
        assert!(
            errors[0].starts_with(&format!(
                "prometheus.headers.{header}: carries credentials: set them with"
            )),
            "{errors:?}"
        );
        assert!(!errors[0].contains("secret-value"));
    }
    let tenant = MINIMAL.replace(
        "url: http://127.0.0.1:9090",
        "url: http://127.0.0.1:9090\n  headers:\n    X-Scope-OrgID: team-a",
    );
    assert!(parse_text(&tenant).is_ok());
}

#[test]
fn season_and_history_limits_are_checked() {
    let text = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    step: 1s\n    history: 30d\n    model:\n      seasonality: 1s",
    );
    let errors = field_errors(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("queries[0].history: 30d at step 1s is 2592000 points")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e
            .starts_with("queries[0].model.seasonality: a season must span at least two steps")),
        "{errors:?}"
    );
}

#[test]
fn seasons_are_given_in_steps_and_sorted() {
    let text = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    step: 5m\n    history: 15d\n    model:\n      seasonality: [1w, 1d]",
    );
    let config = parse_text(&text).expect("valid");
    assert_eq!(
        config.queries[0].model.season,
        SeasonSpec::Periods(vec![288, 2016])
    );
    let none = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    model:\n      seasonality: none",
    );
    assert_eq!(
        parse_text(&none).expect("valid").queries[0].model.season,
        SeasonSpec::None
    );
    let bad = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    model:\n      seasonality: [1d, daily, 1d]",
    );
    let errors = field_errors(&bad);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("queries[0].model.seasonality[1]:")
                && e.contains("or `auto` or `none`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e == "queries[0].model.seasonality[2]: 1d is listed twice"),
        "{errors:?}"
    );
}

#[test]
fn horizons_and_thresholds_are_validated() {
    let text = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    step: 5m\n    model:\n      horizons: [1d, 15m, 7m]\n    threshold:\n      value: 0.9\n      direction: below\n      bound: band\n      within: 2d",
    );
    let query = parse_text(&text).expect("valid").queries[0].clone();
    let labels: Vec<(&str, u32)> = query
        .horizons
        .iter()
        .map(|h| (h.label.as_str(), h.steps))
        .collect();
    // Sorted by length; a horizon between grid points rounds up to the next one.
    assert_eq!(labels, vec![("7m", 2), ("15m", 3), ("1d", 288)]);
    assert_eq!(
        query.threshold,
        Some(ThresholdSettings {
            value: 0.9,
            rising: false,
            bound: ThresholdBound::Band,
            within_steps: 576
        })
    );
    let bad = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    model:\n      horizons: [0s, 1h, 60m, 1y]\n    threshold:\n      value: .nan\n      direction: up\n      bound: worst\n      within: 1y",
    );
    let errors = field_errors(&bad);
    let expected = [
        "queries[0].model.horizons[0]: must be > 0, got 0s",
        "queries[0].model.horizons[2]: 1h is listed twice",
        "queries[0].model.horizons[3]: at most 90d, got 365d",
        "queries[0].threshold.value: must be a finite number, got NaN",
        "queries[0].threshold.direction: must be `above`",
        "queries[0].threshold.bound: must be `expected`",
        "queries[0].threshold.within: must be between one step (1m) and 90d, got 365d",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

/// Issue 22: the first fit of a series, cheap or full.
#[test]
fn the_first_fit_is_quick_or_full() {
    let full = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    model:\n      first_fit: full",
    );
    let query = parse_text(&full).expect("valid").queries[0].clone();
    assert_eq!(query.first_fit, FirstFit::Full);
    let bad = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    model:\n      first_fit: fast",
    );
    let errors = field_errors(&bad);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("queries[0].model.first_fit: must be `quick`")
            && errors[0].ends_with("got `fast`"),
        "{errors:#?}"
    );
}

/// Issue 23: peer outlier settings.
#[test]
fn peers_are_validated_and_default_to_mad_over_an_hour() {
    let on = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    peers:\n      by: [job]",
    );
    let query = parse_text(&on).expect("valid").queries[0].clone();
    assert_eq!(
        query.peers,
        Some(foretell_core::peers::PeerSettings {
            by: vec!["job".into()],
            method: foretell_core::peers::PeerMethod::Mad,
            window_points: 60,
            sensitivity: 0.5,
        })
    );
    let bad = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    peers:\n      by: [\"bad name\"]\n      method: kmeans\n      window: 2m\n      sensitivity: 1",
    );
    let errors = field_errors(&bad);
    let expected = [
        "queries[0].peers.by[0]: \"bad name\" is not a label name",
        "queries[0].peers.method: must be `mad`",
        "queries[0].peers.window: must be between three steps (3m) and `history` (7d), got 2m",
        "queries[0].peers.sensitivity: must be between 0 and 1",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

/// Issue 19: the charts' live record and the axes' unit.
#[test]
fn the_live_record_and_the_unit_are_validated() {
    let query = parse_text(MINIMAL).expect("valid").queries[0].clone();
    assert_eq!(query.live_record, Duration::from_secs(6 * 3600));
    assert_eq!(query.live_record_points(), 360, "6h at the default 1m step");
    assert_eq!(query.unit, "");
    let text = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    step: 15s\n    live_record: 0s\n    unit: ' requests/s '",
    );
    let query = parse_text(&text).expect("valid").queries[0].clone();
    assert_eq!(query.live_record_points(), 0, "no record");
    assert_eq!(query.unit, "requests/s");
    let bad = MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    step: 1s\n    live_record: 1d\n    unit: \"a very long unit that is not a unit at all\"",
    );
    let errors = field_errors(&bad);
    assert!(
        errors.iter().any(|e| e.starts_with(
            "queries[0].live_record: 1d at step 1s is 86400 points per series; at most 20000"
        )),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("queries[0].unit: must be at most 32 printable characters")),
        "{errors:#?}"
    );
    let errors = field_errors(&MINIMAL.replace(
        "expr: node_load1",
        "expr: node_load1\n    live_record: soon",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("queries[0].live_record:")),
        "{errors:#?}"
    );
}

#[test]
fn credentials_in_the_url_are_refused() {
    let text = MINIMAL.replace("http://127.0.0.1:9090", "http://user:pw@127.0.0.1:9090");
    let errors = field_errors(&text);
    assert_eq!(errors, vec!["prometheus.url: must not carry credentials; use basic_auth with password_file or password_env, or a bearer token file"]);
}

#[test]
fn listen_address_accepts_the_port_only_shorthand() {
    let text = format!("{MINIMAL}server:\n  listen_address: ':9100'\n");
    let config = parse_text(&text).expect("valid");
    assert_eq!(config.server.listen_address.to_string(), "0.0.0.0:9100");
}

#[test]
fn a_shard_is_one_of_count_replicas() {
    let config = parse_text(MINIMAL).expect("valid");
    assert_eq!(config.shard, foretell_core::shard::Shard::default());
    let text = format!("{MINIMAL}shard:\n  index: 2\n  count: 3\n");
    let config = parse_text(&text).expect("valid");
    assert_eq!((config.shard.index(), config.shard.count()), (2, 3));
    let text = format!("{MINIMAL}shard:\n  index: 3\n  count: 3\n");
    assert_eq!(
        field_errors(&text),
        vec!["shard: index 3 is not below count 3 (shards are numbered 0 to count - 1)"]
    );
    let text = format!("{MINIMAL}shard:\n  index: 0\n  count: 0\n");
    assert_eq!(field_errors(&text), vec!["shard: count must be at least 1"]);
}

#[test]
fn external_url_must_be_an_absolute_http_url() {
    let text = format!("{MINIMAL}server:\n  external_url: https://ops.example/foretell\n");
    let config = parse_text(&text).expect("valid");
    assert_eq!(
        config.server.external_url.map(|u| u.to_string()),
        Some("https://ops.example/foretell".to_owned())
    );
    for (url, says) in [
        ("foretell.example", "is not a URL"),
        ("ftp://foretell.example", "not an http:// or https:// URL"),
    ] {
        let text = format!("{MINIMAL}server:\n  external_url: {url}\n");
        let errors = field_errors(&text);
        assert!(
            errors.len() == 1
                && errors[0].starts_with("server.external_url: ")
                && errors[0].contains(says),
            "{errors:?}"
        );
    }
}

#[test]
fn a_ca_file_without_certificates_is_rejected() {
    let mut env = FakeEnvironment::default();
    env.files.insert(
        PathBuf::from("/etc/foretell/ca.pem"),
        b"not a certificate\n".to_vec(),
    );
    let text = MINIMAL.replace(
        "url: http://127.0.0.1:9090",
        "url: https://prometheus.example:9090\n  tls:\n    ca_file: ca.pem",
    );
    match parse(&text, origin(), &env) {
        Err(ConfigError::Invalid { errors, .. }) => assert_eq!(
            errors[0].to_string(),
            "prometheus.tls.ca_file: `ca.pem` holds no PEM certificate"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_audit_log_takes_its_keys_from_a_file_or_the_environment() {
    let key_text = format!(
        "# rotated 2026-11\nk1:{}\nk2:{}\n",
        "01".repeat(32),
        "02".repeat(32)
    );
    let mut env = FakeEnvironment::default();
    env.files.insert(
        PathBuf::from("/etc/foretell/audit.keys"),
        key_text.clone().into_bytes(),
    );
    env.vars.insert("AUDIT_KEYS".into(), key_text);
    let with = |section: &str| format!("{MINIMAL}audit:\n{section}");
    let config = parse(
        &with("  path: audit.db\n  key_file: audit.keys\n"),
        origin(),
        &env,
    )
    .expect("valid");
    let audit = config.audit.expect("audit");
    assert_eq!(audit.path, PathBuf::from("/etc/foretell/audit.db"));
    assert_eq!(audit.keys.active().id(), "k2");
    assert_eq!(audit.verify_interval, Some(Duration::from_secs(3600)));
    let off = parse(
        &with("  path: a.db\n  key_file: audit.keys\n  verify_interval: off\n"),
        origin(),
        &env,
    )
    .expect("valid");
    assert_eq!(off.audit.expect("audit").verify_interval, None);
    let config = parse(
        &with("  path: /var/lib/foretell/audit.db\n  key_env: AUDIT_KEYS\n"),
        origin(),
        &env,
    )
    .expect("valid");
    assert_eq!(config.audit.expect("audit").keys.ids().count(), 2);
    assert_eq!(parse_text(MINIMAL).expect("valid").audit, None);

    let errors = |section: &str| match parse(&with(section), origin(), &env) {
        Err(ConfigError::Invalid { errors, .. }) => {
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        }
        other => panic!("expected field errors, got {other:?}"),
    };
    assert_eq!(
        errors("  path: a.db\n  key_file: audit.keys\n  verify_interval: soon\n"),
        vec!["audit.verify_interval: `soon` is not a duration; write a number with a unit such as `30s`, `5m`, `1h30m` or `7d`"]
    );
    assert_eq!(
        errors("  path: a.db\n"),
        vec!["audit: needs key_file or key_env: the keys that sign the log (KEY_ID:HEX_SECRET per line)"]
    );
    assert_eq!(
        errors("  path: a.db\n  key_file: audit.keys\n  key_env: AUDIT_KEYS\n"),
        vec!["audit: set either key_file or key_env, not both"]
    );
    assert_eq!(
        errors("  path: a.db\n  key_env: UNSET\n"),
        vec!["audit.key_env: environment variable `UNSET` is not set"]
    );
    let mut short = FakeEnvironment::default();
    short.vars.insert("AUDIT_KEYS".into(), "k1:0011".into());
    match parse(
        &with("  path: a.db\n  key_env: AUDIT_KEYS\n"),
        origin(),
        &short,
    ) {
        Err(ConfigError::Invalid { errors, .. }) => assert_eq!(
            errors[0].to_string(),
            "audit.key_env: key `k1` has 2 bytes of secret; at least 32 are needed"
        ),
        other => panic!("{other:?}"),
    }
}

const WITH_AUDIT: &str = "
prometheus:
  url: http://127.0.0.1:9090
audit:
  path: audit.db
  key_env: KEYS
queries:
  - name: load
    expr: node_load1
";

fn with_keys() -> FakeEnvironment {
    let mut env = FakeEnvironment::default();
    env.vars
        .insert("KEYS".into(), format!("k1:{}", "ab".repeat(32)));
    env
}

#[test]
fn the_alerts_section_gets_documented_defaults() {
    let text = format!(
        "{WITH_AUDIT}alerts:\n  receivers:\n    - name: pager\n      url: http://pager:8080/hook\n  routes:\n    - receiver: pager\n      match: {{severity: critical}}\n      min_confidence: 0.7\n"
    );
    let config = parse(&text, origin(), &with_keys()).expect("valid");
    let alerts = config.alerts.expect("alerts");
    assert_eq!(alerts.max_body_bytes, 4 << 20);
    assert_eq!(alerts.dedupe_window, Duration::from_secs(120));
    assert_eq!(alerts.max_queued, 10_000);
    assert_eq!(alerts.retry.max_backoff_ms, 300_000);
    assert_eq!(alerts.retry.give_up_after_ms, 86_400_000);
    assert_eq!(alerts.circuit_breaker.failures, 5);
    let on_demand = alerts.on_demand.expect("on by default");
    assert_eq!(on_demand.history, Duration::from_secs(86_400));
    assert_eq!(
        on_demand.graph_expressions,
        crate::config::GraphExpressions::Linked,
        "charts of arbitrary expressions are opt-in (issue 16, item 3)"
    );
    assert_eq!(alerts.receivers[0].timeout, Duration::from_secs(10));
    assert_eq!(
        alerts.routes[0].matchers,
        vec![("severity".to_owned(), "critical".to_owned())]
    );
    assert_eq!(alerts.routes[0].min_confidence.map(|c| c.get()), Some(0.7));
}

#[test]
fn alerts_problems_are_reported_with_their_paths() {
    let text = format!(
        "{MINIMAL}alerts:\n  max_body_bytes: 10\n  on_demand: {{graph_expressions: all}}\n  circuit_breaker: {{cooldown: 20m}}\n  retry: {{initial_backoff: 0s, max_backoff: 1s}}\n  receivers:\n    - name: pager\n      url: ftp://x\n    - name: pager\n      url: http://user:pw@x/\n  routes:\n    - receiver: nobody\n      min_confidence: 1.5\n"
    );
    let errors = field_errors(&text);
    let expected = [
        "alerts: needs the `audit` section",
        "alerts.max_body_bytes: must be at least 1024, got 10",
        "alerts.on_demand.graph_expressions: `all` is neither `linked`",
        "alerts.circuit_breaker.cooldown: must not exceed max_cooldown (10m)",
        "alerts.retry.initial_backoff: must be > 0, got 0s",
        "alerts.receivers[0].url: must be an http:// or https:// URL with a host, got `ftp://x`",
        "alerts.receivers[1].name: `pager` is used by an earlier receiver",
        "alerts.receivers[1].url: must not carry credentials",
        "alerts.routes[0].receiver: `nobody` is not a receiver; known: pager",
        "alerts.routes[0].min_confidence: a confidence must be between 0 and 1, got 1.5",
    ];
    for prefix in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(prefix)),
            "no error starting with `{prefix}` in {errors:#?}"
        );
    }
}

#[test]
fn waits_between_delivery_attempts_longer_than_an_hour_are_refused() {
    let text = format!(
        "{MINIMAL}alerts:\n  circuit_breaker: {{max_cooldown: 2h}}\n  retry: {{max_backoff: 90m}}\n  receivers:\n    - name: pager\n      url: http://x/\n"
    );
    let errors = field_errors(&text);
    for expected in [
        "alerts.circuit_breaker.max_cooldown: must be at most 1h (a delivery is given up only after an attempt per hour of its age), got 2h",
        "alerts.retry.max_backoff: must be at most 1h (a delivery is given up only after an attempt per hour of its age), got 1h30m",
    ] {
        assert!(errors.iter().any(|e| e == expected), "{expected} not in {errors:#?}");
    }
}

#[test]
fn remote_write_is_optional_and_validated() {
    assert_eq!(parse_text(MINIMAL).expect("valid").remote_write, None);
    let text = MINIMAL.replace(
        "queries:",
        "remote_write:\n  url: http://mimir:8080/api/v1/push\n  headers:\n    X-Scope-OrgID: team-a\nqueries:",
    );
    let remote = parse_text(&text)
        .expect("valid")
        .remote_write
        .expect("configured");
    assert_eq!(
        remote.url.expose().as_str(),
        "http://mimir:8080/api/v1/push"
    );
    assert_eq!(remote.max_samples_per_request, 2_000);
    assert_eq!(remote.retry.max_attempts, 5);
    assert_eq!(remote.timeout, Duration::from_secs(10));
    assert_eq!(remote.interval, Duration::from_secs(30));
    assert_eq!(remote.headers.len(), 1);
    let text = MINIMAL.replace(
        "queries:",
        "remote_write:\n  url: ftp://x\n  max_samples_per_request: 0\n  retry:\n    max_attempts: 11\nqueries:",
    );
    assert_eq!(
        field_errors(&text),
        vec![
            "remote_write.url: must be an http:// or https:// URL with a host, got `ftp://x`",
            "remote_write.max_samples_per_request: must be between 1 and 100000, got 0",
            "remote_write.retry.max_attempts: must be between 1 and 10, got 11",
        ]
    );
    let text = MINIMAL.replace(
        "queries:",
        "remote_write:\n  url: http://x\n  batch: 3\nqueries:",
    );
    assert_eq!(
        field_errors(&text),
        vec!["remote_write.batch: unknown key at line 6 column 3; README.md's configuration reference lists the keys"]
    );
}

#[test]
fn history_batches_are_bounded() {
    assert_eq!(
        parse_text(MINIMAL)
            .expect("valid")
            .prometheus
            .history_batch_series,
        100
    );
    let text = MINIMAL.replace(
        "  url: http://127.0.0.1:9090",
        "  url: http://127.0.0.1:9090\n  history_batch_series: 0",
    );
    assert_eq!(
        field_errors(&text),
        vec!["prometheus.history_batch_series: must be between 1 and 10000, got 0"]
    );
}

#[test]
fn compression_is_none_or_gzip() {
    assert_eq!(
        parse_text(MINIMAL).expect("valid").prometheus.compression,
        Compression::None
    );
    let with = |value: &str| {
        MINIMAL.replace(
            "  url: http://127.0.0.1:9090",
            &format!("  url: http://127.0.0.1:9090\n  compression: {value}"),
        )
    };
    assert_eq!(
        parse_text(&with("gzip"))
            .expect("valid")
            .prometheus
            .compression,
        Compression::Gzip
    );
    assert_eq!(
        field_errors(&with("zstd")),
        vec!["prometheus.compression: must be none or gzip, got \"zstd\""]
    );
}

#[test]
fn remote_read_is_auto_or_off() {
    assert_eq!(
        parse_text(MINIMAL).expect("valid").prometheus.remote_read,
        RemoteRead::Auto
    );
    let with = |value: &str| {
        MINIMAL.replace(
            "  url: http://127.0.0.1:9090",
            &format!("  url: http://127.0.0.1:9090\n  remote_read: {value}"),
        )
    };
    assert_eq!(
        parse_text(&with("off"))
            .expect("valid")
            .prometheus
            .remote_read,
        RemoteRead::Off
    );
    assert_eq!(
        field_errors(&with("always")),
        vec!["prometheus.remote_read: must be auto or off, got \"always\""]
    );
}

#[test]
fn the_webhook_rate_limit_has_defaults_and_bounds() {
    let text = |limit: &str| {
        format!(
            "{WITH_AUDIT}alerts:\n{limit}  receivers:\n    - name: pager\n      url: http://pager:8080/hook\n  routes:\n    - receiver: pager\n"
        )
    };
    let alerts = parse(&text(""), origin(), &with_keys())
        .expect("valid")
        .alerts
        .expect("alerts");
    assert_eq!(
        (alerts.rate_limit.per_second, alerts.rate_limit.burst),
        (100.0, 1000.0)
    );
    match parse(
        &text("  rate_limit: {per_second: 0.5, burst: .nan}\n"),
        origin(),
        &with_keys(),
    ) {
        Err(ConfigError::Invalid { errors, .. }) => {
            let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            assert_eq!(
                errors,
                vec![
                    "alerts.rate_limit.per_second: must be at least 1, got 0.5",
                    "alerts.rate_limit.burst: must be at least 1, got NaN",
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The config loader under mutation (stable stand-in for a cargo-fuzz target, which cannot
/// reach the binary crate): 3,000 damaged copies of the documented example (characters
/// deleted, inserted, lines repeated, swapped or cut, numbers replaced) each load or fail with
/// errors that name the file; none panics.
#[test]
fn damaged_configs_are_refused_with_their_file_never_with_a_panic() {
    let example = include_str!("../../docs/foretell.example.yml");
    let env = with_keys();
    let noise = |i: usize, seed: usize| {
        ((foretell_core::synthetic::uniform_noise(i, seed) + 0.5) * 1e9) as usize
    };
    let inserts = [
        ":", " ", "\n", "-", "'", "\"", "{", "[", "0", "-1", "1e400", "ms", "\t", "é", "*",
    ];
    let mut refused = 0;
    for round in 0..3_000 {
        let mut lines: Vec<String> = example.lines().map(str::to_owned).collect();
        for step in 0..1 + noise(round, 1) % 4 {
            let at = noise(round * 7 + step, 2) % lines.len();
            match noise(round * 7 + step, 3) % 6 {
                0 => {
                    let line = &mut lines[at];
                    if !line.is_empty() {
                        let mut cut = noise(round, 4) % line.len();
                        while !line.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        line.remove(cut);
                    }
                }
                1 => {
                    let line = &mut lines[at];
                    let mut cut = noise(round, 5) % (line.len() + 1);
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.insert_str(cut, inserts[noise(round, 6) % inserts.len()]);
                }
                2 => {
                    let copy = lines[at].clone();
                    lines.insert(at, copy);
                }
                3 => {
                    let other = noise(round, 7) % lines.len();
                    lines.swap(at, other);
                }
                4 => {
                    lines.truncate(at.max(1));
                }
                _ => {
                    lines[at] = lines[at]
                        .chars()
                        .map(|c| if c.is_ascii_digit() { '9' } else { c })
                        .collect();
                }
            }
        }
        let text = lines.join("\n");
        match parse(&text, origin(), &env) {
            Ok(_) => {}
            Err(error) => {
                refused += 1;
                let message = error.to_string();
                assert!(
                    message.starts_with("/etc/foretell/foretell.yml"),
                    "round {round}: {message}"
                );
            }
        }
    }
    // Most damage is caught; some (a repeated comment line, say) is harmless.
    assert!(refused > 1_000, "{refused}");
}

/// Issue 16, item 8: YAML nesting made the parser quadratic (100,000 levels: 23.5 s).
#[test]
fn nesting_deeper_than_any_configuration_needs_is_refused_at_once() {
    let started = crate::clock::Stopwatch::start();
    for text in [
        format!("queries: {}", "[".repeat(100_000)),
        format!("queries: {}", "{a: ".repeat(100_000)),
        // An apostrophe in a plain scalar does not open a quote that would hide brackets.
        format!("prometheus:\n  url: it's\nqueries: {}", "[".repeat(1_000)),
    ] {
        match parse(&text, origin(), &FakeEnvironment::default()) {
            Err(ConfigError::Syntax { message, .. }) => {
                assert!(
                    message.contains("nested deeper than 64 levels"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Brackets in quoted strings and comments are not nesting.
    let quoted = MINIMAL.replace(
        "expr: up",
        &format!("expr: '{}' # {}", "[".repeat(100), "{".repeat(100)),
    );
    assert!(
        parse_text(&quoted).is_ok(),
        "{:?}",
        parse_text(&quoted).err()
    );
}

/// Issue 16, item 8: key and token files readable by others and a webhook without a token
/// raised no warning.
#[test]
fn risky_but_working_settings_are_warned_about() {
    let mut env = FakeEnvironment::default();
    env.files.insert(
        PathBuf::from("/etc/foretell/audit.keys"),
        format!("k1:{}", "ab".repeat(32)).into_bytes(),
    );
    env.files
        .insert(PathBuf::from("/etc/foretell/hook.token"), b"t0ken".to_vec());
    env.world_readable
        .insert(PathBuf::from("/etc/foretell/audit.keys"));
    let text = format!(
        "{MINIMAL}audit:\n  path: audit.db\n  key_file: audit.keys\nalerts:\n  receivers:\n    - name: pager\n      url: http://pager/hook\n  routes:\n    - receiver: pager\n"
    );
    let config = parse(&text, origin(), &env).expect("valid");
    assert_eq!(config.warnings.len(), 2, "{:#?}", config.warnings);
    assert!(config.warnings[0].starts_with(
        "audit.key_file: `/etc/foretell/audit.keys` is readable by every user of this machine"
    ));
    assert!(config.warnings[1].starts_with("alerts: the webhook accepts notifications from anyone"));
    let with_token = text.replace("alerts:\n", "alerts:\n  bearer_token_file: hook.token\n");
    env.world_readable.clear();
    let config = parse(&with_token, origin(), &env).expect("valid");
    assert_eq!(config.warnings, Vec::<String>::new());
}

/// Issue 17: a history that holds the seasons twice but nothing more leaves the forecasts' model
/// choice without held-out points; check-config says so and what history would do.
#[test]
fn a_history_with_nothing_to_hold_out_is_warned_about() {
    let query = |history: &str, extra: &str| {
        format!(
            "prometheus:\n  url: http://127.0.0.1:9090\nqueries:\n  - name: load\n    expr: node_load1\n    step: 1m\n    history: {history}\n    model:\n      seasonality: 1d\n{extra}"
        )
    };
    let env = FakeEnvironment::default();
    let config = parse(&query("2d", ""), origin(), &env).expect("valid");
    assert_eq!(
        config.warnings,
        vec!["queries[0].history: 2d at step 1m leaves no held-out part for the forecasts' model choice, so the in-sample model forecasts alone (intervals from its in-sample errors); a history of at least 2d2h validates the 1h horizon".to_owned()]
    );
    // A longer horizon than the window spares: validated up to what it spares.
    let long = query("3d", "      horizons: [1h, 1d]\n");
    let config = parse(&long, origin(), &env).expect("valid");
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert!(
        config.warnings[0].starts_with("queries[0].history: 3d at step 1m validates the forecasts' model choice up to 12h only"),
        "{}",
        config.warnings[0]
    );
    // The default week of history, and a query without a season, need no warning.
    for text in [
        query("7d", ""),
        query("2d", "").replace("seasonality: 1d", "seasonality: none"),
    ] {
        assert_eq!(
            parse(&text, origin(), &env).expect("valid").warnings,
            Vec::<String>::new()
        );
    }
}

#[test]
fn the_global_export_cap_has_a_default_and_refuses_zero() {
    let text = |extra: &str| {
        format!("prometheus:\n  url: http://127.0.0.1:9090\nserver:\n  listen_address: 127.0.0.1:9896\n{extra}queries:\n  - name: q\n    expr: up\n")
    };
    let config = parse(&text(""), Path::new("t.yml"), &FakeEnvironment::default()).expect("valid");
    assert_eq!(
        config.server.max_exported_series,
        DEFAULT_MAX_EXPORTED_SERIES
    );
    let config = parse(
        &text("  max_exported_series: 5\n"),
        Path::new("t.yml"),
        &FakeEnvironment::default(),
    )
    .expect("valid");
    assert_eq!(config.server.max_exported_series, 5);
    let error = parse(
        &text("  max_exported_series: 0\n"),
        Path::new("t.yml"),
        &FakeEnvironment::default(),
    )
    .expect_err("zero");
    assert!(
        error
            .to_string()
            .contains("server.max_exported_series: must be at least 1"),
        "{error}"
    );
}
