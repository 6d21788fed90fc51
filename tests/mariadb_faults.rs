//! Read-only failover under real faults, against two real MariaDB 10.11
//! servers replicating with GTIDs and the real binary running
//! config/example-mysql.yaml on test ports: an audit that cannot run,
//! privileges found missing before any failover, the controller killed
//! between read-only and DNS, the primary's `mariadbd` killed mid-write,
//! the whole primary gone silent under a query flood, and a database that
//! stops answering in the middle of a session.

mod common;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use common::{
    AppSwitch, Relay, WebhookSink,
    flood::{self, Flood},
    http,
    mariadb::{ADMIN_PASSWORD, Setup, Writer, assert_nothing_lost},
    wait_until,
};

const SECONDARY: &str = "198.51.100.10";
const PRIMARY: &str = "192.0.2.10";

/// The journal entries named `event`.
fn entries(setup: &Setup, event: &str) -> Vec<serde_json::Value> {
    setup
        .events()
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

#[test]
fn an_audit_that_cannot_run_is_a_warning_and_the_failover_goes_on() {
    let hook = WebhookSink::start();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| config + &hook.config(),
        |pair| {
            // SHOW GRANTS FOR another account needs SELECT on mysql.*.
            pair.primary
                .must("REVOKE SELECT ON mysql.* FROM 'geofailover'@'%'");
            pair.catch_up();
        },
    );
    setup.wait_healthy();
    // Known before the outage: ready, with the warning.
    assert!(wait_until(Duration::from_secs(10), || {
        setup.status()["failover_ready"].is_object()
    }));
    let ready = setup.status()["failover_ready"].clone();
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        ready.to_string().contains("lacks SELECT ON mysql.*"),
        "{ready}"
    );

    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    let audit = entries(&setup, "grant_audit");
    let outcome = audit[0]["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.starts_with("warning: the grant audit could not run")
            && outcome.contains("Access denied"),
        "{audit:?}"
    );
    let warnings = setup.status()["read_only_warnings"].clone();
    assert!(warnings.to_string().contains("could not run"), "{warnings}");
    assert!(hook.heard("read_only_warning"), "{:?}", hook.received());
    assert!(
        !hook.received().iter().any(|r| r.contains("action_failed")),
        "{:?}",
        hook.received()
    );
}

#[test]
fn readiness_names_a_missing_privilege_before_any_failover_and_check_live_fails_until_granted() {
    let hook = WebhookSink::start();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            config.replace(
                "  flag_clear_margin: 1s",
                "  flag_clear_margin: 1s\n  readiness_interval: 1s",
            ) + &hook.config()
        },
        |pair| {
            pair.primary
                .must("REVOKE READ_ONLY ADMIN ON *.* FROM 'geofailover'@'%'");
            pair.catch_up();
        },
    );
    setup.wait_healthy();
    assert!(
        wait_until(Duration::from_secs(10), || setup.status()["failover_ready"]
            ["ready"]
            == false),
        "{}",
        setup.status()["failover_ready"]
    );
    let ready = setup.status()["failover_ready"].to_string();
    assert!(
        ready.contains("cannot set read_only: it lacks READ_ONLY ADMIN"),
        "{ready}"
    );
    let (_, metrics) = http("GET", setup.api(), "/metrics", None, "");
    assert!(
        metrics.contains("geofailover_failover_ready 0"),
        "{metrics}"
    );
    assert!(hook.heard("failover_not_ready"), "{:?}", hook.received());

    let live = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_geofailover"))
            .args(["check", "--live", "--config"])
            .arg(setup.config())
            .env("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("run check --live")
    };
    let out = live();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED database read_only:") && stdout.contains("READ_ONLY ADMIN"),
        "{stdout}"
    );
    assert!(stderr.contains("failover ready: no, because"), "{stderr}");

    setup
        .pair
        .primary
        .must("GRANT READ_ONLY ADMIN ON *.* TO 'geofailover'@'%'");
    assert!(
        wait_until(Duration::from_secs(15), || setup.status()["failover_ready"]
            ["ready"]
            == true),
        "{}",
        setup.status()["failover_ready"]
    );
    assert_eq!(entries(&setup, "failover_ready").len(), 1);
    let out = live();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_controller_killed_between_read_only_and_dns_resumes_the_failover_without_redoing_finished_steps()
 {
    let switch = AppSwitch::start();
    let mut setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            let anchor = "        content: \"read-only\\n\"\n";
            assert!(config.contains(anchor), "no flag_file in the example");
            config.replacen(anchor, &format!("{anchor}{}", switch.config()), 1)
        },
        |_| {},
    );
    setup.wait_healthy();
    // The application hangs when asked to go read-only: the failover is
    // held between the database (done) and DNS.
    switch.hanging.store(true, Ordering::Relaxed);
    setup.primary_web.set_healthy(false);
    let held = wait_until(Duration::from_secs(20), || {
        setup.stored()["read_only"]["started"]
            .as_array()
            .is_some_and(|s| s.iter().any(|step| step == "flag_http"))
    });
    assert!(held, "{}\n{}", setup.stored(), setup.server.log());
    let stored = setup.stored();
    assert_eq!(stored["engine"]["active"], "primary", "{stored}");
    assert_eq!(stored["engine"]["pending"]["epoch"], 1, "{stored}");
    assert_eq!(
        stored["read_only"]["done"],
        serde_json::json!(["database", "flag_file"]),
        "{stored}"
    );
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");

    setup.kill_and_restart(|| switch.hanging.store(false, Ordering::Relaxed));
    setup.wait_for_answer(SECONDARY);

    assert_eq!(
        entries(&setup, "failover_resumed").len(),
        1,
        "{:?}",
        setup.events()
    );
    // The finished steps were read back after the restart, not run again.
    for step in ["database_read_only", "flag_file"] {
        let runs = entries(&setup, step);
        assert_eq!(runs.len(), 2, "{step}: {runs:?}");
        let second = runs[1]["summary"].as_str().unwrap_or_default();
        assert!(
            second.starts_with("verified, set earlier"),
            "{step}: {second}"
        );
    }
    assert_eq!(
        entries(&setup, "grant_audit").len(),
        1,
        "the audit ran again"
    );
    // The unfinished one ran.
    let http_runs = entries(&setup, "flag_http_call");
    assert_eq!(http_runs.len(), 1, "{http_runs:?}");
    assert_eq!(http_runs[0]["outcome"], "ok");
    let failed_over = entries(&setup, "failed_over");
    assert_eq!(failed_over.len(), 1);
    assert_eq!(failed_over[0]["epoch"], 1);
    assert_eq!(setup.status()["epoch"], 1);
    assert_eq!(setup.stored()["engine"]["pending"], serde_json::Value::Null);
    assert_eq!(setup.stored()["read_only"], serde_json::Value::Null);
}

