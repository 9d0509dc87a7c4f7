//! A window of values in a fraction of the memory of `f64`s: blocks of 64 values, each value
//! a code of as few bits as its block needs.
//!
//! A series' window (two days at one minute: 2,881 values) was 23 KB of `f64`, over half of
//! what a tracked series weighed. Prometheus' own XOR encoding would not shrink it: what
//! foretell keeps are query results, mostly `rate()`s, whose values use every bit of the
//! mantissa, and an XOR of two such doubles keeps most of its 52 bits. So each completed block
//! of [`BLOCK`] values is quantised:
//!
//! - **Exact where it can be.** A block of whole numbers spanning at most 65,534 (counts, bytes
//!   of a small range, states) is kept exactly (a step of 1); a block of at most 16 distinct
//!   values (a flat line, a step function, a noiseless synthetic shape) too, its codes then
//!   indexing a palette of those values. A model sees exactly the repeats such series are made
//!   of: a rounded copy would turn a perfectly regular series into one with noise of its own.
//! - **Otherwise within half a step**, the step being the block's range over 65,534 or, when a
//!   few values lie far outside the rest (a spike), the interquartile range over 4,096, with
//!   those values kept exactly beside the codes — or, when coarser, 2 % of the block's own
//!   noise (its robust standard deviation, from the median of its absolute second
//!   differences), so no value moves by more than 1 % of the noise already in it: a model
//!   sees its error variance grow by a thirty-thousandth. A block without noise (a ramp,
//!   whose second differences are rounding errors) keeps the finer step.
//! - Gaps (NaN) have a code of their own; infinities are kept exactly.
//!
//! A block's codes take the fewest bits that hold its largest code and the gap's (a palette
//! of 6 values: 3 bits; whole numbers spanning 1,000: 10 bits; 7 on average over NAB's files,
//! about 8 on `foretell bench scale`'s series), stored one block after the other in one ring of 64-bit words (a block of `b`-bit
//! codes is exactly `b` words). The newest values, until they fill a block, are kept as they
//! are. Each update is O(1); overwriting a value in a completed block (a late sample)
//! re-encodes that block.

use std::collections::VecDeque;

use crate::bitpack;

/// Values per block.
pub const BLOCK: usize = 64;
/// The code of a gap (NaN).
const GAP: u16 = u16::MAX;
/// The largest code of a value.
const TOP: u16 = u16::MAX - 1;
/// Resolution of the robust step: the interquartile range over this many steps.
const ROBUST_STEPS: f64 = 4_096.0;
/// A block with more values outside the robust range than this is coded by its whole range.
const MAX_EXCEPTIONS: usize = BLOCK / 8;
/// A block with at most this many distinct values keeps them in a palette.
const PALETTE: usize = 16;
/// The coarsest step, as a share of a block's noise: values move by at most half of it.
const NOISE_STEP: f64 = 0.02;

/// How a block's codes become values.
#[derive(Clone, Debug, PartialEq)]
enum Coding {
    /// `base + code × step`.
    Linear { base: f64, step: f64 },
    /// `palette[code]`.
    Palette(Box<[f64]>),
}

/// One block as encoded: value `i` comes from `codes[i]` (see [`Coding`]), unless an exception
/// holds it. A window keeps it as a [`Sealed`] block and its codes packed.
#[derive(Clone, Debug, PartialEq)]
struct Block {
    coding: Coding,
    codes: [u16; BLOCK],
    /// Values kept exactly, by slot: infinities, and values far outside the block's usual range.
    exceptions: Box<[(u8, f64)]>,
}

