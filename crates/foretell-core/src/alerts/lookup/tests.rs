use super::*;
use crate::model::{Coverage, SeasonSpec};
use crate::snapshot::export_labels;
use crate::synthetic::uniform_noise;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ready(peak: f64) -> SeriesState {
    SeriesState::Ready {
        band: Band {
            expected: 1.0,
            lower: 0.0,
            upper: 2.0,
        },
        score: Some(peak / 2.0),
        probability: 0.1,
        forecasts: vec![],
        threshold_eta_seconds: None,
        excursion: Excursion {
            length: u32::from(peak > 1.0),
            outside: u32::from(peak > 1.0),
            peak_sigmas: peak,
            ..Excursion::default()
        },
    }
}

fn output(query: &str, series: &[(&[(&str, &str)], f64)]) -> QueryOutput {
    QueryOutput {
        query: query.into(),
        evaluated_at_ms: 0,
        horizons: vec![],
        series: series
            .iter()
            .map(|(pairs, peak)| {
                SeriesOutput::new(
                    export_labels(query, &Labels::from_pairs(pairs.iter().copied())),
                    ready(*peak),
                )
            })
            .collect(),
    }
}

#[test]
fn the_most_specific_tracked_series_whose_labels_all_match_is_found() {
    let errors = output(
        "errors",
        &[
            (&[("__name__", "http_errors"), ("job", "api")], 0.0),
            (
                &[
                    ("__name__", "http_errors"),
                    ("job", "api"),
                    ("instance", "a"),
                ],
                5.0,
            ),
            (
                &[
                    ("__name__", "http_errors"),
                    ("job", "api"),
                    ("instance", "b"),
                ],
                4.0,
            ),
            (
                &[
                    ("__name__", "http_errors"),
                    ("job", "web"),
                    ("instance", "c"),
                ],
                0.5,
            ),
        ],
    );
    let alert = labels(&[
        ("alertname", "HighErrors"),
        ("job", "api"),
        ("instance", "a"),
    ]);
    let found = find_tracked([&errors].into_iter(), &alert, None).expect("found");
    assert_eq!(found.series.labels().get("instance"), Some("a"));
    assert_eq!((found.siblings, found.siblings_anomalous), (3, 1));

    let elsewhere = labels(&[("alertname", "X"), ("job", "db")]);
    assert!(find_tracked([&errors].into_iter(), &elsewhere, None).is_none());
}

#[test]
fn an_alert_naming_a_query_looks_only_there() {
    let a = output("a", &[(&[("job", "api")], 0.0)]);
    let b = output("b", &[(&[("job", "api")], 0.0)]);
    let alert = labels(&[("job", "api"), ("query", "b")]);
    let found = find_tracked([&a, &b].into_iter(), &alert, None).expect("found");
    assert_eq!(found.query.query, "b");
    let found =
        find_tracked([&a, &b].into_iter(), &labels(&[("job", "api")]), Some("a")).expect("found");
    assert_eq!(found.query.query, "a");
}

#[test]
fn a_series_without_labels_matches_no_alert_among_tracked_series() {
    let total = output("total", &[(&[("__name__", "requests")], 9.0)]);
    assert!(find_tracked([&total].into_iter(), &labels(&[("job", "x")]), None).is_none());
}

#[test]
fn the_rule_expression_comes_from_the_generator_url() {
    let url = "http://prometheus:9090/graph?g0.expr=rate%28errors_total%7Bjob%3D%22api%22%7D%5B5m%5D%29+%3E+0.05&g0.tab=1";
    assert_eq!(
        rule_expression(url).as_deref(),
        Some("rate(errors_total{job=\"api\"}[5m]) > 0.05")
    );
    assert_eq!(rule_expression("http://p/graph?g0.tab=1"), None);
    assert_eq!(rule_expression(""), None);
    assert_eq!(
        rule_expression("http://p/graph?g0.expr=%ZZ").as_deref(),
        Some("%ZZ")
    );
}

#[test]
fn a_final_comparison_with_a_number_is_taken_off() {
    assert_eq!(without_threshold("rate(x[5m]) > 0.05"), "rate(x[5m])");
    assert_eq!(without_threshold("x{a=\"b>c\"} >= bool 3"), "x{a=\"b>c\"}");
    assert_eq!(without_threshold("0.9 < up"), "up");
    assert_eq!(
        without_threshold("sum(x > 1)"),
        "sum(x > 1)",
        "nested comparisons stay"
    );
    assert_eq!(
        without_threshold("a > b"),
        "a > b",
        "a comparison of two series stays"
    );
    assert_eq!(without_threshold("x != 0"), "x");
    assert_eq!(without_threshold(" up "), "up");
}

#[test]
fn the_result_series_matching_the_alert_is_picked() {
    let results = vec![
        (Labels::from_pairs([("job", "api"), ("instance", "a")]), 1),
        (Labels::from_pairs([("job", "api"), ("instance", "b")]), 2),
    ];
    let alert = labels(&[("alertname", "X"), ("job", "api"), ("instance", "b")]);
    assert_eq!(pick_series(&results, &alert).map(|r| r.1), Some(2));
    let aggregate = vec![(Labels::from_pairs([("__name__", "x")]), 7)];
    assert_eq!(pick_series(&aggregate, &alert).map(|r| r.1), Some(7));
    assert!(pick_series(&results, &labels(&[("job", "web")])).is_none());
}

#[test]
fn replaying_a_series_with_an_incident_finds_the_open_excursion() {
    let mut values: Vec<f64> = (0..600).map(|i| 10.0 + uniform_noise(i, 7)).collect();
    for v in values.iter_mut().skip(590) {
        *v += 20.0;
    }
    let model = ForecastModel {
        coverage: Coverage::new(0.95).expect("valid"),
        min_points: 30,
        season: SeasonSpec::None,
        horizon_steps: 60,
    };
    let replayed = replay(&values, 540, &model, ProbabilitySettings::default(), 60).expect("fits");
    assert!(replayed.excursion.is_open());
    assert!(replayed.excursion.outside >= 8, "{:?}", replayed.excursion);
    assert!(
        replayed.excursion.peak_sigmas > 5.0,
        "{:?}",
        replayed.excursion
    );
    assert_eq!(replayed.excursion.direction, 1);
    let quiet = replay(
        &values[..580],
        540,
        &model,
        ProbabilitySettings::default(),
        60,
    )
    .expect("fits");
    assert!(quiet.excursion.peak_sigmas < 5.0, "{:?}", quiet.excursion);
    assert!(replay(&values[..10], 5, &model, ProbabilitySettings::default(), 1).is_err());
}
