//! geofailover: an authoritative DNS server and failover controller for a
//! service with a primary site and an offsite secondary.

pub mod cli;
pub mod config;
pub mod dns;
pub mod engine;
pub mod zone;
