//! The DNS side: a hickory-server request handler over the answer table
//! (`handler`) and the sockets it serves on (`server`).

mod counters;
mod handler;
mod server;

pub use counters::ResponseCounters;
pub use handler::{Handler, SharedTable};
pub use server::{DnsServer, bind};
