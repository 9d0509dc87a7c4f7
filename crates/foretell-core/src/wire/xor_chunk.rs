//! Decoder of Prometheus' XOR chunks (`tsdb/chunkenc/xor.go`, after Facebook's Gorilla paper),
//! the form in which remote read streams stored float samples.
//!
//! A chunk is a big-endian `u16` sample count and then a bit stream:
//!
//! ```text
//! sample 0   timestamp as a signed (zigzag) varint, value as its 64 bits
//! sample 1   timestamp delta as an unsigned varint, value XOR-encoded
//! sample n   delta of the timestamp delta:  0 → `0`; within 14 bits → `10` + 14 bits;
//!            17 bits → `110` + 17; 20 bits → `1110` + 20; else `1111` + 64 bits,
//!            value XOR-encoded
//! value      XOR with the previous value: 0 → `0`; else `1`, then `0` and the meaningful
//!            bits in the previous leading/trailing-zero window, or `1`, 5 bits of leading
//!            zeros, 6 bits of meaningful bits (0 meaning 64) and those bits
//! ```
//!
//! Every read is bounds-checked: a truncated or corrupt chunk is an error, never a panic or
//! a sample made up from bits past the end.

/// Why a chunk could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("the XOR chunk is truncated or corrupt after {decoded} of its {count} samples")]
    Truncated { decoded: usize, count: usize },
    #[error("the XOR chunk is shorter than its 2-byte header")]
    NoHeader,
    #[error("the XOR chunk's timestamps overflow (a corrupt chunk)")]
    Overflow,
}