impl Block {
    /// Runs for every 64 values a window takes in (a cold start encodes whole histories), so
    /// it allocates nothing beyond a palette or exceptions and sorts only when it must.
    fn encode(values: &[f64; BLOCK]) -> Block {
        let mut block = Block {
            coding: Coding::Linear {
                base: 0.0,
                step: 0.0,
            },
            codes: [GAP; BLOCK],
            exceptions: Box::new([]),
        };
        // One pass: the finite values, their extremes, whether all are whole, and up to one
        // more distinct value than a palette holds.
        let mut finite = [0.0; BLOCK];
        let mut count = 0;
        let (mut lowest, mut highest) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut whole = true;
        let mut distinct = [0.0; PALETTE + 1];
        let mut distinct_count = 0;
        for &value in values.iter().filter(|v| v.is_finite()) {
            finite[count] = value;
            count += 1;
            lowest = lowest.min(value);
            highest = highest.max(value);
            whole &= value.fract() == 0.0;
            if distinct_count <= PALETTE
                && !distinct[..distinct_count]
                    .iter()
                    .any(|d: &f64| d.to_bits() == value.to_bits())
            {
                distinct[distinct_count] = value;
                distinct_count += 1;
            }
        }
        if count == 0 {
            block.exceptions = exceptions(values, |_| true);
            return block;
        }
        let finite = &mut finite[..count];
        let range = highest - lowest;
        let exact_whole = whole && range <= f64::from(TOP);
        if distinct_count <= PALETTE && !exact_whole {
            let palette = &mut distinct[..distinct_count];
            palette.sort_unstable_by(f64::total_cmp);
            for (code, &value) in block.codes.iter_mut().zip(values) {
                if value.is_finite() {
                    let index = palette.partition_point(|v| v.total_cmp(&value).is_lt());
                    *code = index as u16;
                }
            }
            block.coding = Coding::Palette(palette.to_vec().into_boxed_slice());
            block.exceptions = exceptions(values, f64::is_infinite);
            return block;
        }
        let (base, step, kept_exactly) = if range == 0.0 {
            (lowest, 0.0, None)
        } else if exact_whole {
            (lowest, 1.0, None)
        } else {
            let last = count - 1;
            let mut quantile = |q: f64| {
                let rank = (last as f64 * q).round() as usize;
                *finite.select_nth_unstable_by(rank, f64::total_cmp).1
            };
            let spread = quantile(0.75) - quantile(0.25);
            let robust = spread / ROBUST_STEPS;
            let by_range = range / f64::from(TOP);
            let (low, high, step, kept_exactly) = if robust > 0.0 && robust < by_range {
                // Centred on the median: ±32,767 steps, ±8 interquartile ranges.
                let low = quantile(0.5) - f64::from(TOP / 2) * robust;
                let high = low + f64::from(TOP) * robust;
                let outside = |v: &&f64| **v < low || **v > high;
                if finite.iter().filter(outside).count() <= MAX_EXCEPTIONS {
                    (low, high, robust, Some((low, high)))
                } else {
                    (lowest, highest, by_range, None)
                }
            } else {
                (lowest, highest, by_range, None)
            };
            // The codes start at the lowest value coded, so they need no more bits than the
            // values' own spread; the step is never finer than the noise needs.
            let base = finite
                .iter()
                .copied()
                .filter(|v| (low..=high).contains(v))
                .fold(f64::INFINITY, f64::min);
            let step = step.max(NOISE_STEP * noise(values));
            (base, step, kept_exactly)
        };
        block.coding = Coding::Linear { base, step };
        for (code, &value) in block.codes.iter_mut().zip(values) {
            if value.is_finite() {
                *code = if step == 0.0 {
                    0
                } else {
                    ((value - base) / step).round().clamp(0.0, f64::from(TOP)) as u16
                };
            }
        }
        if kept_exactly.is_some() || values.iter().any(|v| v.is_infinite()) {
            block.exceptions = exceptions(values, |v| match kept_exactly {
                _ if v.is_infinite() => true,
                Some((low, high)) => v < low || v > high,
                None => false,
            });
        }
        block
    }

    /// The block as a window keeps it: its codes appended to `words`.
    fn seal(self, words: &mut VecDeque<u64>) -> Sealed {
        let largest = self
            .codes
            .iter()
            .filter(|&&c| c != GAP)
            .max()
            .copied()
            .unwrap_or(0);
        // The gap's code is the all-ones code of the width, above every value's.
        let bits = (u32::BITS - (u32::from(largest) + 1).leading_zeros()) as u8;
        pack(&self.codes, bits, words);
        let (base, step, palette) = match self.coding {
            Coding::Linear { base, step } => (base, step, None),
            Coding::Palette(palette) => (0.0, 0.0, Some(palette)),
        };
        let extra = (palette.is_some() || !self.exceptions.is_empty()).then(|| {
            Box::new(Extra {
                palette,
                exceptions: self.exceptions,
            })
        });
        Sealed {
            base,
            step,
            bits,
            extra,
        }
    }
}

