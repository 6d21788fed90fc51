//! Drills end to end: two real MariaDB servers, stand-in web sites, the
//! real binary running config/example-mysql.yaml. A passing drill, one
//! whose secondary fails during the hold, a dry run, refused ones (paused,
//! in cooldown), the zones' NS as the default nameservers, and one whose
//! controller is killed mid-hold.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::{
    Geofailover, a_records, http,
    mariadb::{ADMIN_PASSWORD, Setup},
    wait_until,
};

const PRIMARY: &str = "192.0.2.10";

/// Waits until the running drill has switched to the secondary.
fn wait_switched(setup: &Setup) {
    let holding = wait_until(Duration::from_secs(60), || {
        setup.status()["drill"]
            .as_str()
            .unwrap_or("")
            .contains("switched")
    });
    assert!(holding, "{}", setup.server.log());
}

fn step_names(report: &serde_json::Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_passing_drill_verifies_every_step_and_ends_on_the_primary() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let id = setup.start_drill(r#"{"hold": "2s", "lower_ttl": "5s", "operator": "frank"}"#);
    let report = setup.drill_report(&id, Duration::from_secs(120));
    assert_eq!(report["result"], "pass", "{report:#}");
    assert_eq!(report["operator"], "frank");
    let names = step_names(&report);
    for step in [
        "lower the TTL",
        "restore the TTL",
        "switch to the secondary",
        "all nameservers answer the secondary",
        "the secondary is read-only",
        "the secondary's checks pass",
        "hold",
        "fail back",
        "all nameservers answer the primary",
        "TTL drain",
    ] {
        assert!(
            names.iter().any(|n| n == step),
            "no step {step:?} in {names:?}"
        );
    }
    assert!(
        report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s["ok"] == true),
        "{report:#}"
    );
    let timings = &report["timings"];
    for t in [
        "decision_to_answer_ms",
        "answer_to_consistent_ms",
        "failback_to_consistent_ms",
        "ttl_drain_ms",
        "total_ms",
    ] {
        assert!(timings[t].as_u64().is_some(), "no {t}: {timings}");
    }
    assert!(
        report["missing_transactions_at_switch"].as_u64().is_some(),
        "{report:#}"
    );
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert_eq!(
        setup.status()["dns"]["records"][0]["ttl"],
        5,
        "the TTL was not restored"
    );
    assert!(
        wait_until(Duration::from_secs(20), || !setup.flag().exists()),
        "the application flag was not cleared"
    );
    // Kept as JSON and Markdown, and shown by the CLI.
    let drills = setup.dir.path().join("state/drills");
    let safe = id.replace(':', "-");
    assert!(drills.join(format!("{safe}.json")).exists());
    let markdown =
        std::fs::read_to_string(drills.join(format!("{safe}.md"))).expect("markdown report");
    assert!(markdown.contains("**Result: PASS**"), "{markdown}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["drill", "--last", "--url", &setup.server.url(), "--config"])
        .arg(setup.dir.path().join("example-mysql.yaml"))
        .env("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run the CLI");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.contains(&format!("# Drill {id}")),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_secondary_failing_during_the_hold_aborts_the_drill_and_returns_to_the_primary() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let id = setup.start_drill(r#"{"hold": "60s"}"#);
    wait_switched(&setup);
    setup.secondary_web.set_healthy(false);
    let report = setup.drill_report(&id, Duration::from_secs(90));
    assert_eq!(report["result"], "aborted", "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or("")
            .contains("became unhealthy during the hold"),
        "{report:#}"
    );
    assert!(step_names(&report).iter().any(|n| n == "fail back"));
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert_eq!(setup.status()["active_role"], "primary");
}

#[test]
fn a_dry_run_changes_nothing_and_a_paused_controller_refuses_drills() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let before = setup.status();
    let journal_before = setup.events().len();
    let (code, reply) = setup.post("/api/v1/drill", r#"{"dry_run": true}"#);
    assert_eq!(code, 200, "{reply}");
    let plan: serde_json::Value = serde_json::from_str(&reply).expect("json");
    assert!(plan["id"].is_null());
    assert!(
        plan["plan"].as_array().expect("plan").len() >= 5,
        "{plan:#}"
    );
    assert!(
        plan["prechecks"]
            .as_array()
            .expect("prechecks")
            .iter()
            .all(|p| p["ok"] == true),
        "{plan:#}"
    );
    let after = setup.status();
    assert_eq!(after["epoch"], before["epoch"]);
    assert_eq!(after["dns"]["serials"], before["dns"]["serials"]);
    assert_eq!(setup.events().len(), journal_before, "the journal changed");
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);

    let (code, _) = setup.post("/api/v1/pause", "{}");
    assert_eq!(code, 200);
    let (code, reply) = setup.post("/api/v1/drill", "{}");
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply.contains("drill refused: not paused: paused"),
        "{reply}"
    );
    let (code, _) = http("POST", setup.api(), "/api/v1/drill", None, "{}");
    assert_eq!(code, 401);
}

