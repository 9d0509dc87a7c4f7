use super::*;

/// A notification as Alertmanager 0.25+ sends it, with fields foretell does not read.
const NOTIFICATION: &str = r#"{
  "receiver": "foretell",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "HighErrorRate", "instance": "web-a", "job": "api"},
      "annotations": {"summary": "error rate above 5%"},
      "startsAt": "2018-08-03T09:52:26.739266876+02:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28errors_total%5B5m%5D%29+%3E+0.05&g0.tab=1",
      "fingerprint": "c6eadffa33fcdf37"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "HighErrorRate", "instance": "web-b", "job": "api"},
      "startsAt": "2018-08-03T07:00:00Z",
      "endsAt": "2018-08-03T08:00:00Z",
      "generatorURL": "",
      "fingerprint": "bc97ff14869b13e3"
    }
  ],
  "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {"alertname": "HighErrorRate", "job": "api"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"HighErrorRate\"}",
  "truncatedAlerts": 0,
  "orgId": 1
}"#;

#[test]
fn a_real_notification_is_read_field_by_field() {
    let notification = parse(NOTIFICATION.as_bytes()).expect("valid");
    assert_eq!(notification.receiver, "foretell");
    assert_eq!(notification.status, AlertStatus::Firing);
    assert_eq!(notification.group_key, "{}:{alertname=\"HighErrorRate\"}");
    assert_eq!(notification.group_labels["alertname"], "HighErrorRate");
    assert_eq!(notification.external_url, "http://alertmanager:9093");
    let [firing, resolved] = &notification.alerts[..] else {
        panic!("two alerts: {:?}", notification.alerts)
    };
    assert_eq!(firing.labels["instance"], "web-a");
    assert_eq!(firing.annotations["summary"], "error rate above 5%");
    // 2018-08-03T07:52:26.739Z = 1533282746739 ms.
    assert_eq!(firing.starts_at_ms, 1_533_282_746_739);
    assert_eq!(firing.ends_at_ms, None, "Go's zero time means still firing");
    assert!(firing.generator_url.contains("g0.expr="));
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert!(resolved.annotations.is_empty());
    assert_eq!(resolved.ends_at_ms, Some(1_533_283_200_000));
}

#[test]
fn annotations_are_added_and_everything_else_passes_through() {
    let notification = parse(NOTIFICATION.as_bytes()).expect("valid");
    let added = vec![
        BTreeMap::from([("foretell_confidence".to_owned(), "0.93".to_owned())]),
        BTreeMap::from([(
            "foretell_confidence".to_owned(),
            "unavailable: no series".to_owned(),
        )]),
    ];
    let forwarded = notification.with_annotations(&added);
    let original: Value = serde_json::from_str(NOTIFICATION).expect("json");
    assert_eq!(
        forwarded["alerts"][0]["annotations"]["summary"],
        "error rate above 5%"
    );
    assert_eq!(
        forwarded["alerts"][0]["annotations"]["foretell_confidence"],
        "0.93"
    );
    assert_eq!(
        forwarded["alerts"][1]["annotations"]["foretell_confidence"],
        "unavailable: no series"
    );
    // Remove what was added: the rest is the original document, unknown fields included.
    let mut stripped = forwarded.clone();
    for alert in stripped["alerts"].as_array_mut().expect("alerts") {
        let annotations = alert["annotations"].as_object_mut().expect("annotations");
        annotations.remove("foretell_confidence");
        if annotations.is_empty() && !original_has_annotations(alert) {
            alert.as_object_mut().expect("alert").remove("annotations");
        }
    }
    assert_eq!(stripped, original);
    assert_eq!(forwarded["orgId"], 1);
    assert_eq!(forwarded["truncatedAlerts"], 0);
}

fn original_has_annotations(alert: &Value) -> bool {
    alert["fingerprint"] == "c6eadffa33fcdf37"
}

#[test]
fn awkward_but_valid_input_is_accepted_exactly() {
    let tricky = r#"{"version":"4","receiver":"r","status":"firing","groupKey":"k","groupLabels":{},
        "alerts":[{"status":"firing","labels":{"path":"C:\\temp\\\"x\"\nnext","emoji":"\u00e9\ud83d\ude00"},
        "startsAt":"2024-05-01T12:00:00Z"}]}"#;
    let notification = parse(tricky.as_bytes()).expect("valid");
    assert_eq!(
        notification.alerts[0].labels["path"],
        "C:\\temp\\\"x\"\nnext"
    );
    assert_eq!(notification.alerts[0].labels["emoji"], "é😀");
    let empty = r#"{"version":"4","receiver":"r","status":"resolved","groupKey":"k","groupLabels":{},"alerts":[]}"#;
    assert!(parse(empty.as_bytes()).expect("valid").alerts.is_empty());
    // 50,000 alerts parse (Alertmanager's max_alerts should keep bodies far smaller).
    let one = r#"{"status":"firing","labels":{"alertname":"A"},"startsAt":"2024-05-01T12:00:00Z"}"#;
    let many = format!(
        r#"{{"version":"4","receiver":"r","status":"firing","groupKey":"k","groupLabels":{{}},"alerts":[{}]}}"#,
        vec![one; 50_000].join(",")
    );
    assert_eq!(parse(many.as_bytes()).expect("valid").alerts.len(), 50_000);
}