/// A completed block in a window: how its codes become values, and their width; the codes lie
/// in the window's word ring (`bits` words from the block's offset). 32 bytes: most blocks
/// have neither a palette nor exceptions, so those two live behind one pointer.
#[derive(Clone, Debug, PartialEq)]
struct Sealed {
    /// `base + code × step`, unless the block has a palette.
    base: f64,
    step: f64,
    bits: u8,
    extra: Option<Box<Extra>>,
}

/// What few blocks have.
#[derive(Clone, Debug, PartialEq)]
struct Extra {
    /// `palette[code]` instead of `base + code × step`.
    palette: Option<Box<[f64]>>,
    /// Values kept exactly, by slot: infinities, and values far outside the block's usual range.
    exceptions: Box<[(u8, f64)]>,
}

impl Sealed {
    fn words(&self) -> usize {
        usize::from(self.bits)
    }

    fn codes(&self, words: &VecDeque<u64>, offset: usize) -> [u16; BLOCK] {
        unpack(words.range(offset..offset + self.words()), self.bits)
    }

    fn coding(&self) -> Coding {
        match self.extra.as_ref().and_then(|extra| extra.palette.as_ref()) {
            Some(palette) => Coding::Palette(palette.clone()),
            None => Coding::Linear {
                base: self.base,
                step: self.step,
            },
        }
    }

    fn exceptions(&self) -> &[(u8, f64)] {
        self.extra.as_ref().map_or(&[], |extra| &extra.exceptions)
    }

    fn value_of(&self, code: u16) -> f64 {
        match self.extra.as_ref().and_then(|extra| extra.palette.as_ref()) {
            Some(palette) => palette.get(usize::from(code)).copied().unwrap_or(f64::NAN),
            None => self.base + f64::from(code) * self.step,
        }
    }

    /// Back to the block it was, to change a value or to save it.
    fn open(&self, words: &VecDeque<u64>, offset: usize) -> Block {
        Block {
            coding: self.coding(),
            codes: self.codes(words, offset),
            exceptions: self.exceptions().into(),
        }
    }

    fn get(&self, words: &VecDeque<u64>, offset: usize, slot: usize) -> f64 {
        if let Some(&(_, value)) = self
            .exceptions()
            .iter()
            .find(|(s, _)| usize::from(*s) == slot)
        {
            return value;
        }
        match self.codes(words, offset)[slot] {
            GAP => f64::NAN,
            code => self.value_of(code),
        }
    }

    fn decode(&self, words: &VecDeque<u64>, offset: usize) -> [f64; BLOCK] {
        let mut values = [f64::NAN; BLOCK];
        for (value, code) in values.iter_mut().zip(self.codes(words, offset)) {
            if code != GAP {
                *value = self.value_of(code);
            }
        }
        for &(slot, value) in self.exceptions() {
            values[usize::from(slot)] = value;
        }
        values
    }

    fn heap_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |extra| {
            std::mem::size_of::<Extra>()
                + extra
                    .palette
                    .as_ref()
                    .map_or(0, |p| std::mem::size_of_val(&**p))
                + std::mem::size_of_val(&*extra.exceptions)
        })
    }
}

/// Appends the 64 codes in `bits` bits each (`bits` words; [`GAP`] as the all-ones code).
fn pack(codes: &[u16; BLOCK], bits: u8, words: &mut VecDeque<u64>) {
    let width = u32::from(bits);
    let ones = (1u64 << width) - 1;
    let codes = codes
        .iter()
        .map(|&code| if code == GAP { ones } else { u64::from(code) });
    bitpack::pack(codes, width, words);
}

/// The 64 codes of a block packed by [`pack`].
fn unpack<'a>(words: impl Iterator<Item = &'a u64>, bits: u8) -> [u16; BLOCK] {
    let width = u32::from(bits);
    let ones = (1u64 << width) - 1;
    let mut codes = [GAP; BLOCK];
    for (code, value) in codes.iter_mut().zip(bitpack::unpack(words, width, BLOCK)) {
        *code = if value == ones { GAP } else { value as u16 };
    }
    codes
}

/// The slots of `values` for which `keep` holds, with their values (NaN is never kept: it has
/// its code).
fn exceptions(values: &[f64; BLOCK], keep: impl Fn(f64) -> bool) -> Box<[(u8, f64)]> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan() && keep(**v))
        .map(|(slot, v)| (slot as u8, *v))
        .collect()
}

