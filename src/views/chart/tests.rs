use super::axes::{short_number, time_label, value_ticks};
use super::*;
use foretell_core::chart::TracePoint;
use foretell_core::model::Band;

fn band(expected: f64, half: f64) -> Band {
    Band {
        expected,
        lower: expected - half,
        upper: expected + half,
    }
}

fn sample_trace() -> Trace {
    let points = (0..60)
        .map(|i| {
            let value = match i {
                40 => 180.0,
                41 => 150.0,
                50 => f64::NAN,
                _ => 100.0 + (i % 5) as f64,
            };
            TracePoint {
                timestamp_ms: 1_700_000_000_000 + i * 60_000,
                value,
                band: band(102.0, 6.0),
                score: value.is_finite().then(|| (value - 102.0).abs() / 6.0),
                probability: if i == 40 { 0.7 } else { 0.01 },
            }
        })
        .collect();
    Trace {
        points,
        excursion: Default::default(),
        forecast: (1..=10)
            .map(|s| (1_700_000_000_000 + (59 + s) * 60_000, band(103.0, 8.0)))
            .collect(),
        coverage: 0.99,
        onset_probability: foretell_core::model::ProbabilitySettings::default().onset_probability(),
        replayed_through_ms: None,
    }
}

/// Tags open and close in order, attributes are quoted, no raw `<` or `&` in text.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "raw > in text: {text}");
        for (i, _) in text.match_indices('&') {
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| text[i..].starts_with(e)),
                "raw & in text: {text}"
            );
        }
        let close = rest[open..].find('>').expect("tag closes") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "< inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            stack.push(name.to_owned());
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

fn frame<'a>(title: &'a str, subtitle: &'a str) -> Frame<'a> {
    Frame {
        title,
        subtitle,
        unit: "requests/s",
        width: DEFAULT_WIDTH,
    }
}

/// The numbers of an attribute of every element of `class`.
fn attribute_of(svg: &str, class: &str, attribute: &str) -> Vec<f64> {
    svg.split(&format!("class=\"{class}\""))
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let value = tag.split(&format!(" {attribute}=\"")).nth(1)?;
            value.split('"').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn the_chart_is_well_formed_and_draws_every_part() {
    let svg = render(
        &sample_trace(),
        &frame("demo {instance=\"a\"}", "query demo"),
    );
    assert_well_formed(&svg);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\""));
    for class in ["band", "forecast-band", "expected", "forecast", "actual"] {
        assert!(
            svg.contains(&format!("class=\"{class}\" d=\"M")),
            "{class} missing"
        );
    }
    // The spike at 40-41 is one episode with one marker; 41 is outside without reaching
    // the onset: two points outside.
    assert_eq!(svg.matches("class=\"episode\"").count(), 1);
    assert_eq!(svg.matches("class=\"episode-peak\"").count(), 1);
    assert_eq!(svg.matches("class=\"outside\"").count(), 2);
    assert!(svg.contains("1 anomaly episode<"), "{svg}");
    assert!(svg.contains("99% band"));
    assert!(svg.contains(">requests/s</text>"), "the unit on the y axis");
    assert!(!svg.contains("class=\"replayed\""), "nothing was replayed");
    // The gap at point 50 splits the observed line in two.
    let actual = svg
        .split("class=\"actual\" d=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("actual path");
    assert_eq!(actual.matches('M').count(), 2, "{actual}");
}

#[test]
fn label_values_cannot_inject_markup() {
    let title = "x{job=\"</title><script>alert(1)</script>\", a=\"&\"}";
    let svg = render(
        &sample_trace(),
        &frame(title, "<img src=x onerror=alert(1)>"),
    );
    assert_well_formed(&svg);
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("<img"), "{svg}");
    assert!(svg.contains("&lt;/title&gt;&lt;script&gt;"));
}

#[test]
fn wild_bands_and_empty_traces_still_render() {
    let mut trace = sample_trace();
    trace.points[10].band = band(100.0, 1e300);
    trace.points[11].band = band(f64::NAN, f64::NAN);
    let svg = render(&trace, &frame("t", "s"));
    assert_well_formed(&svg);
    assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
    let empty = Trace {
        points: vec![],
        forecast: vec![],
        ..trace
    };
    let svg = render(&empty, &frame("t", "s"));
    assert_well_formed(&svg);
    assert!(svg.contains("no data"));
}

