//! Faults a failover controller meets for real, against the real binary
//! on the shipped example config (www.example.com A and AAAA between two
//! stand-in sites): a primary that goes silent instead of refusing, a
//! query flood during the switch, a second outage after an operator's
//! fail-back, a failover that cannot start, and reloads that must apply
//! the zones and the failover section together or not at all.

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use common::{
    Geofailover, StandIn, WebhookSink, a_records,
    flood::{self, Flood},
    http, query_message, repo_zones, soa_serial, status_json, wait_until,
};
use hickory_proto::rr::{Name, RData, RecordType};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

/// The example config in `dir` (zones copied beside it, so a test can edit
/// them), with stand-in sites and an optional webhook; waits until both
/// sites are healthy.
struct Example {
    /// The state folder's memory, for the tests with a time bound.
    _memory: Option<tempfile::TempDir>,
    server: Geofailover,
    primary: StandIn,
    _secondary: StandIn,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Example {
    fn start(webhook: Option<&WebhookSink>) -> Self {
        Self::start_edited(webhook, |config| config)
    }

    /// The example with its state in memory (see `state_in_memory`), for
    /// a test that holds the failover to a time bound.
    fn start_timed() -> Self {
        Self::start_with(None, |config| config, true)
    }

    fn start_edited(webhook: Option<&WebhookSink>, edit: impl FnOnce(String) -> String) -> Self {
        Self::start_with(webhook, edit, false)
    }

    fn start_with(
        webhook: Option<&WebhookSink>,
        edit: impl FnOnce(String) -> String,
        in_memory: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = in_memory
            .then(|| common::state_in_memory(dir.path()))
            .flatten();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).expect("mkdir");
        for (_, file) in common::EXAMPLE_ZONES {
            std::fs::copy(repo_zones().join(file), zones.join(file)).expect("copy zone");
        }
        let (server, primary, secondary, config) =
            common::start_example(dir.path(), webhook, |text| {
                edit(text.replace(
                    &format!("{}/", repo_zones().display()),
                    &format!("{}/", zones.display()),
                ))
            });
        Self {
            _memory: memory,
            server,
            primary,
            _secondary: secondary,
            config,
            dir,
        }
    }

    fn api(&self) -> SocketAddr {
        self.server.http.expect("http")
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let token = Geofailover::token(self.dir.path());
        http("POST", self.api(), path, Some(&token), body)
    }

    fn status(&self) -> serde_json::Value {
        status_json(self.api())
    }

    fn events(&self) -> Vec<serde_json::Value> {
        common::journal(self.api())
    }

    fn www(&self) -> Vec<String> {
        a_records(self.server.addr, "www.example.com.")
    }

