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
fn fractions_come_back_within_a_tiny_share_of_their_spread_or_their_noise() {
    // Full-precision values, as rate() gives: a daily shape plus noise.
    let values: Vec<f64> = (0..10 * BLOCK)
        .map(|i| 100.0 + 20.0 * (i as f64 / 50.0).sin() + 2.0 * uniform_noise(i, 3))
        .collect();
    let window = packed(&values);
    let decoded: Vec<f64> = window.iter().collect();
    let mut any_error = false;
    for (block, (got, want)) in decoded.chunks(BLOCK).zip(values.chunks(BLOCK)).enumerate() {
        let range = want.iter().copied().fold(f64::MIN, f64::max)
            - want.iter().copied().fold(f64::MAX, f64::min);
        let block_noise = noise(want.try_into().expect("a block"));
        assert!(block_noise > 0.3 && block_noise < 1.0, "{block_noise}");
        for (g, w) in got.iter().zip(want) {
            // At most half a step: the block's range over 65,534, or 2 % of its noise.
            let half_step = (range / 65_534.0).max(NOISE_STEP * block_noise) / 2.0;
            assert!(
                (g - w).abs() <= half_step * 1.000_001,
                "block {block}: {g} != {w}"
            );
            any_error |= g != w;
        }
    }
    assert!(
        any_error,
        "these values are not whole numbers: some must be rounded"
    );
    // Noise about 0.58 (uniform in ±1) over a range of about 25: 12 bits, not 16.
    assert!(
        window.words.len() <= 10 * 12,
        "{} words for 10 blocks",
        window.words.len()
    );
}

#[test]
fn the_noise_of_a_block_is_that_of_its_values_not_of_its_shape() {
    // White noise of standard deviation 1/sqrt(3) (uniform in ±1) on a steep ramp and on a sine.
    let ramp: [f64; BLOCK] =
        std::array::from_fn(|i| 1_000.0 + 37.0 * i as f64 + 2.0 * uniform_noise(i, 1));
    let sine: [f64; BLOCK] =
        std::array::from_fn(|i| 50.0 * (i as f64 / 9.0).sin() + 2.0 * uniform_noise(i, 2));
    for values in [ramp, sine] {
        let estimate = noise(&values);
        assert!(
            (estimate - 1.0 / 3f64.sqrt()).abs() < 0.2,
            "{estimate} against {}",
            1.0 / 3f64.sqrt()
        );
    }
    // A ramp without noise has none: it keeps the fine step, within 1/131,068 of its range.
    let exact_ramp: [f64; BLOCK] = std::array::from_fn(|i| 0.1 * i as f64 + 1e-3);
    // (Its second differences are rounding errors.)
    assert!(noise(&exact_ramp) < 1e-12);
    let window = packed(&exact_ramp);
    for (got, want) in window.iter().zip(exact_ramp) {
        assert!((got - want).abs() <= 6.3 / 65_534.0 / 2.0 * 1.000_001);
    }
    // Too few finite values to tell.
    let mut gaps = [f64::NAN; BLOCK];
    gaps[..5].copy_from_slice(&[1.0, 2.5, 2.0, 7.0, 1.0]);
    assert_eq!(noise(&gaps), 0.0);
}

#[test]
fn codes_of_every_width_and_the_gap_survive_packing() {
    for bits in 1..=16u8 {
        let largest = (1u32 << bits) - 2;
        let codes: [u16; BLOCK] = std::array::from_fn(|i| match i % 5 {
            0 => GAP,
            1 => largest as u16,
            _ => ((i as u32 * 7919) % (largest + 1)) as u16,
        });
        let mut words = VecDeque::new();
        words.push_back(u64::MAX); // a block before it
        pack(&codes, bits, &mut words);
        assert_eq!(words.len(), 1 + usize::from(bits), "{bits} bits");
        assert_eq!(unpack(words.range(1..), bits), codes, "{bits} bits");
    }
}

#[test]
fn a_late_value_that_widens_a_block_leaves_the_blocks_after_it_intact() {
    // Whole numbers (7 bits a code), then noise, then a palette.
    let mut values: Vec<f64> = (0..BLOCK).map(|i| i as f64).collect();
    values.extend((0..BLOCK).map(|i| 5.0 + uniform_noise(i, 4)));
    values.extend((0..BLOCK).map(|i| [0.25, 0.5][i % 2]));
    let mut window = packed(&values);
    let before = window.words.len();
    window.set(3, 12_345.678);
    assert!(
        window.words.len() > before,
        "the first block needs wider codes"
    );
    values[3] = 12_345.678;
    for (i, (got, want)) in window.iter().zip(&values).enumerate() {
        // The first block is coded by its interquartile range now (the new value kept
        // exactly beside it), the second by its noise; the third exactly.
        let tolerance = if i < BLOCK {
            0.1
        } else if i < 2 * BLOCK {
            0.01
        } else {
            0.0
        };
        assert!((got - want).abs() <= tolerance, "{i}: {got} != {want}");
        assert_eq!(window.get(i), Some(got));
    }
    // A change in the last block (a third value in its palette) leaves the others as they
    // were.
    let middle: Vec<Option<f64>> = (BLOCK..2 * BLOCK).map(|i| window.get(i)).collect();
    window.set(2 * BLOCK + 5, 0.375);
    assert_eq!(window.get(2 * BLOCK + 5), Some(0.375));
    assert_eq!(window.get(2 * BLOCK + 6), Some(0.25));
    assert!((BLOCK..2 * BLOCK).all(|i| window.get(i) == middle[i - BLOCK]));
    window.pop_front();
    assert_eq!(window.get(2 * BLOCK + 4), Some(0.375));
    assert_eq!(window.len(), 3 * BLOCK - 1);
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
    // Half a step of 2 % of the ordinary values' noise (about 0.006), not of the range (1e9
    // over 65,534: 15,000).
    let block: [f64; BLOCK] = values.clone().try_into().expect("a block");
    assert!(worst <= 1e-4, "{worst}");
    assert!(worst <= NOISE_STEP / 2.0 * noise(&block) * 1.000_001);
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
    // A block's header: most have neither palette nor exceptions, which share one pointer.
    assert_eq!(std::mem::size_of::<Sealed>(), 32);
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
