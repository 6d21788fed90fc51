//! The DNS side: a hickory-server request handler over the answer table
//! (`handler`) and the sockets it serves on (`server`).

mod counters;
mod fast;
mod handler;
mod server;
mod udp;

pub use counters::ResponseCounters;
pub use fast::{FastAnswers, Served};
pub use handler::{Handler, SharedTable};
pub use server::{DnsServer, bind};
