//! Codes of one fixed width (1 to 16 bits) packed into 64-bit words, least significant bits
//! first: what the packed windows and the seasonal profiles keep their codes in.

/// Appends `codes` (each below `2^width`), `width` bits each; the last word is padded with
/// zeros. 64 codes fill exactly `width` words.
pub fn pack(codes: impl IntoIterator<Item = u64>, width: u32, out: &mut impl Extend<u64>) {
    debug_assert!((1..=16).contains(&width));
    let mut word = 0u64;
    let mut filled = 0u32;
    for code in codes {
        debug_assert!(code < 1 << width);
        word |= code << filled;
        filled += width;
        if filled >= 64 {
            out.extend([word]);
            filled -= 64;
            // The bits of `code` that did not fit.
            word = if filled > 0 {
                code >> (width - filled)
            } else {
                0
            };
        }
    }
    if filled > 0 {
        out.extend([word]);
    }
}

/// Words `count` codes of `width` bits take.
pub fn words_for(count: usize, width: u32) -> usize {
    (count * width as usize).div_ceil(64)
}

/// The code at `index` of codes packed by [`pack`].
pub fn read(words: &[u64], width: u32, index: usize) -> u64 {
    let position = index * width as usize;
    let (word, shift) = (position / 64, (position % 64) as u32);
    let mut code = words[word] >> shift;
    if shift + width > 64 {
        code |= words[word + 1] << (64 - shift);
    }
    code & ((1 << width) - 1)
}

/// Every code of `count` packed by [`pack`], in order, from words read one after the other.
pub fn unpack<'a, W: Iterator<Item = &'a u64>>(
    mut words: W,
    width: u32,
    count: usize,
) -> impl Iterator<Item = u64> + use<'a, W> {
    let mask = (1u64 << width) - 1;
    let mut word = words.next().copied().unwrap_or(0);
    let mut used = 0u32;
    (0..count).map(move |_| {
        let mut code = word >> used;
        used += width;
        if used >= 64 {
            used -= 64;
            word = words.next().copied().unwrap_or(0);
            if used > 0 {
                code |= word << (width - used);
            }
        }
        code & mask
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_every_width_come_back_in_order_and_one_by_one() {
        for width in 1..=16u32 {
            let top = (1u64 << width) - 1;
            for count in [1usize, 63, 64, 65, 1440] {
                let codes: Vec<u64> = (0..count as u64)
                    .map(|i| match i % 4 {
                        0 => top,
                        1 => 0,
                        _ => (i * 7919) % (top + 1),
                    })
                    .collect();
                let mut words = Vec::new();
                pack(codes.iter().copied(), width, &mut words);
                assert_eq!(
                    words.len(),
                    words_for(count, width),
                    "{width} bits, {count}"
                );
                let back: Vec<u64> = unpack(words.iter(), width, count).collect();
                assert_eq!(back, codes, "{width} bits, {count}");
                for (i, code) in codes.iter().enumerate() {
                    assert_eq!(read(&words, width, i), *code, "{width} bits, code {i}");
                }
            }
        }
    }
}