#[test]
fn bad_bodies_say_what_is_wrong_and_where() {
    let base = |alerts: &str| {
        format!(
            r#"{{"version":"4","receiver":"r","status":"firing","groupKey":"k","groupLabels":{{}},"alerts":{alerts}}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        ("{\"version\": \"4\",".into(), "the body is not JSON: EOF while parsing"),
        ("[]".into(), "(body): must be a JSON object"),
        (r#"{"version":"3","alerts":[]}"#.into(), "version: foretell reads Alertmanager webhook payload version 4, got \"3\""),
        (r#"{"version":4,"alerts":[]}"#.into(), "version: foretell reads Alertmanager webhook payload version 4, got 4"),
        (r#"{"alerts":[]}"#.into(), "version: is missing"),
        (base("{}"), "alerts: must be a list"),
        (base(r#"[{"status":"pending","labels":{},"startsAt":"2024-05-01T12:00:00Z"}]"#), "alerts[0].status: must be `firing` or `resolved`, got `pending`"),
        (base(r#"[{"status":"firing","labels":{"job":7},"startsAt":"2024-05-01T12:00:00Z"}]"#), "alerts[0].labels.job: must be a string"),
        (base(r#"[{"status":"firing","labels":{}}]"#), "alerts[0].startsAt: is missing"),
        (base(r#"[{"status":"firing","labels":{},"startsAt":"yesterday"}]"#), "alerts[0].startsAt: `yesterday` is not a timestamp"),
        (base(r#"[{"status":"firing","labels":{},"startsAt":"1714564800"}]"#), "alerts[0].startsAt: `1714564800` is not an RFC 3339 time"),
        (base(r#"[{"status":"firing","labels":{},"startsAt":"0001-01-01T00:00:00Z"}]"#), "alerts[0].startsAt: is the zero time"),
        (base(r#"[{"status":"firing","labels":{},"startsAt":"2024-05-01T12:00:00Z"}, 3]"#), "alerts[1]: must be a JSON object"),
        (r#"{"version":"4","receiver":"r","status":"firing","groupKey":"k","alerts":[]}"#.into(), "groupLabels: is missing"),
        (r#"{"version":"4","receiver":"r","status":"firing","groupKey":"k","groupLabels":{},"alerts":[],"x":"\ud800"}"#.into(), "the body is not JSON: unexpected end of hex escape"),
    ];
    for (body, expected) in cases {
        let error = parse(body.as_bytes()).expect_err(&body).to_string();
        assert!(
            error.starts_with(expected),
            "{body}\n  got: {error}\n  expected: {expected}"
        );
    }
    let invalid_utf8 = b"{\"version\":\"4\",\"receiver\":\"\xff\"}";
    assert!(parse(invalid_utf8)
        .expect_err("utf8")
        .to_string()
        .starts_with("the body is not JSON: invalid unicode"));
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let error = parse(nested.as_bytes())
        .expect_err("nesting bomb")
        .to_string();
    assert!(error.contains("must be a JSON object"), "{error}");
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for nested in [format!(r#"{{"x": {bomb}}}"#), base(&format!("[{bomb}]"))] {
        let error = parse(nested.as_bytes())
            .expect_err("nesting bomb")
            .to_string();
        assert!(error.contains("recursion limit"), "{error}");
    }
}

#[test]
fn a_receiver_share_keeps_its_alerts_and_recomputes_the_status() {
    let notification = parse(NOTIFICATION.as_bytes()).expect("valid");
    let added = vec![
        BTreeMap::from([("foretell_confidence".to_owned(), "0.91".to_owned())]),
        BTreeMap::new(),
    ];
    let resolved_only = notification.share(&added, &[1]);
    assert_eq!(resolved_only["status"], "resolved");
    assert_eq!(resolved_only["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        resolved_only["alerts"][0]["fingerprint"],
        "bc97ff14869b13e3"
    );
    assert_eq!(
        resolved_only["truncatedAlerts"], 0,
        "other fields pass through"
    );
    let both = notification.share(&added, &[0, 1]);
    assert_eq!(both["status"], "firing");
    assert_eq!(
        both["alerts"][0]["annotations"]["foretell_confidence"],
        "0.91"
    );
    assert_eq!(
        both["alerts"][0]["annotations"]["summary"],
        "error rate above 5%"
    );
}
