//! Response rate limiting for UDP, as BIND, NSD and Knot do it: responses
//! are counted per source prefix (IPv4 /24, IPv6 /56 by default), per
//! response class (positive, NXDOMAIN, NODATA, referral, error) and, for
//! positive and NODATA answers, per name. Each such key may have `rate`
//! responses a second; past it, every `slip`-th response is sent empty
//! with TC set (a real client retries over TCP, which cannot be spoofed)
//! and the others are dropped, until the key's average over `window`
//! seconds is back under the rate. TCP is not limited. Each UDP loop keeps
//! its own table: no lock on the query path.
//!
//! Wildcard answers are not told apart from positive ones (the response
//! does not say); they are keyed by the name asked, so a flood of random
//! names under a wildcard is limited per name, not per wildcard.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use tracing::warn;

use crate::config::Prefix;

/// Keys kept before stale ones are dropped.
const TABLE_MAX: usize = 100_000;

/// How responses are limited; `rate` 0 limits nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrlConfig {
    pub rate: u32,
    pub slip: u32,
    pub window: Duration,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub exempt: Vec<Prefix>,
    /// Count what would be limited, limit nothing.
    pub dry_run: bool,
}

/// What was limited, for `/metrics`.
#[derive(Debug, Default)]
pub struct RrlCounters {
    /// Responses over the rate (in a dry run, those that would have been).
    pub limited: AtomicU64,
    pub dropped: AtomicU64,
    pub slipped: AtomicU64,
}

/// What becomes of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Sent empty with TC set.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Positive,
    NxDomain,
    NoData,
    Referral,
    Error,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::NxDomain => "NXDOMAIN",
            Self::NoData => "NODATA",
            Self::Referral => "referral",
            Self::Error => "error",
        }
    }

    /// The class of a response, from its header.
    fn of(response: &[u8]) -> Self {
        let rcode = response[3] & 0x0F;
        let answers = u16::from_be_bytes([response[6], response[7]]);
        let authority = u16::from_be_bytes([response[8], response[9]]);
        let aa = response[2] & 0x04 != 0;
        match rcode {
            0 if answers > 0 => Self::Positive,
            0 if aa => Self::NoData,
            0 if authority > 0 => Self::Referral,
            3 => Self::NxDomain,
            _ => Self::Error,
        }
    }
}

struct Bucket {
    /// Responses still allowed; below zero once over the rate.
    balance: f64,
    last: Instant,
}

/// One UDP loop's limiter.
pub struct Limiter {
    config: RrlConfig,
    table: HashMap<(u128, Class, u64), Bucket>,
    hasher: RandomState,
    limited: u64,
    /// When each limited prefix was last told, so it is told once a window.
    told: HashMap<u128, Instant>,
}

impl Limiter {
    pub fn new(config: RrlConfig) -> Self {
        Self {
            config,
            table: HashMap::new(),
            hasher: RandomState::new(),
            limited: 0,
            told: HashMap::new(),
        }
    }

    fn prefix(&self, ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.config.ipv4_prefix))
                    .unwrap_or(0);
                u128::from(bits & mask)
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.config.ipv6_prefix))
                    .unwrap_or(0);
                // Tagged apart from IPv4's small numbers.
                (u128::from(v6) & mask) | 1
            }
        }
    }

    /// The verdict on `response` (a whole DNS message) to `source`.
    pub fn check(
        &mut self,
        source: IpAddr,
        response: &[u8],
        now: Instant,
        counters: &RrlCounters,
    ) -> Verdict {
        if self.config.rate == 0 || response.len() < 12 {
            return Verdict::Send;
        }
        if self.config.exempt.iter().any(|p| p.contains(source)) {
            return Verdict::Send;
        }
        let class = Class::of(response);
        let name = match class {
            Class::Positive | Class::NoData => {
                let end = question_end(response).unwrap_or(12);
                self.hasher.hash_one(response[12..end].to_ascii_lowercase())
            }
            _ => 0,
        };
        let prefix = self.prefix(source);
        if self.table.len() >= TABLE_MAX {
            let window = self.config.window;
            self.table
                .retain(|_, b| now.duration_since(b.last) < window);
            if self.table.len() >= TABLE_MAX {
                self.table.clear();
            }
        }
        let rate = f64::from(self.config.rate);
        let floor = -rate * self.config.window.as_secs_f64();
        let bucket = self.table.entry((prefix, class, name)).or_insert(Bucket {
            balance: rate,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.last = now;
        bucket.balance = (bucket.balance + elapsed * rate).min(rate) - 1.0;
        if bucket.balance >= 0.0 {
            return Verdict::Send;
        }
        bucket.balance = bucket.balance.max(floor);
        counters.limited.fetch_add(1, Ordering::Relaxed);
        self.tell(prefix, source, class, now);
        if self.config.dry_run {
            return Verdict::Send;
        }
        self.limited += 1;
        if self.config.slip > 0 && self.limited.is_multiple_of(u64::from(self.config.slip)) {
            counters.slipped.fetch_add(1, Ordering::Relaxed);
            Verdict::Slip
        } else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
    }

    fn tell(&mut self, prefix: u128, source: IpAddr, class: Class, now: Instant) {
        let window = self.config.window;
        if self.told.len() > 10_000 {
            self.told.retain(|_, at| now.duration_since(*at) < window);
        }
        match self.told.get(&prefix) {
            Some(at) if now.duration_since(*at) < window => {}
            _ => {
                self.told.insert(prefix, now);
                let len = if source.is_ipv4() {
                    self.config.ipv4_prefix
                } else {
                    self.config.ipv6_prefix
                };
                warn!(
                    "response rate limiting: the prefix of {source}/{len} is over {} {} responses a second{} (told once every {} s)",
                    self.config.rate,
                    class.name(),
                    if self.config.dry_run {
                        " (dry run: nothing limited)"
                    } else {
                        ""
                    },
                    window.as_secs()
                );
            }
        }
    }
}

/// Where a message's question ends (after its name, type and class).
fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            return Some(at + 1 + 4).filter(|end| *end <= message.len());
        }
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len;
    }
}

