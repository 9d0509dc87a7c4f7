//! Secrets never leave foretell: the real binary runs with every kind of credential set (the
//! Prometheus bearer token, the remote-write and receiver passwords, the webhook token, the
//! audit HMAC key, a web user's password), is made to fail at everything that logs (the
//! remote-write and alert receivers are unreachable, a webhook comes with a wrong token, a
//! reload is asked for), and its logs, `/metrics`, status pages and API answers are searched for the
//! secret values. No external binary needed: a stand-in answers as Prometheus.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

const PROMETHEUS_TOKEN: &str = "prom-token-7c1d0e55";
const REMOTE_WRITE_PASSWORD: &str = "rw-password-5d3a9b20";
const RECEIVER_PASSWORD: &str = "receiver-password-11f0c4aa";
const WEBHOOK_TOKEN: &str = "webhook-token-9e8d7c6b";
const AUDIT_SECRET_HEX: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WEB_PASSWORD: &str = "web-password-42d0b6c1";
/// Issue 16, item 7: secrets in URLs. An `api_key` in Prometheus' query string, a Slack-style
/// receiver whose path and query are its credential, and a password in a malformed URL.
const PROMETHEUS_QUERY_SECRET: &str = "prom-apikey-3b9f61d2";
const RECEIVER_PATH_SECRET: &str = "slackpath77e1c0ab";
const RECEIVER_QUERY_SECRET: &str = "recv-query-a4c2f9e0";
const MALFORMED_URL_PASSWORD: &str = "malformed-pw-0d9e44b1";

