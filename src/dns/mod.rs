//! The DNS side: a hickory-server request handler over the answer table
//! (`handler`) and the sockets it serves on (`server`).

mod counters;
mod fast;
mod handler;
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