/// `response` cut to its header and question, with TC set: what a
/// slipped response is.
pub fn truncate(response: &mut Vec<u8>) {
    let asked = response.len() >= 12 && response[4..6] != [0, 0];
    let end = if asked {
        question_end(response).unwrap_or(12)
    } else {
        12
    };
    response.truncate(end.min(response.len()));
    if response.len() >= 12 {
        response[2] |= 0x02;
        // The first question, when there was one; no answer, authority
        // or additional.
        let questions = u16::from(response.len() > 12);
        response[4..6].copy_from_slice(&questions.to_be_bytes());
        response[6..12].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::{
        op::{Message, MessageType, OpCode, Query},
        rr::{Name, RData, Record, RecordType, rdata::A},
    };

    fn config(rate: u32, slip: u32) -> RrlConfig {
        RrlConfig {
            rate,
            slip,
            window: Duration::from_secs(15),
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            dry_run: false,
        }
    }

    fn answer(name: &str) -> Vec<u8> {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        let name = Name::from_ascii(name).unwrap();
        message.add_query(Query::query(name.clone(), RecordType::A));
        message.add_answer(Record::from_rdata(
            name,
            30,
            RData::A(A::new(192, 0, 2, 10)),
        ));
        message.to_vec().unwrap()
    }

    #[test]
    fn a_slipped_response_keeps_one_question_and_says_so() {
        let mut message = Message::new(9, MessageType::Response, OpCode::Query);
        for name in ["a.example.", "b.example."] {
            message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        }
        message.add_answer(Record::from_rdata(
            Name::from_ascii("a.example.").unwrap(),
            30,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        let mut bytes = message.to_vec().unwrap();
        truncate(&mut bytes);
        let slipped = Message::from_vec(&bytes).unwrap();
        assert!(slipped.metadata.truncation);
        assert_eq!(slipped.queries.len(), 1);
        assert!(slipped.answers.is_empty());
    }

    #[test]
    fn past_the_rate_every_slipth_response_slips_and_the_rest_drop() {
        let counters = RrlCounters::default();
        let mut limiter = Limiter::new(config(10, 2));
        let now = Instant::now();
        let flood: IpAddr = "192.0.2.7".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        let www = answer("www.example.com.");
        let verdicts: Vec<Verdict> = (0..110)
            .map(|_| limiter.check(flood, &www, now, &counters))
            .collect();
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        let slipped = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
        assert_eq!(sent, 10);
        assert_eq!(slipped, 50);
        // The same /24 shares the limit; another prefix has its own.
        assert_ne!(
            limiter.check(neighbour, &www, now, &counters),
            Verdict::Send
        );
        assert_eq!(limiter.check(other, &www, now, &counters), Verdict::Send);
        // Another name has its own budget.
        let mail = answer("mail.example.com.");
        assert_eq!(limiter.check(flood, &mail, now, &counters), Verdict::Send);
        // A flood stays limited for a while after it stops, then not.
        let later = now + Duration::from_secs(2);
        assert_ne!(limiter.check(flood, &www, later, &counters), Verdict::Send);
        let much_later = now + Duration::from_secs(20);
        assert_eq!(
            limiter.check(flood, &www, much_later, &counters),
            Verdict::Send
        );
        assert_eq!(counters.slipped.load(Ordering::Relaxed), 50 + 1);
    }

    #[test]
    fn exempt_sources_and_dry_runs_are_never_limited() {
        let counters = RrlCounters::default();
        let mut exempt = config(1, 2);
        exempt.exempt = vec![Prefix {
            addr: "127.0.0.0".parse().unwrap(),
            len: 8,
        }];
        let mut limiter = Limiter::new(exempt);
        let www = answer("www.example.com.");
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                limiter.check("127.0.0.2".parse().unwrap(), &www, now, &counters),
                Verdict::Send
            );
        }
        let mut dry = config(1, 2);
        dry.dry_run = true;
        let mut limiter = Limiter::new(dry);
        for _ in 0..100 {
            assert_eq!(
                limiter.check("192.0.2.1".parse().unwrap(), &www, now, &counters),
                Verdict::Send
            );
        }
        assert_eq!(counters.limited.load(Ordering::Relaxed), 99);
    }

    #[test]
    fn a_slipped_response_is_the_question_with_tc() {
        let mut www = answer("www.example.com.");
        truncate(&mut www);
        let message = Message::from_vec(&www).unwrap();
        assert!(message.metadata.truncation);
        assert!(message.answers.is_empty());
        assert_eq!(message.queries.len(), 1);
    }
}
