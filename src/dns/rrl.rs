//! Response rate limiting for UDP, as BIND, NSD and Knot do it: responses
//! are counted per source prefix (IPv4 /24, IPv6 /56 by default), per
//! response class and per name. Positive answers are keyed by their
//! question (name, type and class); NXDOMAIN and NODATA answers share one
//! class keyed by their zone (the owner of the SOA they carry), so a flood
//! of random names under one zone is one key, not a key per name;
//! referrals are keyed by the delegation (the owner of their NS records),
//! and errors by the zone when they carry its SOA, otherwise all errors to
//! one prefix share a key. Each key may have `rate` responses a second;
//! past it, every `slip`-th of that key's limited responses is sent empty
//! with TC set (a real client retries over TCP, which cannot be spoofed)
//! and the others are dropped, until the key's average over `window`
//! seconds is back under the rate. TCP is not limited. Each UDP loop
//! keeps its own table: no lock on the query path.
//!
//! The table holds at most `TABLE_MAX` keys. A new key past that evicts
//! one old key, found by a second-chance (CLOCK) sweep over the keys in
//! the order they came: a key used since the sweep last passed it is kept
//! and passed over, one not used is evicted; at most `EVICT_SCAN` keys are
//! looked at per new key. So a flood of names each asked once evicts its
//! own keys, not the buckets of sources being limited, and no insert
//! costs more than a few steps.
//!
//! Wildcard answers are not told apart from positive ones (the response
//! does not say); they are keyed by the name asked, so a flood of random
//! names under a wildcard is limited per name, not per wildcard.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use tracing::warn;

use crate::config::Prefix;

/// Keys kept at most; past it, old ones are evicted.
const TABLE_MAX: usize = 100_000;
/// Keys the eviction sweep looks at, at most, for one new key.
const EVICT_SCAN: usize = 8;
/// Record types read from a response's authority section.
const TYPE_NS: u16 = 2;
const TYPE_SOA: u16 = 6;

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
    /// NXDOMAIN and NODATA: both say "nothing here" of a zone.
    Negative,
    Referral,
    Error,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "NXDOMAIN/NODATA",
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
            0 if aa => Self::Negative,
            0 if authority > 0 => Self::Referral,
            3 => Self::Negative,
            _ => Self::Error,
        }
    }
}

/// A table key: source prefix, class, and the hash of the question
/// (positive) or of the zone or delegation (the others).
type Key = (u128, Class, u64);

struct Bucket {
    /// Responses still allowed; below zero once over the rate.
    balance: f64,
    last: Instant,
    /// Used since the eviction sweep last passed it.
    used: bool,
    /// This key's limited responses, for its every `slip`-th.
    limited: u64,
}

/// One UDP loop's limiter.
pub struct Limiter {
    config: RrlConfig,
    table: HashMap<Key, Bucket>,
    /// The table's keys, each once, in the order the sweep visits them.
    order: VecDeque<Key>,
    capacity: usize,
    hasher: RandomState,
    /// When each limited prefix was last told, so it is told once a window.
    told: HashMap<u128, Instant>,
}