/// Issue 19, item 2: nothing collides at any width, the band is inside the plot and a
/// day of points is drawn per pixel column.
#[test]
fn labels_do_not_collide_and_long_ranges_stay_small() {
    // A day at 15 s: 5,760 points, with a band wider than the values.
    let points: Vec<TracePoint> = (0..5760)
        .map(|i| {
            let value = 100.0 + 20.0 * (i as f64 / 916.0).sin();
            TracePoint {
                timestamp_ms: 1_700_000_000_000 + i * 15_000,
                value,
                band: band(value, 25.0),
                score: Some(0.2),
                probability: 0.0,
            }
        })
        .collect();
    let trace = Trace {
        points,
        replayed_through_ms: Some(1_700_000_000_000 + 4000 * 15_000),
        forecast: vec![(1_700_000_000_000 + 5820 * 15_000, band(100.0, 30.0))],
        ..sample_trace()
    };
    for width in [MIN_WIDTH, DEFAULT_WIDTH, 1800] {
        let svg = render(&trace, &frame("t", "s"));
        let svg = if width == DEFAULT_WIDTH {
            svg
        } else {
            render(
                &trace,
                &Frame {
                    width,
                    ..frame("t", "s")
                },
            )
        };
        assert_well_formed(&svg);
        assert!(svg.len() < 120_000, "{width}: {} bytes", svg.len());
        assert!(svg.contains(&format!("viewBox=\"0 0 {width} {HEIGHT}\"")));
        // Time labels: at least two, none overlapping the next (11 characters each).
        let xs = attribute_of(&svg, "time", "x");
        assert!(xs.len() >= 2, "{width}: {xs:?}");
        let label = 11.0 * CHAR_WIDTH;
        assert!(
            xs.windows(2).all(|w| w[1] - w[0] > label),
            "{width}: {xs:?}"
        );
        assert!(xs
            .iter()
            .all(|x| *x - label / 2.0 >= 0.0 && *x + label / 2.0 <= f64::from(width)));
        // Legend entries in a row do not run into each other, nor off the picture.
        let legend: Vec<(f64, f64, usize)> = svg
            .split("<text x=\"")
            .skip(1)
            .filter_map(|rest| {
                let x: f64 = rest.split('"').next()?.parse().ok()?;
                let y: f64 = rest.split("y=\"").nth(1)?.split('"').next()?.parse().ok()?;
                let text = rest.split('>').nth(1)?.split('<').next()?;
                (y < 90.0 && y != TITLE_Y && y != SUBTITLE_Y).then_some((
                    x,
                    y,
                    text.chars().count(),
                ))
            })
            .collect();
        assert!(legend.len() >= 6, "{width}: {legend:?}");
        for pair in legend.windows(2) {
            let ((x0, y0, chars), (x1, y1, _)) = (pair[0], pair[1]);
            if y0 == y1 {
                assert!(
                    x0 + chars as f64 * CHAR_WIDTH + 18.0 <= x1,
                    "{width}: {pair:?}"
                );
            }
        }
        assert!(legend
            .iter()
            .all(|(x, _, chars)| x + *chars as f64 * CHAR_WIDTH <= f64::from(width)));
        // The band is drawn inside the plot: its edges are in the value range.
        let band_path = svg
            .split("class=\"band\" d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("band");
        let ys: Vec<f64> = band_path
            .split(['M', 'L', 'Z'])
            .filter_map(|p| p.split_whitespace().nth(1)?.parse().ok())
            .collect();
        let top = LEGEND_Y + 8.0;
        assert!(
            ys.iter()
                .all(|y| *y >= top && *y <= f64::from(HEIGHT) - BOTTOM_MARGIN + 0.1),
            "{width}"
        );
        assert!(svg.contains("replayed from history</text>"));
    }
}

#[test]
fn ticks_are_round_and_numbers_short() {
    assert_eq!(
        value_ticks(0.0, 10.0, 5),
        vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    );
    assert_eq!(
        value_ticks(95.0, 121.0, 5),
        vec![95.0, 100.0, 105.0, 110.0, 115.0, 120.0]
    );
    assert_eq!(short_number(1234.56), "1235");
    assert_eq!(short_number(25_000.0), "25k");
    assert_eq!(short_number(0.012345), "0.01235");
    assert_eq!(short_number(3.0e9), "3G");
    assert_eq!(time_label(1_700_000_000_000, 3_600_000), "22:13");
    assert_eq!(time_label(1_700_000_000_000, 3 * 86_400_000), "11-14 22:13");
}