#[test]
fn the_primary_database_killed_mid_write_fails_over_and_every_acknowledged_row_is_at_both_after_failback()
 {
    let mut setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    assert!(wait_until(
        Duration::from_secs(15),
        || setup.status()["replication"]["sql_running"] == true
    ));

    let writer = Writer::start(setup.pair.primary.port, 30);

    // A crash in the middle of the writes.
    setup.pair.primary.crash();
    setup.wait_for_answer(SECONDARY);
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    let acked = writer.stop();

    // The primary comes back on its data; replication resumes; fail-back.
    setup.pair.primary.restart();
    assert!(
        wait_until(
            Duration::from_secs(40),
            || setup.status()["ready_for_failback"] == true
        ),
        "{}",
        setup.status()
    );
    setup.fail_back();
    setup.wait_for_answer(PRIMARY);

    assert_nothing_lost(&setup.pair, &acked);
    eprintln!(
        "{} acknowledged writes before the crash, all at both databases",
        acked.len()
    );
}

#[test]
fn a_database_that_stops_answering_mid_session_costs_the_watcher_its_timeout_not_forever() {
    let relay = std::cell::OnceCell::new();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            // The secondary's database section (not its check) goes through
            // a relay that stalls at the first binlog-state query.
            let relay: &Relay = relay.get().expect("relay");
            let section = "    database:\n      address: 127.0.0.1:";
            let at = config.rfind(section).expect("the secondary's database") + section.len();
            let end = at + config[at..].find('\n').expect("line end");
            format!("{}{}{}", &config[..at], relay.port, &config[end..])
        },
        |pair| {
            let target = ([127, 0, 0, 1], pair.secondary.port).into();
            let _ = relay.set(Relay::stall_on(target, b"gtid_binlog_state"));
        },
    );
    setup.wait_healthy();
    let error = |st: &serde_json::Value| {
        st["replication"]["secondary_error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        wait_until(Duration::from_secs(20), || error(&setup.status())
            .contains("no answer within")),
        "{}",
        setup.status()["replication"]
    );
    // The watcher keeps looking: a later round is observed too.
    let first = setup.status()["replication"]["observed"].clone();
    assert!(
        wait_until(
            Duration::from_secs(20),
            || setup.status()["replication"]["observed"] != first
        ),
        "the watcher stopped at {first}"
    );
    assert!(
        error(&setup.status()).contains("gtid_binlog_state"),
        "{}",
        setup.status()["replication"]
    );
}

#[test]
fn a_silent_primary_under_a_query_flood_fails_over_within_the_bound_and_loses_no_acknowledged_row()
{
    let relay: std::cell::OnceCell<(Relay, u16)> = std::cell::OnceCell::new();
    let setup = Setup::start_with(
        ADMIN_PASSWORD,
        |config| {
            // The controller reaches the primary's database (its check and
            // its replication watch) through a relay that can go silent.
            let (relay, port) = relay.get().expect("relay");
            config.replace(
                &format!("address: 127.0.0.1:{port}\n"),
                &format!("address: 127.0.0.1:{}\n", relay.port),
            )
        },
        |pair| {
            let target = ([127, 0, 0, 1], pair.primary.port).into();
            let _ = relay.set((Relay::start(target), pair.primary.port));
        },
        true,
    );
    setup.wait_healthy();
    let (relay, _) = relay.get().expect("relay");

    let writer = Writer::start(setup.pair.primary.port, 20);
    let flood = Flood::start(setup.server.addr, 2, 2);

    // The whole primary goes quiet for the controller: its web site and
    // its database accept connections and never answer.
    setup.primary_web.set_silent(true);
    relay.set_silent(true);
    let silent = Instant::now();
    setup.wait_for_answer(SECONDARY);
    let took = silent.elapsed();
    let (udp, tcp) = flood.stop();
    // interval 1 s x fall 3 + timeout 1 s + 1 s.
    eprintln!(
        "a silent primary was failed over from in {took:?} under {} UDP and {} TCP queries",
        udp.answers, tcp.answers
    );
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    flood::assert_all_answered(&udp, &tcp);
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    let acked = writer.stop();

    // The primary answers again; fail-back; every acknowledged row at both.
    setup.primary_web.set_silent(false);
    relay.set_silent(false);
    assert!(
        wait_until(
            Duration::from_secs(40),
            || setup.status()["ready_for_failback"] == true
        ),
        "{}",
        setup.status()
    );
    setup.fail_back();
    setup.wait_for_answer(PRIMARY);
    assert_nothing_lost(&setup.pair, &acked);
}
