use super::*;
use crate::synthetic::uniform_noise;

fn packed(values: &[f64]) -> PackedValues {
    values.iter().copied().collect()
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[test]
fn whole_numbers_gaps_infinities_and_constants_come_back_exactly() {
    let mut values: Vec<f64> = (0..3 * BLOCK).map(|i| (i * 37 % 1_000) as f64).collect();
    values[5] = f64::NAN;
    values[70] = f64::INFINITY;
    values[71] = f64::NEG_INFINITY;
    // A block of one repeated fraction.
    values[2 * BLOCK..].fill(0.1);
    let window = packed(&values);
    assert_eq!(window.len(), values.len());
    for (i, (got, want)) in window.iter().zip(&values).enumerate() {
        assert!(same(got, *want), "{i}: {got} != {want}");
        assert!(same(window.get(i).expect("in range"), *want));
    }
}

#[test]
fn a_few_distinct_fractions_come_back_exactly() {
    // A noiseless shape made of a handful of levels (NAB's art_daily_no_noise has 16).
    let levels = [
        20.0,
        20.003_839_998,
        31.999_993_856,
        68.0,
        79.52,
        79.999_232,
    ];
    let values: Vec<f64> = (0..4 * BLOCK)
        .map(|i| {
            if i == 9 {
                f64::NAN
            } else {
                levels[i / 7 % levels.len()]
            }
        })
        .collect();
    let window = packed(&values);
    assert!(window
        .iter()
        .zip(&values)
        .all(|(got, want)| same(got, *want)));
    let bytes = postcard::to_stdvec(&window).expect("serialise");
    let restored: PackedValues = postcard::from_bytes(&bytes).expect("deserialise");
    assert!(restored
        .iter()
        .zip(&values)
        .all(|(got, want)| same(got, *want)));
    let damaged = PackedRepr {
        blocks: vec![BlockRepr {
            linear: None,
            palette: vec![1.0],
            codes: vec![3; BLOCK],
            exceptions: vec![],
        }],
        skipped: 0,
        open: vec![],
    };
    let error = PackedValues::try_from(damaged).expect_err("a code beyond the palette");
    assert!(error.contains("beyond its palette"), "{error}");
}

#[test]
fn fractions_come_back_within_a_tiny_share_of_their_spread() {
    // Full-precision values, as rate() gives: a daily shape plus noise.
    let values: Vec<f64> = (0..10 * BLOCK)
        .map(|i| 100.0 + 20.0 * (i as f64 / 50.0).sin() + uniform_noise(i, 3))
        .collect();
    let window = packed(&values);
    let decoded: Vec<f64> = window.iter().collect();
    let mut any_error = false;
    for (block, (got, want)) in decoded.chunks(BLOCK).zip(values.chunks(BLOCK)).enumerate() {
        let range = want.iter().copied().fold(f64::MIN, f64::max)
            - want.iter().copied().fold(f64::MAX, f64::min);
        for (g, w) in got.iter().zip(want) {
            // At most half a step of the block's range over 65,534.
            assert!(
                (g - w).abs() <= range / 65_534.0 / 2.0 * 1.000_001,
                "block {block}: {g} != {w}"
            );
            any_error |= g != w;
        }
    }
    assert!(
        any_error,
        "these values are not whole numbers: some must be rounded"
    );
}

#[test]
fn a_spike_does_not_coarsen_the_values_around_it() {
    let mut values: Vec<f64> = (0..BLOCK)
        .map(|i| 10.0 + 0.01 * uniform_noise(i, 7))
        .collect();
    values[20] = 1.0e9;
    let window = packed(&values);
    assert_eq!(window.get(20), Some(1.0e9), "the spike is kept exactly");
    let worst = window
        .iter()
        .zip(&values)
        .map(|(got, want)| (got - want).abs())
        .fold(0.0, f64::max);
    // Half a step of a robust step (the interquartile range, at most 0.01, over 4,096), not
    // of the range (1e9 over 65,534: 15,000).
    assert!(worst < 0.01 / 4_096.0, "{worst}");
}

#[test]
fn the_front_drops_one_value_at_a_time_and_late_values_overwrite() {
    let values: Vec<f64> = (0..200).map(f64::from).collect();
    let mut window = packed(&values);
    for _ in 0..70 {
        window.pop_front();
    }
    assert_eq!(window.len(), 130);
    assert_eq!(window.get(0), Some(70.0));
    assert_eq!(window.back(), Some(199.0));
    assert_eq!(window.iter().next(), Some(70.0));
    assert_eq!(window.iter().count(), 130);
    // In a completed block and in the open one.
    window.set(0, -1.5);
    window.set(129, 7.25);
    assert_eq!(window.get(129), Some(7.25));
    // A fraction joins a block of whole numbers: the block is coded by its range now, each
    // value within half a step (128.5 / 65,534 / 2).
    let close = |index: usize, want: f64| {
        let got = window.get(index).expect("in range");
        assert!(
            (got - want).abs() <= 128.5 / 65_534.0 / 2.0 * 1.000_001,
            "{got} != {want}"
        );
    };
    close(0, -1.5);
    close(1, 71.0);
    assert_eq!(window.get(130), None);
    window.clear();
    assert!(window.is_empty());
    assert_eq!(window.back(), None);
    window.pop_front();
    assert!(window.is_empty());
}

#[test]
fn a_window_takes_well_under_half_the_memory_of_doubles() {
    let values: Vec<f64> = (0..2_881)
        .map(|i| 100.0 + 20.0 * (i as f64 / 200.0).sin() + uniform_noise(i, 11))
        .collect();
    let mut window = packed(&values);
    window.shrink_to(2_881);
    let doubles = 2_881 * std::mem::size_of::<f64>();
    assert!(
        window.heap_bytes() * 5 <= doubles * 2,
        "{} B against {doubles} B",
        window.heap_bytes()
    );
}

#[test]
fn the_serialised_form_restores_the_same_values_and_rejects_a_damaged_one() {
    let values: Vec<f64> = (0..300)
        .map(|i| {
            if i == 100 {
                f64::NAN
            } else {
                uniform_noise(i, 5) * 1e3
            }
        })
        .collect();
    let mut window = packed(&values);
    window.pop_front();
    let bytes = postcard::to_stdvec(&window).expect("serialise");
    let restored: PackedValues = postcard::from_bytes(&bytes).expect("deserialise");
    assert_eq!(restored.len(), window.len());
    assert!(restored.iter().zip(window.iter()).all(|(a, b)| same(a, b)));
    let damaged = PackedRepr {
        blocks: vec![BlockRepr {
            linear: Some((0.0, 1.0)),
            palette: vec![],
            codes: vec![0; BLOCK - 1],
            exceptions: vec![],
        }],
        skipped: 0,
        open: vec![],
    };
    let error = PackedValues::try_from(damaged).expect_err("too few codes");
    assert!(error.contains("63 codes"), "{error}");
}