#[test]
fn a_drill_killed_mid_hold_is_completed_by_the_restarted_controller() {
    let mut setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let id = setup.start_drill(r#"{"hold": "120s"}"#);
    wait_switched(&setup);
    assert_eq!(
        a_records(setup.server.addr, "www.example.com."),
        ["198.51.100.10"]
    );
    setup.server.process.signal("KILL");
    assert!(
        setup
            .server
            .process
            .wait_exit(Duration::from_secs(10))
            .is_some()
    );

    let config = setup.dir.path().join("example-mysql.yaml");
    setup.server =
        Geofailover::start_with_env(&config, &[("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)]);
    assert!(
        setup.server.log().contains("finishing its fail-back")
            || setup.server.wait_for_log("finishing its fail-back", 1)
    );
    let report = setup.drill_report(&id, Duration::from_secs(120));
    assert_eq!(report["resumed_after_restart"], true, "{report:#}");
    assert_eq!(report["result"], "aborted");
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or("")
            .contains("restarted"),
        "{report:#}"
    );
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
}

#[test]
fn sigterm_mid_drill_fails_back_before_the_controller_stops() {
    let mut setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let id = setup.start_drill(r#"{"hold": "120s"}"#);
    wait_switched(&setup);
    setup.server.process.signal("TERM");
    let status = setup.server.process.wait_exit(Duration::from_secs(90));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        setup.server.log()
    );
    let last =
        std::fs::read_to_string(setup.dir.path().join("state/drills/last.json")).expect("a report");
    let report: serde_json::Value = serde_json::from_str(&last).expect("json");
    assert_eq!(report["id"], id.as_str());
    assert_eq!(report["result"], "aborted", "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or("")
            .contains("asked to stop"),
        "{report:#}"
    );
    // Started again: on the primary, no drill left to finish.
    let config = setup.dir.path().join("example-mysql.yaml");
    setup.server =
        Geofailover::start_with_env(&config, &[("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)]);
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert!(setup.status()["drill"].is_null());
}

#[test]
fn without_listed_nameservers_the_zones_ns_are_verified_and_a_failback_ends_the_cooldown() {
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            let kept: Vec<&str> = config
                .lines()
                .filter(|l| !l.trim_start().starts_with("nameservers:"))
                .collect();
            assert!(kept.len() < config.lines().count(), "no drill nameservers");
            kept.join("\n") + "\n"
        },
        |_| {},
    );
    setup.wait_healthy();
    let dry_run = || {
        let (code, reply) = setup.post("/api/v1/drill", r#"{"dry_run": true}"#);
        assert_eq!(code, 200, "{reply}");
        let plan: serde_json::Value = serde_json::from_str(&reply).expect("json");
        plan["prechecks"]
            .as_array()
            .expect("prechecks")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    (
                        p["ok"] == true,
                        p["detail"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // example.com's NS records, ns1 (A and AAAA) and ns2, at port 53.
    assert_eq!(
        dry_run()["nameservers to verify"],
        (
            true,
            "192.0.2.53:53, [2001:db8::53]:53, 198.51.100.53:53".to_string()
        )
    );

    // An automatic failover and the operator's fail-back: the fail-back
    // ended the cooldown, so a drill may follow at once.
    setup.primary_web.set_healthy(false);
    let moved = wait_until(Duration::from_secs(20), || {
        a_records(setup.server.addr, "www.example.com.") != [PRIMARY]
    });
    assert!(moved, "no failover:\n{}", setup.server.log());
    setup.primary_web.set_healthy(true);
    setup.fail_back();
    assert_eq!(setup.status()["cooldown_until"], serde_json::Value::Null);
    let failed: Vec<String> = dry_run()
        .into_iter()
        .filter(|(_, (ok, _))| !ok)
        .map(|(name, (_, detail))| format!("{name}: {detail}"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn ctrl_c_in_the_drill_command_aborts_the_drill_and_fails_back() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let config = setup.dir.path().join("example-mysql.yaml");
    let url = format!("http://{}", setup.api());
    let mut cli = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["drill", "--hold", "60s", "--config"])
        .arg(&config)
        .args(["--url", &url])
        .env("USER", "frank")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    let holding = wait_until(Duration::from_secs(60), || {
        let switched = setup.status()["drill"]
            .as_str()
            .unwrap_or("")
            .contains("switched");
        switched || cli.try_wait().expect("wait").is_some()
    });
    assert!(holding, "{}", setup.server.log());
    if cli.try_wait().expect("wait").is_some() {
        let out = cli.wait_with_output().expect("output");
        panic!(
            "the CLI ended before ctrl-c:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &cli.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let ended = wait_until(Duration::from_secs(60), || {
        cli.try_wait().expect("wait").is_some()
    });
    if !ended {
        let _ = cli.kill();
    }
    let out = cli.wait_with_output().expect("output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(ended, "the CLI did not end:\n{stdout}\n{stderr}");
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("aborting the drill"), "{stdout}\n{stderr}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("drill ")?.split(" started").next())
        .expect("the drill's id")
        .to_string();
    let report = setup.drill_report(&id, Duration::from_secs(30));
    assert_eq!(report["result"], "aborted", "{report:#}");
    assert!(step_names(&report).iter().any(|n| n == "fail back"));
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert!(stdout.contains("aborted"), "no report printed:\n{stdout}");
}
