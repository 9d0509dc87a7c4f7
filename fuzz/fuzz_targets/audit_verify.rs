//! `audit verify` on a corrupted log: a valid chain of signed records is damaged as the input
//! says (bytes of fields overwritten, records dropped, swapped or repeated), then verified.
//! Verification must not panic, and must report a problem whenever the damage changed a record.
#![no_main]

use foretell_core::audit::{verify, AuditKey, Chain, ChainStart, Entry, KeyRing, Record};
use libfuzzer_sys::fuzz_target;

const RECORDS: usize = 8;

fn chain(keys: &KeyRing) -> Vec<Record> {
    let mut chain = Chain::resume("log", 0, foretell_core::audit::GENESIS_MAC);
    (0..RECORDS)
        .map(|i| {
            let record = chain.next(
                keys,
                Entry {
                    timestamp_ms: 1_700_000_000_000 + i as i64,
                    kind: "alert.forwarded".into(),
                    actor: "foretell".into(),
                    subject: format!("fingerprint-{i}"),
                    outcome: "ok".into(),
                    details: format!("{{\"n\":{i}}}"),
                },
            );
            chain.commit(&record);
            record
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(key) = AuditKey::new("k1", vec![7u8; 32]) else {
        return;
    };
    let keys = KeyRing::single(key);
    let original = chain(&keys);
    let mut records = original.clone();
    for step in data.chunks(4) {
        let [op, a, b, c] = match *step {
            [op, a, b, c] => [op, a, b, c],
            _ => break,
        };
        let n = records.len().max(1);
        let i = a as usize % n;
        if records.is_empty() {
            break;
        }
        match op % 8 {
            0 => records[i].entry.subject.push(b as char),
            1 => records[i].mac[b as usize % 32] ^= c | 1,
            2 => records[i].prev_mac[b as usize % 32] ^= c | 1,
            3 => records[i].seq = records[i].seq.wrapping_add(u64::from(b) + 1),
            4 => {
                records.remove(i);
            }
            5 => records.swap(i, b as usize % n),
            6 => {
                let copy = records[i].clone();
                records.insert(b as usize % (n + 1), copy);
            }
            _ => records[i].entry.timestamp_ms ^= i64::from(c) + 1,
        }
    }
    let verification = verify("log", &records, &keys, ChainStart::GENESIS, None);
    if records != original && records.len() >= original.len() {
        assert!(
            verification.problem.is_some(),
            "a damaged log verified: {records:?}"
        );
    }
    if records == original {
        assert!(verification.problem.is_none(), "{verification:?}");
    }
});