/// A stand-in for Prometheus answering every range query with an hour of one series, so that
/// foretell has predictions to push; it records each request's head.
async fn canned_prometheus() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let Ok(read) = socket.read(&mut buffer).await else {
                    return;
                };
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&buffer[..read]).to_string());
                let now = now_secs() / 60 * 60;
                let values: Vec<String> = (0..60)
                    .map(|i| {
                        format!(
                            "[{},\"{}\"]",
                            now - (59 - i) * 60,
                            10.0 + (i % 5) as f64 * 0.3
                        )
                    })
                    .collect();
                let body = format!(
                    r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"__name__":"up","instance":"a"}},"values":[{}]}}]}}}}"#,
                    values.join(",")
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_pages_or_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (prometheus, prometheus_heads) = canned_prometheus().await;
    std::fs::write(dir.path().join("webhook.token"), WEBHOOK_TOKEN).expect("token");
    std::fs::write(
        dir.path().join("audit.keys"),
        format!("k1:{AUDIT_SECRET_HEX}\n"),
    )
    .expect("keys");
    // bcrypt at the lowest cost keeps the test quick; the hash is not a secret, the password is.
    let hash = bcrypt::hash(WEB_PASSWORD, 4).expect("hash");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  ops: {hash}\n"),
    )
    .expect("web config");
    let config = dir.path().join("foretell.yml");
    std::fs::write(
        &config,
        format!(
            "prometheus:\n  url: {prometheus}/?api_key={PROMETHEUS_QUERY_SECRET}\n  timeout: 500ms\n  bearer_token_env: TEST_PROMETHEUS_TOKEN\n  retry:\n    max_attempts: 1\n\
             server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n  enable_lifecycle: true\n\
             audit:\n  path: audit.db\n  key_file: audit.keys\n\
             remote_write:\n  url: http://127.0.0.1:9/api/v1/write\n  interval: 1s\n  timeout: 500ms\n  basic_auth:\n    username: writer\n    password_env: TEST_REMOTE_WRITE_PASSWORD\n  retry:\n    max_attempts: 1\n\
             alerts:\n  bearer_token_file: webhook.token\n  retry:\n    initial_backoff: 100ms\n    max_backoff: 200ms\n\
             \x20 receivers:\n    - name: pager\n      url: http://127.0.0.1:9/services/T000/B000/{RECEIVER_PATH_SECRET}?token={RECEIVER_QUERY_SECRET}\n      timeout: 500ms\n      basic_auth:\n        username: foretell\n        password_env: TEST_RECEIVER_PASSWORD\n  routes:\n    - receiver: pager\n\
             queries:\n  - name: q\n    expr: up\n    evaluation_interval: 2s\n"
        ),
    )
    .expect("config");
    let log = dir.path().join("foretell.log");
    let mut foretell = Process::spawn(
        "foretell",
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .current_dir(dir.path())
            .args(["run", "--config"])
            .arg(&config)
            .arg("--web.config.file")
            .arg(dir.path().join("web.yml"))
            .args(["--log.level", "trace"])
            .env("TEST_PROMETHEUS_TOKEN", PROMETHEUS_TOKEN)
            .env("TEST_REMOTE_WRITE_PASSWORD", REMOTE_WRITE_PASSWORD)
            .env("TEST_RECEIVER_PASSWORD", RECEIVER_PASSWORD),
        log.clone(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = http();
    eventually("foretell answers", Duration::from_secs(30), || async {
        let response = client
            .get(format!("{base}/-/healthy"))
            .basic_auth("ops", Some(WEB_PASSWORD))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let mut seen = String::new();
    let anonymous = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
    seen += &anonymous.text().await.unwrap_or_default();
    // A webhook with the wrong token, one with the right one (its delivery fails: nothing
    // listens at the receiver).
    let webhook = format!("{base}/alertmanager/webhook");
    let body = r#"{"version":"4","status":"firing","receiver":"foretell","groupKey":"g","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"","alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},"startsAt":"2026-11-22T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f"}]}"#;
    for (token, expected) in [("not-the-token", 401), (WEBHOOK_TOKEN, 200)] {
        let response = client
            .post(&webhook)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), expected);
        seen += &response.text().await.unwrap_or_default();
    }
    // Let Prometheus, remote write and the delivery fail a few times, and log it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // A reload of a configuration whose URL is malformed and holds a password: refused with
    // a 500 whose body, log line and `config.rejected` record must not echo the password.
    let valid_config = std::fs::read_to_string(&config).expect("config");
    let malformed = valid_config.replacen(
        &format!("url: {prometheus}/?api_key={PROMETHEUS_QUERY_SECRET}"),
        &format!("url: http://admin:{MALFORMED_URL_PASSWORD}@prometheus:99999/"),
        1,
    );
    assert_ne!(malformed, valid_config);
    std::fs::write(&config, &malformed).expect("malformed config");
    let refused = client
        .post(format!("{base}/-/reload"))
        .basic_auth("ops", Some(WEB_PASSWORD))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 500);
    let refused = refused.text().await.unwrap_or_default();
    assert!(refused.contains("prometheus.url"), "{refused}");
    assert!(refused.contains("<secret>@prometheus:99999"), "{refused}");
    seen += &refused;
    std::fs::write(&config, &valid_config).expect("config");
    let reload = client
        .post(format!("{base}/-/reload"))
        .basic_auth("ops", Some(WEB_PASSWORD))
        .send()
        .await
        .expect("answer");
    seen += &reload.text().await.unwrap_or_default();
    for path in [
        "/metrics",
        "/",
        "/api",
        "/status/query?name=q",
        "/api/v1/dead-letters",
        "/-/ready",
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .basic_auth("ops", Some(WEB_PASSWORD))
            .send()
            .await
            .expect("answer");
        seen += &response.text().await.unwrap_or_default();
    }
    assert!(
        seen.contains("foretell_remote_write_samples_total"),
        "the pages were read"
    );
    assert!(foretell.terminate(Duration::from_secs(20)).is_some());
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("remote write failed") && logged.contains("delivery failed"),
        "the failures were logged: {logged}"
    );
    // The token did reach Prometheus (so it was in use), and only there.
    let heads = prometheus_heads.lock().expect("lock").join("\n");
    assert!(
        heads.contains(&format!("authorization: Bearer {PROMETHEUS_TOKEN}")),
        "{heads}"
    );
    assert!(
        heads.contains(&format!("api_key={PROMETHEUS_QUERY_SECRET}")),
        "the query string reached Prometheus: {heads}"
    );
    let audit_shown = run_ok(
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .current_dir(dir.path())
            .args(["audit", "show", "--db", "audit.db"]),
    );
    assert!(
        audit_shown.contains("config.rejected") && audit_shown.contains("alert.retried"),
        "{audit_shown}"
    );
    // Issue 16, item 8: admin actions over HTTP name the user and the client address.
    assert!(
        audit_shown.contains("http:/-/reload user=ops address=127.0.0.1:"),
        "{audit_shown}"
    );
    let malformed_config = dir.path().join("malformed.yml");
    std::fs::write(&malformed_config, &malformed).expect("malformed config");
    let (_, check_config) = {
        let output = Command::new(env!("CARGO_BIN_EXE_foretell"))
            .current_dir(dir.path())
            .arg("check-config")
            .arg(&config)
            .env("TEST_PROMETHEUS_TOKEN", PROMETHEUS_TOKEN)
            .env("TEST_REMOTE_WRITE_PASSWORD", REMOTE_WRITE_PASSWORD)
            .env("TEST_RECEIVER_PASSWORD", RECEIVER_PASSWORD)
            .output()
            .expect("check-config");
        let malformed = Command::new(env!("CARGO_BIN_EXE_foretell"))
            .current_dir(dir.path())
            .arg("check-config")
            .arg(&malformed_config)
            .output()
            .expect("check-config");
        assert_eq!(malformed.status.code(), Some(2));
        (
            output.status,
            format!(
                "{}{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&malformed.stderr)
            ),
        )
    };
    assert!(
        check_config.contains("<secret>@prometheus:99999"),
        "{check_config}"
    );
    for secret in [
        PROMETHEUS_TOKEN,
        REMOTE_WRITE_PASSWORD,
        RECEIVER_PASSWORD,
        WEBHOOK_TOKEN,
        AUDIT_SECRET_HEX,
        WEB_PASSWORD,
        &hash,
        PROMETHEUS_QUERY_SECRET,
        RECEIVER_PATH_SECRET,
        RECEIVER_QUERY_SECRET,
        MALFORMED_URL_PASSWORD,
    ] {
        for (what, text) in [
            ("the log", &logged),
            ("an HTTP answer", &seen),
            ("check-config", &check_config),
            ("the audit log", &audit_shown),
        ] {
            let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                leaks.is_empty(),
                "{what} holds the secret {secret}: {leaks:?}"
            );
        }
    }
}
