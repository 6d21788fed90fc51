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
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

/// Logs a refusal (a transfer, a TSIG, a connection past a cap) once
/// per source address per minute, not per packet.
pub fn refused(src: IpAddr, why: &str) {
    static SEEN: OnceLock<Mutex<HashMap<IpAddr, Instant>>> = OnceLock::new();
    let Ok(mut seen) = SEEN.get_or_init(Mutex::default).lock() else {
        return;
    };
    let now = Instant::now();
    if seen.len() > 10_000 {
        seen.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
    }
    match seen.get(&src) {
        Some(at) if now.duration_since(*at) < Duration::from_secs(60) => {}
        _ => {
            seen.insert(src, now);
            tracing::warn!(%src, "refused: {why} (told once a minute per source)");
        }
    }
}
