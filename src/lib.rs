//! geofailover: an authoritative DNS server and failover controller for a
//! service with a primary site and an offsite secondary.

pub mod cli;
pub mod config;
pub mod control;
pub mod db;
pub mod dns;
pub mod dnssec;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod probe;
pub mod store;
pub mod web;
pub mod zone;