    fn aaaa(&self) -> Vec<String> {
        let query = query_message(
            &Name::from_ascii("www.example.com.").expect("name"),
            RecordType::AAAA,
            false,
        );
        common::udp(self.server.addr, &query)
            .map(|reply| {
                reply
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::AAAA(a) => Some(a.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until www.example.com A answers `address`; how long it took.
    fn wait_for(&self, address: &str, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        wait_until(within, || self.www() == [address]).then(|| start.elapsed())
    }

    /// Rewrites the config with `edit` and sends SIGHUP; waits for the
    /// reload's outcome line and returns it.
    fn reload(&self, edit: impl FnOnce(String) -> String) -> String {
        let text = std::fs::read_to_string(&self.config).expect("read");
        std::fs::write(&self.config, edit(text)).expect("write");
        let before = self.reload_lines().len();
        self.server.process.signal("HUP");
        assert!(
            wait_until(Duration::from_secs(10), || self.reload_lines().len()
                > before),
            "no reload outcome:\n{}",
            self.server.log()
        );
        self.reload_lines()[before].clone()
    }

    fn reload_lines(&self) -> Vec<String> {
        self.server
            .log()
            .lines()
            .filter(|l| {
                l.contains("reload succeeded")
                    || l.contains("reload refused")
                    || l.contains("reload failed")
            })
            .map(str::to_string)
            .collect()
    }

    fn zone_file(&self) -> PathBuf {
        self.dir.path().join("zones/example.com.zone")
    }

    /// The stored state, as JSON.
    fn stored(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("state/state.json"))
            .expect("read the state file");
        serde_json::from_str(&text).expect("state JSON")
    }

    /// The secondary's flag file (`READONLY` beside the config).
    fn flag_file(&self) -> PathBuf {
        self.dir.path().join("READONLY")
    }
}

#[test]
fn a_silent_primary_fails_over_within_interval_times_fall_plus_timeout_plus_a_second() {
    let example = Example::start_timed();
    assert_eq!(example.www(), [PRIMARY]);
    // It accepts connections and never answers: every check times out.
    example.primary.set_silent(true);
    // interval 1 s x fall 3 + timeout 1 s + 1 s.
    let bound = Duration::from_secs(5);
    let took = example
        .wait_for(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no failover:\n{}", example.server.log()));
    eprintln!("a silent primary was failed over from in {took:?} (bound {bound:?})");
    assert!(took <= bound, "took {took:?}:\n{}", example.server.log());
    let detail = example.status()["sites"][0]["checks"][0]["last_detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("timed out"), "{detail}");
}

#[test]
fn a_query_flood_during_a_failover_gets_only_well_formed_answers_and_the_switch_keeps_its_bound() {
    let example = Example::start_timed();
    let flood = Flood::start(example.server.addr, 3, 2);
    example.primary.set_healthy(false);
    // interval 1 s x fall 3 + timeout 1 s + 1 s.
    let bound = Duration::from_secs(5);
    let took = example.wait_for(SECONDARY, Duration::from_secs(20));
    let (udp, tcp) = flood.stop();
    let took =
        took.unwrap_or_else(|| panic!("no failover under the flood:\n{}", example.server.log()));
    eprintln!(
        "switched in {took:?} under a flood of {} UDP and {} TCP queries",
        udp.answers, tcp.answers
    );
    assert!(took <= bound, "took {took:?}:\n{}", example.server.log());
    flood::assert_all_answered(&udp, &tcp);
}

#[test]
fn an_operators_failback_rearms_automatic_failover_for_the_next_outage() {
    let example = Example::start_timed();
    example.primary.set_healthy(false);
    assert!(
        example
            .wait_for(SECONDARY, Duration::from_secs(20))
            .is_some()
    );
    assert!(
        example.status()["cooldown_until"].is_string(),
        "{}",
        example.status()
    );
    example.primary.set_healthy(true);
    assert!(wait_until(
        Duration::from_secs(20),
        || example.status()["ready_for_failback"] == true
    ));
    let (code, reply) = example.post("/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    assert_eq!(example.www(), [PRIMARY]);
    assert_eq!(example.status()["cooldown_until"], serde_json::Value::Null);

    // A new outage within the hour: failed over again, in the same bound.
    example.primary.set_healthy(false);
    let took = example
        .wait_for(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no second failover:\n{}", example.server.log()));
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    let failovers = example
        .events()
        .iter()
        .filter(|e| e["event"] == "failed_over")
        .count();
    assert_eq!(failovers, 2);
    assert_eq!(example.status()["epoch"], 3);
}

#[test]
fn a_blocked_failover_is_announced_once_per_outage_and_shown() {
    let hook = WebhookSink::start();
    let example = Example::start(Some(&hook));
    let (code, reply) = example.post("/api/v1/pause", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    example.primary.set_healthy(false);
    assert!(hook.heard("failover_blocked"), "{:?}", hook.received());
    let st = example.status();
    let blocked = st["failover_blocked"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(blocked.contains("paused"), "{st}");
    let (_, metrics) = http("GET", example.api(), "/metrics", None, "");
    assert!(
        metrics.contains("geofailover_failover_blocked 1"),
        "{metrics}"
    );
    let blocked_heard = || {
        hook.received()
            .iter()
            .filter(|r| r.contains("\"failover_blocked\""))
            .count()
    };
    // Checks keep failing every second: still told once.
    let again = wait_until(Duration::from_secs(4), || blocked_heard() > 1);
    assert!(!again, "{:?}", hook.received());
    assert_eq!(example.www(), [PRIMARY]);

    // The outage ends; the next one is told again.
    example.primary.set_healthy(true);
    assert!(wait_until(Duration::from_secs(10), || {
        example.status()["failover_blocked"].is_null()
    }));
    example.primary.set_healthy(false);
    assert!(
        wait_until(Duration::from_secs(15), || blocked_heard() == 2),
        "{:?}",
        hook.received()
    );
}

#[test]
fn a_reload_applies_the_zones_and_the_failover_section_together_or_refuses_and_keeps_both() {
    let example = Example::start(None);
    let serial = soa_serial(example.server.addr, "example.com.");
    assert_eq!(example.aaaa(), ["2001:db8:10::10"]);

    // www A becomes a static record of the zone and stops being a
    // failover record, in one reload: never both at once.
    let mut zone = std::fs::read_to_string(example.zone_file()).expect("zone");
    zone = zone.replace("2026112101 ; serial", "2026112102 ; serial");
    zone.push_str("www 300 IN A 203.0.113.5\n");
    std::fs::write(example.zone_file(), zone).expect("write zone");
    let outcome = example.reload(|config| {
        let a = "    - name: www.example.com\n      type: A\n      ttl: 30\n";
        assert!(config.contains(a));
        config
            .replacen(a, "", 1)
            .replace("[192.0.2.10, 2001:db8:10::10]", "[2001:db8:10::10]")
            .replace("[198.51.100.10, 2001:db8:20::10]", "[2001:db8:20::10]")
    });
    assert!(
        outcome.contains("reload succeeded"),
        "{outcome}\n{}",
        example.server.log()
    );
    assert_eq!(
        example.www(),
        ["203.0.113.5"],
        "one RRset, the zone's alone"
    );
    assert_eq!(example.aaaa(), ["2001:db8:10::10"]);
    assert!(soa_serial(example.server.addr, "example.com.") > serial);

    // The active site's address changes: answered at once, serial bumped.
    let serial = soa_serial(example.server.addr, "example.com.");
    let outcome = example.reload(|config| config.replace("[2001:db8:10::10]", "[2001:db8:10::11]"));
    assert!(outcome.contains("reload succeeded"), "{outcome}");
    assert_eq!(example.aaaa(), ["2001:db8:10::11"]);
    assert!(soa_serial(example.server.addr, "example.com.") > serial);

    // Removing the failover section needs a restart: refused, and nothing
    // of the new files is served.
    let good = std::fs::read_to_string(&example.config).expect("read");
    let outcome = example.reload(|config| {
        let cut = config.find("failover:").expect("failover section");
        config[..cut].to_string()
    });
    assert!(
        outcome.contains("reload refused") && outcome.contains("needs a restart"),
        "{outcome}"
    );
    assert_eq!(example.aaaa(), ["2001:db8:10::11"]);

    // A listen address that changed is named as waiting for a restart;
    // the rest applies.
    let outcome = example.reload(|_| {
        good.replace(
            "    - 127.0.0.1:0\n",
            "    - 127.0.0.1:0\n    - 127.0.0.2:0\n",
        )
    });
    assert!(outcome.contains("reload succeeded"), "{outcome}");
    assert!(
        example
            .server
            .wait_for_log("take effect at the next restart: dns", 1),
        "{}",
        example.server.log()
    );
}

/// The example with the secondary's application flag as a file and an
/// HTTP switch (no database), the switch hanging when asked to go
/// read-only.
fn with_flags(switch: &common::AppSwitch) -> Example {
    with_flags_edited(switch, |config| config)
}

/// `with_flags`, with `edit` applied to the config too.
fn with_flags_edited(switch: &common::AppSwitch, edit: impl FnOnce(String) -> String) -> Example {
    let flags = format!(
        "    read_only:\n      flag_file:\n        path: READONLY\n{}",
        switch.config()
    );
    Example::start_edited(None, |config| {
        let anchor = "      www.example.com: [198.51.100.10, 2001:db8:20::10]\n";
        assert!(config.contains(anchor));
        edit(config.replacen(anchor, &format!("{anchor}{flags}"), 1))
    })
}

#[test]
fn a_controller_killed_mid_failover_rolls_it_back_when_the_primary_recovered_meanwhile() {
    let switch = common::AppSwitch::start();
    let mut example = with_flags(&switch);
    let flag = example.flag_file();
    switch.hanging.store(true, Ordering::Relaxed);
    example.primary.set_healthy(false);
    let held = wait_until(Duration::from_secs(20), || {
        example.stored()["read_only"]["started"]
            .as_array()
            .is_some_and(|s| s.iter().any(|step| step == "flag_http"))
    });
    assert!(held, "{}\n{}", example.stored(), example.server.log());
    assert!(flag.exists(), "the flag file was not set first");

    // Killed mid-failover; the primary is back before the restart.
    example.server.process.signal("KILL");
    assert!(
        example
            .server
            .process
            .wait_exit(Duration::from_secs(10))
            .is_some()
    );
    switch.hanging.store(false, Ordering::Relaxed);
    example.primary.set_healthy(true);
    example.server = Geofailover::start(&example.config);

    let rolled_back = wait_until(Duration::from_secs(20), || {
        example
            .events()
            .iter()
            .any(|e| e["event"] == "read_only_undone")
    });
    assert!(
        rolled_back,
        "{:?}\n{}",
        example.events(),
        example.server.log()
    );
    let events = example.events();
    let back = events
        .iter()
        .find(|e| e["event"] == "failover_rolled_back")
        .expect("a roll-back decision");
    assert!(
        back["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("healthy again"),
        "{back}"
    );
    assert!(!flag.exists(), "the flag file was left behind");
    assert!(
        switch
            .requests()
            .iter()
            .any(|r| r == "POST /admin/read-write HTTP/1.1"),
        "{:?}",
        switch.requests()
    );
    assert_eq!(example.www(), [PRIMARY]);
    assert_eq!(example.status()["epoch"], 0);
    assert_eq!(
        example.stored()["engine"]["pending"],
        serde_json::Value::Null
    );
    assert_eq!(example.stored()["read_only"], serde_json::Value::Null);
}

#[test]
fn a_read_only_preparation_that_fails_half_way_undoes_what_it_set_and_says_so() {
    let switch = common::AppSwitch::start();
    let example = with_flags(&switch);
    let flag = example.flag_file();
    // The application refuses to go read-only: the flag file was set
    // before it, and must not stay.
    drop(switch);
    example.primary.set_healthy(false);
    let undone = wait_until(Duration::from_secs(20), || {
        example
            .events()
            .iter()
            .any(|e| e["event"] == "read_only_undone")
    });
    assert!(undone, "{:?}\n{}", example.events(), example.server.log());
    assert!(
        !flag.exists(),
        "the flag file stayed after a failed failover"
    );
    let events = example.events();
    let undo = events
        .iter()
        .find(|e| e["event"] == "read_only_undone")
        .expect("undone");
    assert!(
        undo["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("removed"),
        "{undo}"
    );
    assert!(events.iter().any(|e| e["event"] == "failover_aborted"));
    assert_eq!(example.www(), [PRIMARY]);
}

#[test]
fn readiness_finds_a_flag_folder_that_cannot_be_written_and_check_live_fails() {
    let example = Example::start_edited(None, |config| {
        let anchor = "      www.example.com: [198.51.100.10, 2001:db8:20::10]\n";
        config.replacen(
            anchor,
            &format!("{anchor}    read_only:\n      flag_file:\n        path: /nonexistent-geofailover/READONLY\n"),
            1,
        )
    });
    assert!(wait_until(
        Duration::from_secs(10),
        || example.status()["failover_ready"]["ready"] == false
    ));
    let ready = example.status()["failover_ready"].to_string();
    assert!(ready.contains("/nonexistent-geofailover"), "{ready}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["check", "--live", "--config"])
        .arg(&example.config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED flag file:"), "{stdout}");
}

#[test]
fn a_forced_failover_after_a_stopped_one_keeps_its_own_flag_whatever_the_first_ones_undo_does() {
    let switch = common::AppSwitch::start();
    let example = with_flags(&switch);
    let flag = example.flag_file();
    // The application cannot go read-only: each attempt sets the flag
    // file, then fails at the HTTP call and is undone.
    switch.failing.store(true, Ordering::Relaxed);
    example.primary.set_healthy(false);
    assert!(
        wait_until(Duration::from_secs(20), || example
            .events()
            .iter()
            .any(|e| e["event"] == "read_only_undone")),
        "{}",
        example.server.log()
    );
    assert!(!flag.exists());
    // The operator moves traffic anyway: a new attempt of its own.
    let (code, reply) = example.post(
        "/api/v1/failover",
        r#"{"reason": "the shop must stay up", "force": true, "operator": "erin"}"#,
    );
    assert_eq!(code, 200, "{reply}");
    assert!(
        example
            .wait_for(SECONDARY, Duration::from_secs(20))
            .is_some()
    );
    // Its flag stays: nothing of the first attempt undoes it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(flag.exists(), "{:?}", example.events());
    let attempts: Vec<String> = example
        .events()
        .iter()
        .filter(|e| e["event"] == "read_only_started")
        .map(|e| e["summary"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert!(
        attempts[0].contains("attempt 1") && attempts[1].contains("attempt 2"),
        "{attempts:?}"
    );
}

#[test]
fn a_failover_right_after_a_failback_keeps_its_flag_when_the_old_clear_falls_due() {
    let switch = common::AppSwitch::start();
    let example = with_flags_edited(&switch, |config| {
        config
            .replace("      ttl: 30\n", "      ttl: 5\n")
            .replace("  auto: true", "  flag_clear_margin: 1s\n  auto: true")
    });
    let flag = example.flag_file();
    example.primary.set_healthy(false);
    assert!(
        example
            .wait_for(SECONDARY, Duration::from_secs(20))
            .is_some()
    );
    example.primary.set_healthy(true);
    assert!(wait_until(
        Duration::from_secs(20),
        || example.status()["ready_for_failback"] == true
    ));
    let (code, reply) = example.post("/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        example.status()["flag_clears"].as_array().map(Vec::len),
        Some(1)
    );
    // Down again before the clear (TTL 5 s + 1 s) is due, and the
    // application slow to go read-only: the clear falls due while the
    // new failover is being prepared, and must leave its flag alone.
    switch.hanging.store(true, Ordering::Relaxed);
    example.primary.set_healthy(false);
    assert!(wait_until(Duration::from_secs(20), || switch
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /admin/read-only"))
        .count()
        == 2));
    assert_eq!(example.status()["flag_clears"], serde_json::json!([]));
    let removed = wait_until(Duration::from_secs(7), || !flag.exists());
    assert!(!removed, "the old clear removed the new failover's flag");
    switch.hanging.store(false, Ordering::Relaxed);
    assert!(
        example
            .wait_for(SECONDARY, Duration::from_secs(20))
            .is_some()
    );
    assert!(flag.exists());
    assert!(
        !switch
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /admin/read-write")),
        "{:?}",
        switch.requests()
    );
}

#[test]
fn a_failover_whose_state_cannot_be_stored_sets_nothing() {
    let switch = common::AppSwitch::start();
    let example = with_flags(&switch);
    let file = example.dir.path().join("state/state.json");
    std::fs::remove_file(&file).expect("remove");
    std::fs::create_dir_all(file.join("blocked")).expect("a folder in its place");
    example.primary.set_healthy(false);
    let stopped = wait_until(Duration::from_secs(20), || {
        example.events().iter().any(|e| {
            e["event"] == "failover_aborted"
                && e["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("could not be stored before its first step")
        })
    });
    assert!(stopped, "{:?}\n{}", example.events(), example.server.log());
    assert!(!example.flag_file().exists(), "a step ran unstored");
    assert!(
        !switch.requests().iter().any(|r| r.starts_with("POST")),
        "{:?}",
        switch.requests()
    );
    assert_eq!(example.www(), [PRIMARY]);
}

/// The application's flags undone by hand while the secondary serves (an
/// operator's mistake, or a late request of a controller that no longer
/// leads): the next reconciliation pass finds them apart from the agreed
/// state and sets them again; journalled, told to the webhooks, counted
/// in /metrics and shown in the status.
#[test]
fn flags_undone_by_hand_while_the_secondary_serves_are_found_and_set_again() {
    let switch = common::AppSwitch::start();
    let hook = WebhookSink::start();
    let example = with_flags_edited(&switch, |config| {
        config.replacen("failover:\n", "failover:\n  readiness_interval: 1s\n", 1) + &hook.config()
    });
    let flag = example.flag_file();
    example.primary.set_healthy(false);
    example
        .wait_for(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no failover:\n{}", example.server.log()));
    let app = SocketAddr::from(([127, 0, 0, 1], switch.port));
    let read_only = || {
        http("GET", app, "/status", None, "")
            .1
            .contains("read-only")
    };
    assert!(read_only() && flag.exists());

    // By hand: the shop opened again and the flag file overwritten with
    // something else (neither set nor clear).
    http("POST", app, "/admin/read-write", None, "");
    std::fs::write(&flag, "maintenance over\n").expect("overwrite the flag file");
    assert!(!read_only());
    let in_place = || std::fs::read_to_string(&flag).is_ok_and(|t| t == "read-only\n");
    let repaired = wait_until(Duration::from_secs(20), || read_only() && in_place());
    assert!(repaired, "{}", example.server.log());
    let drifts = || -> Vec<serde_json::Value> {
        example
            .events()
            .into_iter()
            .filter(|e| e["event"] == "flag_drift")
            .collect()
    };
    assert!(wait_until(Duration::from_secs(5), || drifts().len() >= 2));
    let drifts = drifts();
    for step in ["flag file", "flag HTTP call"] {
        assert!(
            drifts.iter().any(|d| {
                let summary = d["summary"].as_str().unwrap_or_default();
                summary.contains(step) && summary.contains("repaired")
            }),
            "{step}: {drifts:#?}"
        );
    }
    assert!(hook.heard("flag_drift"), "{:?}", hook.received());
    let status = example.status();
    assert!(
        status["reconcile"]["drift_total"].as_u64() >= Some(2),
        "{status}"
    );
    let (_, metrics) = http("GET", example.api(), "/metrics", None, "");
    assert!(
        metrics.contains("geofailover_flags_in_agreement 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("geofailover_flag_drift_total 0"),
        "{metrics}"
    );
    // Set again, the world stays as it is: no drift at the next passes.
    let settled = drifts.len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        example
            .events()
            .iter()
            .filter(|e| e["event"] == "flag_drift")
            .count(),
        settled
    );
}