/// A block's noise: the robust standard deviation of white noise that would give its second
/// differences (`|d|` has a median of `0.6745 × √6 σ` for normal noise), over the runs of
/// three consecutive finite values; 0 when there are too few. Second differences cancel a
/// block's level and slope, so their median is taken around 0 (one selection, run for every
/// block a cold start encodes). In a smooth series without noise what remains is its
/// curvature, which is also about the error of any one-step forecast of it, so 1 % of it is
/// still far below what a model can see.
fn noise(values: &[f64; BLOCK]) -> f64 {
    let mut second = [0.0; BLOCK];
    let mut count = 0;
    for triple in values.windows(3) {
        let d = (triple[2] - 2.0 * triple[1] + triple[0]).abs();
        if d.is_finite() {
            second[count] = d;
            count += 1;
        }
    }
    if count < 8 {
        return 0.0;
    }
    let median = *second[..count]
        .select_nth_unstable_by(count / 2, f64::total_cmp)
        .1;
    median / (0.6745 * 6f64.sqrt())
}

/// A double-ended queue of `f64` with the front dropped one value at a time and the back
/// pushed, completed blocks quantised (see the module's documentation).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "PackedRepr", try_from = "PackedRepr")]
pub struct PackedValues {
    blocks: VecDeque<Sealed>,
    /// The blocks' codes, one block after the other.
    words: VecDeque<u64>,
    /// Values of the first block already dropped from the front.
    skipped: usize,
    /// The newest values, fewer than a block.
    open: Vec<f64>,
}

impl PackedValues {
    pub fn len(&self) -> usize {
        self.blocks.len() * BLOCK - self.skipped + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.blocks.clear();
        self.words.clear();
        self.skipped = 0;
        self.open.clear();
    }

    pub fn push_back(&mut self, value: f64) {
        self.open.push(value);
        if self.open.len() == BLOCK {
            let mut values = [0.0; BLOCK];
            values.copy_from_slice(&self.open);
            let sealed = Block::encode(&values).seal(&mut self.words);
            self.blocks.push_back(sealed);
            self.open.clear();
        }
    }

    pub fn pop_front(&mut self) {
        if self.blocks.is_empty() {
            if !self.open.is_empty() {
                self.open.remove(0);
            }
            return;
        }
        self.skipped += 1;
        if self.skipped == BLOCK {
            if let Some(first) = self.blocks.pop_front() {
                self.words.drain(..first.words());
            }
            self.skipped = 0;
        }
    }

    /// Where block `index`'s codes start in `words`, counted from whichever end is nearer.
    fn offset(&self, index: usize) -> usize {
        if index <= self.blocks.len() / 2 {
            self.blocks.range(..index).map(Sealed::words).sum()
        } else {
            self.words.len() - self.blocks.range(index..).map(Sealed::words).sum::<usize>()
        }
    }

    /// The value at `index` (0 is the oldest), as decoded.
    pub fn get(&self, index: usize) -> Option<f64> {
        let position = index + self.skipped;
        let sealed = self.blocks.len() * BLOCK;
        if position < sealed {
            let block = position / BLOCK;
            Some(self.blocks[block].get(&self.words, self.offset(block), position % BLOCK))
        } else {
            self.open.get(position - sealed).copied()
        }
    }

    /// Replaces the value at `index` (a late sample); a completed block is re-encoded, and
    /// the blocks after it move when its codes change width.
    pub fn set(&mut self, index: usize, value: f64) {
        let position = index + self.skipped;
        let sealed = self.blocks.len() * BLOCK;
        if position < sealed {
            let block = position / BLOCK;
            let offset = self.offset(block);
            let old = &self.blocks[block];
            let mut values = old.decode(&self.words, offset);
            values[position % BLOCK] = value;
            let mut codes = VecDeque::with_capacity(BLOCK / 4);
            let new = Block::encode(&values).seal(&mut codes);
            let old_words = old.words();
            if new.words() == old_words {
                for (slot, word) in self.words.range_mut(offset..offset + old_words).zip(codes) {
                    *slot = word;
                }
            } else {
                let after = self.words.split_off(offset + old_words);
                self.words.truncate(offset);
                self.words.extend(codes);
                self.words.extend(after);
            }
            self.blocks[block] = new;
        } else if let Some(slot) = self.open.get_mut(position - sealed) {
            *slot = value;
        }
    }

    pub fn back(&self) -> Option<f64> {
        self.len().checked_sub(1).and_then(|last| self.get(last))
    }

