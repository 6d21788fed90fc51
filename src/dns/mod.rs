//! The DNS side: a hickory-server request handler over the answer table
//! (`handler`) and the sockets it serves on (`server`).

mod counters;
pub(crate) mod fast;
pub(crate) mod handler;
pub mod notify;
pub mod rrl;
mod server;
pub(crate) mod tcp;
pub mod transfer;
pub mod tsig;
mod udp;

pub use counters::ResponseCounters;
pub use fast::{Base, FastAnswers, PRECOMPUTED_BUDGET, Served};
pub use handler::SharedTable;
pub use server::{DnsServer, bind};
pub use tcp::TcpLimits;

#[cfg(test)]
mod tests;

use std::{
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// Logs a refusal (a transfer, a TSIG, a connection past a cap) once
/// per source address (an IPv6 source per /64) per minute, not per packet.
pub fn refused(src: IpAddr, why: &str) {
    static TOLD: OnceLock<(Told, Instant)> = OnceLock::new();
    let (told, start) = TOLD.get_or_init(|| (Told::new(), Instant::now()));
    let now = u32::try_from(start.elapsed().as_secs()).unwrap_or(u32::MAX);
    if told.first_in_a_minute(src, now) {
        tracing::warn!(%src, "refused: {why} (told once a minute per source)");
    }
}

/// Slots of what `refused` remembers: a fixed table, so a flood of
/// distinct sources costs one slot looked at per call and no memory.
const TOLD_SLOTS: usize = 4096;
/// How long a source is not told again, seconds.
const TOLD_EVERY: u32 = 60;

/// When each source was last told, in a fixed table of atomic slots
/// keyed by a hash of the source's prefix (no lock). A slot holds the
/// high half of the hash as a tag and the time told plus one (0 is an
/// empty slot). A source whose slot another took since may be told
/// again within the minute: at most once per call, as without the table.
struct Told {
    slots: Box<[AtomicU64]>,
    /// Keyed, so a sender cannot choose sources that share a slot.
    hasher: RandomState,
    /// Slots looked at, for the tests.
    #[cfg(test)]
    looked: AtomicU64,
}

impl Told {
    fn new() -> Self {
        Self {
            slots: (0..TOLD_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            #[cfg(test)]
            looked: AtomicU64::new(0),
        }
    }

    /// Whether `src` is to be told at `now` (seconds, from any start):
    /// not when its prefix was told less than a minute before.
    fn first_in_a_minute(&self, src: IpAddr, now: u32) -> bool {
        let prefix = match src {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // The /64, tagged apart from IPv4's small numbers.
            IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
        };
        let hash = self.hasher.hash_one(prefix);
        let slot = &self.slots[(hash as usize) % TOLD_SLOTS];
        #[cfg(test)]
        self.looked.fetch_add(1, Ordering::Relaxed);
        let tag = hash >> 32 << 32;
        let held = slot.load(Ordering::Relaxed);
        let at = held as u32;
        if held >> 32 << 32 == tag && at != 0 && now.saturating_sub(at - 1) < TOLD_EVERY {
            return false;
        }
        slot.store(tag | u64::from(now.saturating_add(1)), Ordering::Relaxed);
        true
    }
}
