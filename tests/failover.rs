//! End to end: the real binary with the shipped example config, two
//! stand-in sites on 127.0.0.1:18081 and :18082, real DNS queries. The
//! primary fails, www.example.com moves to the secondary in time; the
//! primary recovers, answers stay; a restart keeps them there.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{Geofailover, StandIn, a_records, soa_serial, wait_until};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

#[test]
fn primary_failure_moves_www_to_the_secondary_in_time_and_it_stays_after_recovery_and_restart() {
    let primary = StandIn::start(18081);
    let secondary = StandIn::start(18082);
    let dir = tempfile::tempdir().expect("tempdir");
    let _memory = common::state_in_memory(dir.path());
    let config = Geofailover::example_config(dir.path(), primary.port, secondary.port);
    let mut server = Geofailover::start(&config);

    assert_eq!(a_records(server.addr, "www.example.com."), [PRIMARY]);
    assert!(
        server.wait_for_log("site primary is now healthy", 1)
            && server.wait_for_log("site secondary is now healthy", 1),
        "{}",
        server.log()
    );
    let serial_before = soa_serial(server.addr, "example.com.");

    // interval 1 s x fall 3, plus 1 s.
    let bound = Duration::from_secs(4);
    primary.set_healthy(false);
    let failing = Instant::now();
    let moved = wait_until(Duration::from_secs(15), || {
        a_records(server.addr, "www.example.com.") == [SECONDARY]
    });
    let took = failing.elapsed();
    eprintln!("failover answered {took:?} after the primary began failing (bound {bound:?})");
    assert!(moved, "no failover:\n{}", server.log());
    assert!(
        took <= bound,
        "failover took {took:?}, above {bound:?}:\n{}",
        server.log()
    );
    let serial_after = soa_serial(server.addr, "example.com.");
    assert!(
        serial_after > serial_before,
        "serial {serial_before} -> {serial_after}"
    );
    let log = server.log();
    assert!(log.contains("failover: primary down"), "{log}");
    assert!(log.contains("HTTP 503"), "the decision says why: {log}");

    // The primary recovers: ready for fail-back, answers stay.
    primary.set_healthy(true);
    assert!(
        server.wait_for_log("ready for fail-back", 1),
        "{}",
        server.log()
    );
    assert_eq!(a_records(server.addr, "www.example.com."), [SECONDARY]);

    // A restart keeps the secondary, from the first answer on.
    server.process.signal("TERM");
    let status = server.process.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let server = Geofailover::start(&config);
    assert_eq!(a_records(server.addr, "www.example.com."), [SECONDARY]);
    let serial_restarted = soa_serial(server.addr, "example.com.");
    assert!(
        serial_restarted >= serial_after,
        "serial {serial_after} -> {serial_restarted}"
    );
    assert!(server.log().contains("state restored"), "{}", server.log());
}

#[test]
fn corrupt_state_file_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Geofailover::example_config(dir.path(), common::free_port(), common::free_port());
    std::fs::create_dir_all(dir.path().join("state")).expect("mkdir");
    let state = dir.path().join("state/state.json");
    std::fs::write(&state, "{\"engine\": {\"active\": \"seco").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("state.json is corrupt"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    // Not reset: the file is as it was.
    assert_eq!(
        std::fs::read_to_string(&state).expect("read"),
        "{\"engine\": {\"active\": \"seco"
    );
}