    /// Every value, oldest first, decoded.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.blocks
            .iter()
            .scan(0, |offset, block| {
                let values = block.decode(&self.words, *offset);
                *offset += block.words();
                Some(values)
            })
            .flatten()
            .skip(self.skipped)
            .chain(self.open.iter().copied())
    }

    /// Gives back allocation beyond what `capacity` values need.
    pub fn shrink_to(&mut self, capacity: usize) {
        self.blocks.shrink_to(capacity.div_ceil(BLOCK) + 1);
        self.words.shrink_to(self.words.len());
        self.open.shrink_to(BLOCK);
    }

    /// Bytes held on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Sealed>()
            + self.blocks.iter().map(Sealed::heap_bytes).sum::<usize>()
            + self.words.capacity() * std::mem::size_of::<u64>()
            + self.open.capacity() * std::mem::size_of::<f64>()
    }
}

impl FromIterator<f64> for PackedValues {
    fn from_iter<I: IntoIterator<Item = f64>>(values: I) -> Self {
        let mut packed = PackedValues::default();
        for value in values {
            packed.push_back(value);
        }
        packed
    }
}

/// The serialised form (the state file): blocks as they are, so a restart restores exactly
/// the values it saved.
#[derive(serde::Serialize, serde::Deserialize)]
struct PackedRepr {
    blocks: Vec<BlockRepr>,
    skipped: usize,
    open: Vec<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BlockRepr {
    /// `(base, step)`, or empty for a palette block.
    linear: Option<(f64, f64)>,
    palette: Vec<f64>,
    codes: Vec<u16>,
    exceptions: Vec<(u8, f64)>,
}

impl From<PackedValues> for PackedRepr {
    fn from(packed: PackedValues) -> Self {
        PackedRepr {
            blocks: packed
                .blocks
                .iter()
                .scan(0, |offset, sealed| {
                    let block = sealed.open(&packed.words, *offset);
                    *offset += sealed.words();
                    Some(block)
                })
                .map(|block| {
                    let (linear, palette) = match block.coding {
                        Coding::Linear { base, step } => (Some((base, step)), Vec::new()),
                        Coding::Palette(palette) => (None, palette.into_vec()),
                    };
                    BlockRepr {
                        linear,
                        palette,
                        codes: block.codes.to_vec(),
                        exceptions: block.exceptions.into_vec(),
                    }
                })
                .collect(),
            skipped: packed.skipped,
            open: packed.open,
        }
    }
}

impl TryFrom<PackedRepr> for PackedValues {
    type Error = String;

    fn try_from(repr: PackedRepr) -> Result<Self, String> {
        if repr.open.len() >= BLOCK || repr.skipped >= BLOCK {
            return Err(format!(
                "a packed window holds {} open values and skips {} (each at most {})",
                repr.open.len(),
                repr.skipped,
                BLOCK - 1
            ));
        }
        if repr.blocks.is_empty() && repr.skipped > 0 {
            return Err("a packed window skips values of no block".to_owned());
        }
        let blocks = repr
            .blocks
            .into_iter()
            .map(|block| {
                let codes: [u16; BLOCK] = block.codes.try_into().map_err(|codes: Vec<u16>| {
                    format!("a packed block holds {} codes, not {BLOCK}", codes.len())
                })?;
                if let Some((slot, _)) = block
                    .exceptions
                    .iter()
                    .find(|(s, _)| usize::from(*s) >= BLOCK)
                {
                    return Err(format!("a packed block has an exception at slot {slot}"));
                }
                let coding = match block.linear {
                    Some((base, step)) => Coding::Linear { base, step },
                    None => {
                        if let Some(code) = codes
                            .iter()
                            .find(|&&c| c != GAP && usize::from(c) >= block.palette.len())
                        {
                            return Err(format!(
                                "a packed block's code {code} is beyond its palette of {}",
                                block.palette.len()
                            ));
                        }
                        Coding::Palette(block.palette.into_boxed_slice())
                    }
                };
                Ok(Block {
                    coding,
                    codes,
                    exceptions: block.exceptions.into_boxed_slice(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut words = VecDeque::new();
        let blocks = blocks.into_iter().map(|b| b.seal(&mut words)).collect();
        Ok(PackedValues {
            blocks,
            words,
            skipped: repr.skipped,
            open: repr.open,
        })
    }
}

#[cfg(test)]
mod tests;
