//! Responses sent, counted by rcode without a lock: one relaxed atomic
//! increment per query.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use hickory_proto::op::ResponseCode;

/// rcodes above this share the last slot.
const SLOTS: usize = 24;

#[derive(Debug, Default)]
pub struct ResponseCounters {
    counts: [AtomicU64; SLOTS],
    /// What response rate limiting held back.
    pub rrl: super::rrl::RrlCounters,
}

impl ResponseCounters {
    pub fn count(&self, rcode: ResponseCode) {
        let slot = usize::from(u16::from(rcode)).min(SLOTS - 1);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Response rate limiting's counts: limited, dropped, slipped.
    pub fn rrl_snapshot(&self) -> BTreeMap<String, u64> {
        [
            ("limited", &self.rrl.limited),
            ("dropped", &self.rrl.dropped),
            ("slipped", &self.rrl.slipped),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n.load(Ordering::Relaxed)))
        .collect()
    }

    /// The counts so far, by rcode name, leaving out those never sent.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(code, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then(|| (name(code), n))
            })
            .collect()
    }
}

fn name(code: usize) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        n if n == SLOTS - 1 => format!("RCODE{n}+"),
        n => format!("RCODE{n}"),
    }
}
