//! Splitting the series of every query among replicas: each series belongs to exactly one of
//! `count` shards, by a stable hash of its full label set, so N replicas configured `0/N` to
//! `N-1/N` together track every series once, and a replica's restart moves none of the others'.
//!
//! The hash is FNV-1a (64 bit) over the label pairs in name order, each name and value followed
//! by a 0xff byte (a byte that never occurs in UTF-8 text): fixed, documented and the same on
//! every platform and version, so a series stays on its shard across upgrades.

use crate::labels::Labels;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

/// This replica's share: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    /// One replica owning everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Shard `index` of `count`; `count` at least 1 and `index` below it.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "index {index} is not below count {count} (shards are numbered 0 to count - 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Reads `INDEX/COUNT`, as the `--shard` flag takes it.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not INDEX/COUNT, e.g. 0/3"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{part}` is not a whole number ({what} of INDEX/COUNT)"))
        };
        Shard::new(number(index, "INDEX")?, number(count, "COUNT")?)
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the series with `labels` belongs to this shard.
    pub fn owns(self, labels: &Labels) -> bool {
        self.count == 1 || label_hash(labels) % u64::from(self.count) == u64::from(self.index)
    }
}

/// The stable hash shards are assigned by (see the module documentation).
pub fn label_hash(labels: &Labels) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain(std::iter::once(&SEPARATOR)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    for (name, value) in labels.iter() {
        feed(name.as_bytes());
        feed(value.as_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(i: usize) -> Labels {
        Labels::from_pairs([
            ("__name__", "node_load1".to_owned()),
            ("instance", format!("host-{i}:9100")),
            ("job", "node".to_owned()),
        ])
    }

    #[test]
    fn every_series_has_exactly_one_shard_and_shares_are_even() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).expect("valid")).collect();
        let mut per_shard = [0usize; 3];
        for i in 0..30_000 {
            let labels = series(i);
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&labels))
                .map(|s| s.index())
                .collect();
            assert_eq!(owners.len(), 1, "{labels}");
            per_shard[owners[0] as usize] += 1;
        }
        for count in per_shard {
            assert!((9_500..=10_500).contains(&count), "{per_shard:?}");
        }
        assert!(Shard::default().owns(&series(1)));
    }

    #[test]
    fn the_hash_is_fixed_so_series_keep_their_shard_across_versions() {
        // FNV-1a 64 of "a" 0xff "b" 0xff, computed independently (Python:
        // h=0xcbf29ce484222325; for c in b"a\xffb\xff": h=((h^c)*0x100000001b3)%2**64).
        assert_eq!(
            label_hash(&Labels::from_pairs([("a", "b")])),
            0xd2b3_7181_9297_f98a
        );
        // Order of construction does not matter: labels are sorted by name.
        assert_eq!(
            label_hash(&Labels::from_pairs([("job", "x"), ("instance", "y")])),
            label_hash(&Labels::from_pairs([("instance", "y"), ("job", "x")]))
        );
        // The separator keeps {a="bc"} and {ab="c"} apart.
        assert_ne!(
            label_hash(&Labels::from_pairs([("a", "bc")])),
            label_hash(&Labels::from_pairs([("ab", "c")]))
        );
    }

    #[test]
    fn shards_are_checked_and_parsed() {
        assert_eq!(Shard::parse("1/3"), Shard::new(1, 3));
        assert!(Shard::parse("3/3")
            .expect_err("too big")
            .contains("not below count 3"));
        assert!(Shard::parse("0/0")
            .expect_err("zero")
            .contains("at least 1"));
        assert!(Shard::parse("one/3").expect_err("word").contains("INDEX"));
        assert!(Shard::parse("2")
            .expect_err("no slash")
            .contains("INDEX/COUNT"));
    }
}