/// Big-endian bit reader over a byte slice.
struct Bits<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.at / 8)?;
        let bit = byte >> (7 - self.at % 8) & 1;
        self.at += 1;
        Some(bit == 1)
    }

    /// The next `count` (at most 64) bits as the low bits of a `u64`: the 16 bytes from the
    /// current one, shifted into place (a few instructions instead of a loop per byte).
    fn bits(&mut self, count: u32) -> Option<u64> {
        debug_assert!(count <= 64);
        if count == 0 {
            return Some(0);
        }
        let end = self.at + count as usize;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let first = self.at / 8;
        let mut window = [0u8; 16];
        let available = (self.bytes.len() - first).min(16);
        window[..available].copy_from_slice(&self.bytes[first..first + available]);
        let offset = (self.at % 8) as u32;
        // At most 7 + 64 bits are wanted, within the 128 of the window.
        let value = (u128::from_be_bytes(window) << offset) >> (128 - count);
        self.at = end;
        Some(value as u64)
    }

    /// An unsigned LEB128 varint. The writer puts both of a chunk's varints (the first
    /// timestamp and the first delta) on byte boundaries: after the header, and after the
    /// first value's 64 bits; anywhere else the chunk is corrupt.
    fn uvarint(&mut self) -> Option<u64> {
        if !self.at.is_multiple_of(8) {
            return None;
        }
        let mut byte = self.at / 8;
        let value = crate::protobuf::read_varint(self.bytes, &mut byte)?;
        self.at = byte * 8;
        Some(value)
    }

    fn varint(&mut self) -> Option<i64> {
        let zigzag = self.uvarint()?;
        Some((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
    }
}

/// Appends the samples of one XOR chunk to `out` as `(timestamp_ms, value)`, in the chunk's
/// order.
pub fn decode(chunk: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
    let [high, low, ..] = *chunk else {
        return Err(ChunkError::NoHeader);
    };
    let count = usize::from(u16::from_be_bytes([high, low]));
    let mut bits = Bits {
        bytes: &chunk[2..],
        at: 0,
    };
    out.reserve(count);
    let truncated = |decoded: usize| ChunkError::Truncated { decoded, count };
    let (mut timestamp, mut delta, mut value_bits) = (0i64, 0i64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for index in 0..count {
        match index {
            0 => {
                timestamp = bits.varint().ok_or_else(|| truncated(index))?;
                value_bits = bits.bits(64).ok_or_else(|| truncated(index))?;
            }
            _ => {
                if index == 1 {
                    delta = bits.uvarint().ok_or_else(|| truncated(index))? as i64;
                } else {
                    let delta_of_delta =
                        read_delta_of_delta(&mut bits).ok_or_else(|| truncated(index))?;
                    delta = delta
                        .checked_add(delta_of_delta)
                        .ok_or(ChunkError::Overflow)?;
                }
                timestamp = timestamp.checked_add(delta).ok_or(ChunkError::Overflow)?;
                value_bits = read_value(&mut bits, value_bits, &mut leading, &mut trailing)
                    .ok_or_else(|| truncated(index))?;
            }
        }
        out.push((timestamp, f64::from_bits(value_bits)));
    }
    Ok(())
}

fn read_delta_of_delta(bits: &mut Bits) -> Option<i64> {
    // The prefix is up to four 1-bits ended by a 0; four 1-bits mean a full 64-bit value.
    let mut ones = 0;
    while ones < 4 && bits.bit()? {
        ones += 1;
    }
    let width = match ones {
        0 => return Some(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => return bits.bits(64).map(|b| b as i64),
    };
    let raw = bits.bits(width)? as i64;
    // Two's complement in `width` bits, as the writer's range test leaves it.
    Some(if raw > 1 << (width - 1) {
        raw - (1 << width)
    } else {
        raw
    })
}

fn read_value(
    bits: &mut Bits,
    previous: u64,
    leading: &mut u32,
    trailing: &mut u32,
) -> Option<u64> {
    if !bits.bit()? {
        return Some(previous);
    }
    if bits.bit()? {
        *leading = bits.bits(5)? as u32;
        let meaningful = match bits.bits(6)? as u32 {
            0 => 64,
            n => n,
        };
        *trailing = 64u32.checked_sub(*leading + meaningful)?;
    }
    let meaningful = 64 - *leading - *trailing;
    let xor = bits.bits(meaningful)?;
    Some(previous ^ xor.checked_shl(*trailing).unwrap_or(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer of the same format, for tests (Prometheus writes the real ones; the remote
    /// read test against a real Prometheus checks the decoder on those).
    #[derive(Default)]
    pub(crate) struct Writer {
        bytes: Vec<u8>,
        bit_len: usize,
        count: u16,
        timestamp: i64,
        delta: i64,
        value: u64,
        leading: Option<(u32, u32)>,
    }

    impl Writer {
        fn push_bits(&mut self, value: u64, count: u32) {
            for i in (0..count).rev() {
                if self.bit_len.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                if value >> i & 1 == 1 {
                    let last = self.bytes.len() - 1;
                    self.bytes[last] |= 1 << (7 - self.bit_len % 8);
                }
                self.bit_len += 1;
            }
        }

        fn push_uvarint(&mut self, mut value: u64) {
            loop {
                let byte = (value & 0x7f) as u8;
                value >>= 7;
                if value == 0 {
                    self.push_bits(u64::from(byte), 8);
                    return;
                }
                self.push_bits(u64::from(byte | 0x80), 8);
            }
        }

        pub(crate) fn append(&mut self, timestamp: i64, value: f64) {
            let bits = value.to_bits();
            match self.count {
                0 => {
                    self.push_uvarint(((timestamp << 1) ^ (timestamp >> 63)) as u64);
                    self.push_bits(bits, 64);
                }
                _ => {
                    let delta = timestamp - self.timestamp;
                    if self.count == 1 {
                        self.push_uvarint(delta as u64);
                    } else {
                        let dod = delta - self.delta;
                        let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1 << (n - 1);
                        if dod == 0 {
                            self.push_bits(0, 1);
                        } else if fits(14) {
                            self.push_bits(0b10, 2);
                            self.push_bits(dod as u64 & ((1 << 14) - 1), 14);
                        } else if fits(17) {
                            self.push_bits(0b110, 3);
                            self.push_bits(dod as u64 & ((1 << 17) - 1), 17);
                        } else if fits(20) {
                            self.push_bits(0b1110, 4);
                            self.push_bits(dod as u64 & ((1 << 20) - 1), 20);
                        } else {
                            self.push_bits(0b1111, 4);
                            self.push_bits(dod as u64, 64);
                        }
                    }
                    self.delta = delta;
                    self.push_value(bits);
                }
            }
            self.timestamp = timestamp;
            self.value = bits;
            self.count += 1;
        }

        fn push_value(&mut self, bits: u64) {
            let xor = bits ^ self.value;
            if xor == 0 {
                self.push_bits(0, 1);
                return;
            }
            self.push_bits(1, 1);
            let leading = xor.leading_zeros().min(31);
            let trailing = xor.trailing_zeros();
            match self.leading {
                Some((l, t)) if leading >= l && trailing >= t => {
                    self.push_bits(0, 1);
                    self.push_bits(xor >> t, 64 - l - t);
                }
                _ => {
                    self.push_bits(1, 1);
                    self.push_bits(u64::from(leading), 5);
                    let meaningful = 64 - leading - trailing;
                    self.push_bits(u64::from(meaningful % 64), 6);
                    self.push_bits(xor >> trailing, meaningful);
                    self.leading = Some((leading, trailing));
                }
            }
        }

        pub(crate) fn finish(self) -> Vec<u8> {
            let mut chunk = self.count.to_be_bytes().to_vec();
            chunk.extend(self.bytes);
            chunk
        }
    }

    pub(crate) fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut writer = Writer::default();
        for &(t, v) in samples {
            writer.append(t, v);
        }
        writer.finish()
    }

    fn roundtrip(samples: &[(i64, f64)]) {
        let mut decoded = Vec::new();
        decode(&encode(samples), &mut decoded).expect("decodes");
        assert_eq!(decoded.len(), samples.len());
        for (got, want) in decoded.iter().zip(samples) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1.to_bits(), want.1.to_bits(), "{got:?} {want:?}");
        }
    }

    #[test]
    fn every_timestamp_and_value_encoding_reads_back() {
        // Regular scrapes, jitter within each of the delta-of-delta widths, a jump needing
        // 64 bits, negative and huge timestamps, repeated values, NaN, infinities and the
        // staleness marker, values whose XOR fits the previous window and values that do not.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut samples = vec![(-5_000, 1.0), (10_000, 1.0), (25_000, 1.5)];
        let mut t = 25_000;
        for (i, step) in [
            15_000,
            15_001,
            14_990,
            23_000,
            80_000,
            600_000,
            9_000_000_000,
        ]
        .iter()
        .enumerate()
        {
            t += step;
            samples.push((t, 1.5 + i as f64 * 0.25));
        }
        for v in [
            stale,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1e300,
            3.0,
        ] {
            t += 15_000;
            samples.push((t, v));
        }
        roundtrip(&samples);
        roundtrip(&[(1_700_000_000_000, 42.0)]);
        roundtrip(&[]);
        let long: Vec<(i64, f64)> = (0..2000)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 60_000 + (i % 7) * 3,
                    (i as f64 * 0.37).sin(),
                )
            })
            .collect();
        roundtrip(&long);
    }

    #[test]
    fn a_truncated_or_headerless_chunk_is_an_error_not_a_panic() {
        let chunk = encode(&[(1000, 1.0), (2000, 2.0), (3000, 2.5), (4100, -7.0)]);
        for cut in 0..chunk.len() {
            let mut out = Vec::new();
            let result = decode(&chunk[..cut], &mut out);
            assert!(result.is_err(), "cut at {cut} decoded {out:?}");
        }
        assert_eq!(decode(&[0], &mut Vec::new()), Err(ChunkError::NoHeader));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left(i as u32 * 5) & 0xff) as u8)
                .collect();
            let _ = decode(&bytes, &mut Vec::new());
        }
    }
}