impl Limiter {
    pub fn new(config: RrlConfig) -> Self {
        Self {
            config,
            table: HashMap::new(),
            order: VecDeque::new(),
            capacity: TABLE_MAX,
            hasher: RandomState::new(),
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

    /// The name a response is keyed by within its class, hashed: the
    /// question for a positive answer, the zone or delegation otherwise
    /// (the root when the response names none).
    fn name_of(&self, class: Class, response: &[u8]) -> u64 {
        let name = match class {
            Class::Positive => {
                let end = question_end(response).unwrap_or(12);
                return self.hasher.hash_one(response[12..end].to_ascii_lowercase());
            }
            Class::Negative | Class::Error => authority_owner(response, TYPE_SOA),
            Class::Referral => authority_owner(response, TYPE_NS),
        };
        self.hasher.hash_one(name.unwrap_or_else(|| vec![0]))
    }

    /// Makes room for one more key when the table is full: evicts the
    /// first key the sweep finds unused since it last passed, or, after
    /// `EVICT_SCAN` keys all used, the next one in line.
    fn make_room(&mut self, now: Instant) {
        while self.table.len() >= self.capacity {
            let mut evicted = false;
            for _ in 0..EVICT_SCAN {
                let Some(key) = self.order.pop_front() else {
                    break;
                };
                match self.table.get_mut(&key) {
                    Some(bucket)
                        if bucket.used && now.duration_since(bucket.last) < self.config.window =>
                    {
                        bucket.used = false;
                        self.order.push_back(key);
                    }
                    Some(_) => {
                        self.table.remove(&key);
                        evicted = true;
                        break;
                    }
                    // Not in the table: nothing to keep (cannot happen:
                    // keys enter and leave both together).
                    None => {}
                }
            }
            if !evicted {
                match self.order.pop_front() {
                    Some(key) => {
                        self.table.remove(&key);
                    }
                    None => {
                        // Both empty: the table was already empty.
                        self.table.clear();
                        return;
                    }
                }
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
        let key = (self.prefix(source), class, self.name_of(class, response));
        let rate = f64::from(self.config.rate);
        let floor = -rate * self.config.window.as_secs_f64();
        let fresh = !self.table.contains_key(&key);
        if fresh {
            self.make_room(now);
            self.order.push_back(key);
        }
        let bucket = self.table.entry(key).or_insert(Bucket {
            balance: rate,
            last: now,
            used: false,
            limited: 0,
        });
        // A key asked once is not "used": a flood of names each asked
        // once evicts its own keys first.
        bucket.used |= !fresh;
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.last = now;
        bucket.balance = (bucket.balance + elapsed * rate).min(rate) - 1.0;
        if bucket.balance >= 0.0 {
            return Verdict::Send;
        }
        bucket.balance = bucket.balance.max(floor);
        counters.limited.fetch_add(1, Ordering::Relaxed);
        if self.config.dry_run {
            self.tell(key.0, source, class, now);
            return Verdict::Send;
        }
        bucket.limited += 1;
        let slip =
            self.config.slip > 0 && bucket.limited.is_multiple_of(u64::from(self.config.slip));
        self.tell(key.0, source, class, now);
        if slip {
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

/// Where the name at `at` ends (a pointer ends it).
fn name_end(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*message.get(at)?);
        match len & 0xC0 {
            0 if len == 0 => return Some(at + 1),
            0 => at += 1 + len,
            0xC0 => return Some(at + 2).filter(|end| *end <= message.len()),
            _ => return None,
        }
    }
}

/// The name at `at`, pointers followed, in lower case and wire form.
fn read_name(message: &[u8], mut at: usize) -> Option<Vec<u8>> {
    let mut name = Vec::new();
    // Each pointer must go back, so there are no loops; a cap besides.
    let mut jumps = 0;
    loop {
        let len = usize::from(*message.get(at)?);
        match len & 0xC0 {
            0 if len == 0 => {
                name.push(0);
                return Some(name);
            }
            0 => {
                name.extend(message.get(at..at + 1 + len)?.to_ascii_lowercase());
                if name.len() > 255 {
                    return None;
                }
                at += 1 + len;
            }
            0xC0 => {
                let target = (len & 0x3F) << 8 | usize::from(*message.get(at + 1)?);
                jumps += 1;
                if target >= at || jumps > 127 {
                    return None;
                }
                at = target;
            }
            _ => return None,
        }
    }
}

/// The owner of the first record of type `rtype` in a response's
/// authority section: the zone of a negative answer (its SOA), the
/// delegation of a referral (its NS).
fn authority_owner(message: &[u8], rtype: u16) -> Option<Vec<u8>> {
    let count = |at: usize| u16::from_be_bytes([message[at], message[at + 1]]);
    let (questions, answers, authority) = (count(4), count(6), count(8));
    let mut at = 12;
    for _ in 0..questions {
        at = name_end(message, at)? + 4;
    }
    for i in 0..u32::from(answers) + u32::from(authority) {
        let owner = at;
        at = name_end(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let this_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if i >= u32::from(answers) && this_type == rtype {
            return read_name(message, owner);
        }
        at += 10 + rdlength;
    }
    None
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
        op::{Message, MessageType, OpCode, Query, ResponseCode},
        rr::{
            Name, RData, Record, RecordType,
            rdata::{A, NS, SOA},
        },
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

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// An NXDOMAIN (or NODATA) answer for `asked` from `zone`, with its SOA.
    fn negative(asked: &str, zone: &str, nxdomain: bool) -> Vec<u8> {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        if nxdomain {
            message.metadata.response_code = ResponseCode::NXDomain;
        }
        message.add_query(Query::query(name(asked), RecordType::A));
        message.add_authority(Record::from_rdata(
            name(zone),
            300,
            RData::SOA(SOA::new(
                name(&format!("ns1.{zone}")),
                name(&format!("hostmaster.{zone}")),
                1,
                3600,
                600,
                86400,
                300,
            )),
        ));
        message.to_vec().unwrap()
    }

    /// A referral for `asked` to the delegation `child`.
    fn referral(asked: &str, child: &str) -> Vec<u8> {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.add_query(Query::query(name(asked), RecordType::A));
        for ns in ["ns1", "ns2"] {
            message.add_authority(Record::from_rdata(
                name(child),
                300,
                RData::NS(NS(name(&format!("{ns}.{child}")))),
            ));
        }
        message.to_vec().unwrap()
    }

    fn refused(asked: &str) -> Vec<u8> {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.response_code = ResponseCode::Refused;
        message.add_query(Query::query(name(asked), RecordType::A));
        message.to_vec().unwrap()
    }

    /// How many of `responses` (each checked once, in turn) are sent.
    fn sent(limiter: &mut Limiter, source: &str, responses: &[Vec<u8>], now: Instant) -> usize {
        let counters = RrlCounters::default();
        responses
            .iter()
            .filter(|r| limiter.check(source.parse().unwrap(), r, now, &counters) == Verdict::Send)
            .count()
    }

    #[test]
    fn nxdomain_and_nodata_are_keyed_by_zone_and_prefix_not_by_prefix_alone() {
        let mut limiter = Limiter::new(config(10, 2));
        let now = Instant::now();
        // Random names under one zone, NXDOMAIN and NODATA alike: one key.
        let flood: Vec<Vec<u8>> = (0..30)
            .map(|i| negative(&format!("r{i}.Example.com."), "example.com.", i % 3 != 0))
            .collect();
        assert_eq!(sent(&mut limiter, "192.0.2.7", &flood, now), 10);
        // The zone's name in another letter case is the same zone.
        let upper = negative("x.EXAMPLE.COM.", "EXAMPLE.COM.", true);
        assert_eq!(sent(&mut limiter, "192.0.2.8", &[upper], now), 0);
        // Another zone, from the same prefix, has its own budget.
        let other: Vec<Vec<u8>> = (0..10)
            .map(|i| negative(&format!("r{i}.example.org."), "example.org.", true))
            .collect();
        assert_eq!(sent(&mut limiter, "192.0.2.7", &other, now), 10);
        // And the same zone from another prefix too.
        assert_eq!(sent(&mut limiter, "198.51.100.7", &flood[..10], now), 10);
    }

    #[test]
    fn referrals_are_keyed_by_delegation_and_errors_by_prefix() {
        let mut limiter = Limiter::new(config(5, 2));
        let now = Instant::now();
        let sub: Vec<Vec<u8>> = (0..10)
            .map(|i| referral(&format!("h{i}.sub.example.com."), "sub.example.com."))
            .collect();
        assert_eq!(sent(&mut limiter, "192.0.2.7", &sub, now), 5);
        let other: Vec<Vec<u8>> = (0..10)
            .map(|i| referral(&format!("h{i}.dept.example.com."), "dept.example.com."))
            .collect();
        assert_eq!(sent(&mut limiter, "192.0.2.7", &other, now), 5);
        // Errors name no zone: one key per prefix, whatever the name.
        let errors: Vec<Vec<u8>> = (0..10)
            .map(|i| refused(&format!("n{i}.example.net.")))
            .collect();
        assert_eq!(sent(&mut limiter, "192.0.2.7", &errors, now), 5);
        // None of these spent the positive answers' budget.
        assert_eq!(
            sent(
                &mut limiter,
                "192.0.2.7",
                &[answer("www.example.com.")],
                now
            ),
            1
        );
    }

    #[test]
    fn an_owner_name_is_read_through_compression_pointers_and_nothing_else() {
        let response = negative("a.b.example.com.", "example.com.", true);
        assert_eq!(
            authority_owner(&response, TYPE_SOA).unwrap(),
            b"\x07example\x03com\x00"
        );
        assert_eq!(authority_owner(&response, TYPE_NS), None);
        // A pointer to itself, or forward, is refused; a cut message too.
        let mut looped = response.clone();
        let at = question_end(&looped).unwrap();
        looped.truncate(at);
        looped[8..10].copy_from_slice(&1u16.to_be_bytes());
        looped.extend([0xC0, at as u8]);
        assert_eq!(authority_owner(&looped, TYPE_SOA), None);
        for cut in 12..response.len() {
            let _ = authority_owner(&response[..cut], TYPE_SOA);
        }
    }

    #[test]
    fn each_key_slips_its_own_every_slipth_limited_response() {
        let counters = RrlCounters::default();
        let mut limiter = Limiter::new(config(1, 2));
        let now = Instant::now();
        let source: IpAddr = "192.0.2.7".parse().unwrap();
        let www = answer("www.example.com.");
        let mail = answer("mail.example.com.");
        for r in [&www, &mail] {
            assert_eq!(limiter.check(source, r, now, &counters), Verdict::Send);
        }
        // Both over the rate, their responses interleaved: each key slips
        // every second one of its own.
        let mut slips = [0, 0];
        for _ in 0..20 {
            for (i, r) in [&www, &mail].into_iter().enumerate() {
                if limiter.check(source, r, now, &counters) == Verdict::Slip {
                    slips[i] += 1;
                }
            }
        }
        assert_eq!(slips, [10, 10]);
    }

    #[test]
    fn a_full_table_evicts_keys_asked_once_and_keeps_a_limited_flood_limited() {
        let counters = RrlCounters::default();
        let mut limiter = Limiter::new(config(10, 2));
        limiter.capacity = 1_000;
        let now = Instant::now();
        let flood: IpAddr = "192.0.2.7".parse().unwrap();
        let www = answer("www.example.com.");
        for _ in 0..20 {
            limiter.check(flood, &www, now, &counters);
        }
        assert_ne!(limiter.check(flood, &www, now, &counters), Verdict::Send);
        // Ten times as many names as the table holds, each asked once from
        // other prefixes, while the flood goes on.
        for i in 0..10_000u32 {
            let source = IpAddr::from([10, (i >> 8) as u8, i as u8, 1]);
            let once = answer(&format!("n{i}.example.com."));
            assert_eq!(limiter.check(source, &once, now, &counters), Verdict::Send);
            assert!(limiter.table.len() <= 1_000);
            assert_eq!(limiter.order.len(), limiter.table.len());
            if i % 100 == 0 {
                assert_ne!(
                    limiter.check(flood, &www, now, &counters),
                    Verdict::Send,
                    "the flood was let through after {i} other names"
                );
            }
        }
        // A limited key left alone is evicted in its turn, like any other.
        for i in 0..2_000u32 {
            let source = IpAddr::from([11, (i >> 8) as u8, i as u8, 1]);
            limiter.check(source, &answer("x.example.com."), now, &counters);
        }
        assert_eq!(limiter.check(flood, &www, now, &counters), Verdict::Send);
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
