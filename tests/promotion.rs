//! `failover.mode: promote` against two real MariaDB 10.11 servers with
//! GTID replication, semi-synchronous (AFTER_SYNC) or not, under a writer
//! that counts the writes acknowledged to it: the secondary promoted only
//! with the old primary fenced or on the operator's word, no acknowledged
//! write lost, the old primary rejoined or reported diverged.

mod common;

use std::time::Duration;

use common::{
    cli,
    mariadb::{
        ADMIN_PASSWORD, Pair, REPL_PASSWORD, Setup, Writer, grant_promotion, ids, promote_mode,
        semi_sync,
    },
    wait_until,
};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

fn start(extra: &[String], after: &str) -> Setup {
    start_with(extra, after, |_| {})
}

/// `start`, with `prepare` run on the databases before the controller.
fn start_with(extra: &[String], after: &str, prepare: impl FnOnce(&Pair)) -> Setup {
    start_edited(extra, promote_mode(after), prepare)
}

/// `start_with`, the config edited by `edit` (which puts it in promote
/// mode).
fn start_edited(
    extra: &[String],
    edit: impl FnOnce(String) -> String,
    prepare: impl FnOnce(&Pair),
) -> Setup {
    // SAFETY: set before any thread of this test reads the environment
    // of the controller it starts.
    unsafe { std::env::set_var("GEOFAILOVER_REPL_PASSWORD", REPL_PASSWORD) };
    let pair = Pair::start_with(extra);
    grant_promotion(&pair);
    prepare(&pair);
    let setup = Setup::start_on(pair, ADMIN_PASSWORD, edit, false);
    let text = std::fs::read_to_string(setup.config()).expect("config");
    assert!(text.contains("mode: promote"), "{text}");
    setup.wait_healthy();
    setup
}

fn promotion(setup: &Setup) -> serde_json::Value {
    setup.status()["promotion"].clone()
}

fn wait_stage(setup: &Setup, stage: &str, within: Duration) {
    assert!(
        wait_until(within, || promotion(setup)["stage"] == stage),
        "never {stage}: {}\n{}",
        promotion(setup),
        setup.server.log()
    );
}

fn promote(setup: &Setup, primary_is_down: bool) -> (i32, String, String) {
    let url = format!("http://{}", setup.api());
    let config = setup.config();
    let config = config.to_str().expect("utf-8");
    let mut args = vec!["promote", "--config", config, "--url", &url];
    if primary_is_down {
        args.push("--primary-is-down");
    }
    cli(&args)
}

/// The failover readiness item `name`, once the checks have run.
fn readiness_item(setup: &Setup, name: &str) -> serde_json::Value {
    let mut item = serde_json::Value::Null;
    wait_until(Duration::from_secs(20), || {
        item = setup.status()["failover_ready"]["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name).cloned())
            .unwrap_or_default();
        !item.is_null()
    });
    item
}

fn journal_text(setup: &Setup) -> String {
    setup
        .events()
        .iter()
        .map(|e| format!("{} {} {}", e["event"], e["summary"], e["reasons"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn semi_sync_after_a_crash_promotes_on_the_operators_word_loses_no_acknowledged_write_and_rejoins_the_old_primary()
 {
    // Reconciliation passes every second (they follow the readiness
    // checks).
    let mut setup = start_edited(
        &semi_sync(),
        |text| {
            promote_mode("3s")(text).replace(
                "  flag_clear_margin: 1s",
                "  flag_clear_margin: 1s\n  readiness_interval: 1s",
            )
        },
        |_| {},
    );
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["rpo_zero"]
            == true),
        "semi-sync never read as RPO 0: {}",
        promotion(&setup)
    );
    assert!(
        promotion(&setup)["rpo"]
            .as_str()
            .unwrap_or("")
            .starts_with("RPO 0: semi-sync AFTER_SYNC, acknowledged"),
        "{}",
        promotion(&setup)
    );
    let writer = Writer::start(setup.pair.primary.port, 30);
    setup.pair.primary.crash();
    let acked = writer.stop();

    // Read-only mode first, as without promotion.
    setup.wait_for_answer(SECONDARY);
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    // A single controller cannot fence a database it cannot reach: no
    // automatic promotion, and the page says why.
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("could not be verified fenced"))),
        "{}\n{}",
        promotion(&setup),
        journal_text(&setup)
    );
    assert_eq!(promotion(&setup)["stage"], "read_only");
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");

    let (code, out, err) = promote(&setup, true);
    assert_eq!(code, 0, "{out}{err}");
    wait_stage(&setup, "promoted", Duration::from_secs(30));
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "0");
    assert!(
        !setup.flag().exists(),
        "the secondary's application flag stays set"
    );
    let at_new = ids(&setup.pair.secondary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_new.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged write(s) lost: {lost:?}",
        lost.len()
    );
    // Writes resume at the new primary.
    let writer = Writer::start(setup.pair.secondary.port, 10);
    let p = promotion(&setup);
    assert!(
        p["position"].as_str().is_some_and(|g| g.starts_with("0-")),
        "{p}"
    );

    // The old primary comes back: fenced at once, rejoined as a replica.
    setup.pair.primary.restart();
    wait_stage(&setup, "rejoined", Duration::from_secs(60));
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "1");
    let acked_new = writer.stop();
    setup.pair.catch_up_from_secondary();
    let at_old = ids(&setup.pair.primary);
    for id in acked.iter().chain(&acked_new) {
        assert!(
            at_old.contains(id),
            "id {id} missing at the rejoined old primary"
        );
    }
    let journal = journal_text(&setup);
    for word in ["promotion_started", "promoted", "rejoined"] {
        assert!(
            journal.contains(word),
            "no {word} in the journal:\n{journal}"
        );
    }
    // Fail-back after a promotion is a switchover, with its own
    // pre-checks (run in the test of the reachable old primary).
    let (code, body) = setup.post("/api/v1/failback", r#"{"dry_run": true}"#);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"name\":\"old primary rejoined\",\"ok\":true"),
        "{body}"
    );
    // The new primary found read-only (restarted with read_only in its
    // my.cnf, say): the reconciliation makes it writable again.
    let repairs = |setup: &Setup| {
        setup
            .events()
            .iter()
            .filter(|e| {
                e["event"] == "flag_drift"
                    && e["outcome"] == "ok"
                    && e["summary"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("secondary database read_only"))
            })
            .count()
    };
    let before = repairs(&setup);
    setup.pair.secondary.must("SET GLOBAL read_only = 1");
    assert!(
        wait_until(Duration::from_secs(20), || setup
            .pair
            .secondary
            .must("SELECT @@read_only")
            == "0"),
        "the new primary stays read-only:\n{}",
        setup.server.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || repairs(&setup) > before),
        "{}",
        journal_text(&setup)
    );
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "1");
    let _ = &mut setup;
}

#[test]
fn with_the_old_primary_reachable_the_promotion_is_automatic_after_it_is_fenced_and_nothing_acknowledged_is_lost()
 {
    let setup = start(&semi_sync(), "4s");
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["rpo_zero"]
            == true),
        "{}",
        promotion(&setup)
    );
    // Before the disaster, the readiness checks know promotion could run.
    for name in [
        "promotion privileges at secondary",
        "promotion privileges at primary",
        "binary log for a rejoin at secondary",
        "semi-sync AFTER_SYNC at primary",
        "semi-sync AFTER_SYNC at secondary",
    ] {
        let item = readiness_item(&setup, name);
        assert_eq!(item["ok"], true, "{name}: {item}");
    }
    // Visitors still reach the old primary's database (their resolvers
    // ignore the TTL) while its site's web checks fail.
    let writer = Writer::start(setup.pair.primary.port, 30);
    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    wait_stage(&setup, "promoted", Duration::from_secs(40));
    let acked = writer.stop();
    // The fence: read-only verified, its application flag set, and no
    // write acknowledged there after it.
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "1");
    let primary_flag = setup.dir.path().join("state/PRIMARY-READONLY");
    assert!(primary_flag.exists(), "the old primary's flag was not set");
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "0");
    let at_new = ids(&setup.pair.secondary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_new.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged write(s) lost: {lost:?}");
    let p = promotion(&setup);
    assert!(
        p["fence"]
            .as_str()
            .unwrap_or("")
            .contains("verified fenced"),
        "{p}"
    );
    // Reachable, it is rejoined at once.
    wait_stage(&setup, "rejoined", Duration::from_secs(30));
    let writer = Writer::start(setup.pair.secondary.port, 10);
    let acked_new = writer.stop();
    setup.pair.catch_up_from_secondary();
    let at_old = ids(&setup.pair.primary);
    assert!(acked_new.iter().all(|id| at_old.contains(id)));
    let metrics = common::http("GET", setup.api(), "/metrics", None, "").1;
    assert!(
        metrics.contains("geofailover_promotion_stage{stage=\"rejoined\"} 1"),
        "{metrics}"
    );

    // Fail-back is a planned switchover, under an application that writes
    // wherever a write is taken.
    setup.primary_web.set_healthy(true);
    let writer =
        Writer::start_following(vec![setup.pair.secondary.port, setup.pair.primary.port], 20);
    setup.fail_back();
    setup.wait_for_answer(PRIMARY);
    assert!(
        wait_until(Duration::from_secs(30), || promotion(&setup)["stage"]
            == "read_only"),
        "{}",
        promotion(&setup)
    );
    // Writes go on at the primary after the window.
    let before = writer.acked().len();
    assert!(
        wait_until(Duration::from_secs(15), || writer.acked().len()
            >= before + 20),
        "writes did not resume"
    );
    let window = writer.longest_gap();
    let acked = writer.stop();
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "0");
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    let at_primary = ids(&setup.pair.primary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_primary.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged write(s) lost in the switchover: {lost:?}"
    );
    setup.pair.catch_up();
    let at_secondary = ids(&setup.pair.secondary);
    assert!(acked.iter().all(|id| at_secondary.contains(id)));
    assert!(
        !setup.dir.path().join("state/PRIMARY-READONLY").exists(),
        "the primary's flag stays set"
    );
    let journal = journal_text(&setup);
    assert!(journal.contains("writes stopped for"), "{journal}");
    eprintln!(
        "switchover back: longest time without an acknowledged write {} ms",
        window.as_millis()
    );
    assert!(window < Duration::from_secs(10), "{window:?}");
}

#[test]
fn asynchronous_replication_blocks_automatic_promotion_the_operator_promotes_and_an_old_primary_with_errant_writes_is_not_rejoined()
 {
    let setup = start(&[], "2s");
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["rpo"]
            .as_str()
            .is_some_and(|r| r.starts_with("asynchronous"))),
        "{}",
        promotion(&setup)
    );
    let item = readiness_item(&setup, "semi-sync AFTER_SYNC at primary");
    assert_eq!(item["ok"], false, "{item}");
    assert!(
        item["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("asynchronous"),
        "{item}"
    );
    // The secondary stops receiving; the primary goes on taking writes
    // the secondary never gets.
    setup.pair.secondary.must("STOP SLAVE IO_THREAD");
    let writer = Writer::start(setup.pair.primary.port, 20);
    let acked = writer.stop();
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["rpo"]
            .as_str()
            .is_some_and(|r| r.contains("transaction(s) not yet applied"))),
        "{}",
        promotion(&setup)
    );
    let mut setup = setup;
    setup.pair.primary.crash();
    setup.wait_for_answer(SECONDARY);
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("automatic promotion needs RPO 0"))),
        "{}",
        promotion(&setup)
    );
    // On the page too.
    let page = common::http("GET", setup.api(), "/", None, "").1;
    assert!(
        page.contains("id=\"promotion\""),
        "no promotion line on the page"
    );
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");

    let (code, out, err) = promote(&setup, true);
    assert_eq!(code, 0, "{out}{err}");
    wait_stage(&setup, "promoted", Duration::from_secs(30));
    let journal = journal_text(&setup);
    assert!(
        journal.contains("RPO: asynchronous") && journal.contains("transaction(s) not yet applied"),
        "the journal does not say what may be lost:\n{journal}"
    );
    let at_new = ids(&setup.pair.secondary);
    assert!(
        acked.iter().any(|id| !at_new.contains(id)),
        "the test meant some writes to be lost"
    );

    // The old primary comes back with writes the new one never had.
    setup.pair.primary.restart();
    wait_stage(&setup, "diverged", Duration::from_secs(60));
    let p = promotion(&setup);
    let errant = p["errant"].as_array().cloned().unwrap_or_default();
    assert!(
        errant
            .iter()
            .any(|g| g.as_str().is_some_and(|g| g.starts_with("0-1-"))),
        "{p}"
    );
    // Fenced, not replicating, fail-back refused.
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "1");
    assert_eq!(
        setup
            .pair
            .primary
            .root("SHOW SLAVE STATUS")
            .unwrap_or_default(),
        "",
        "a diverged old primary must not replicate"
    );
    let (code, body) = setup.post("/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("diverged"), "{body}");

    // The operator holds the rejoin and rebuilds it by hand: the errant
    // rows taken out, its GTID state made the new primary's.
    let url = format!("http://{}", setup.api());
    let config = setup.config();
    let config = config.to_str().expect("utf-8");
    let (code, out, err) = cli(&["rejoin", "--hold", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        promotion(&setup)["rejoin_held"]
            .as_str()
            .is_some_and(|h| h.starts_with("by carol since ")),
        "{}",
        promotion(&setup)
    );
    let at_new = ids(&setup.pair.secondary);
    let errant_rows: Vec<String> = ids(&setup.pair.primary)
        .into_iter()
        .filter(|id| !at_new.contains(id))
        .map(|id| id.to_string())
        .collect();
    let state = setup.pair.secondary.must("SELECT @@gtid_binlog_state");
    setup.pair.primary.must(&format!(
        "SET SESSION sql_log_bin = 0; DELETE FROM app.orders WHERE id IN ({}); RESET MASTER; SET GLOBAL gtid_binlog_state = '{state}'",
        errant_rows.join(",")
    ));
    assert_eq!(promotion(&setup)["stage"], "diverged");
    let (code, out, err) = cli(&["rejoin", "--release", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{out}{err}");
    wait_stage(&setup, "rejoined", Duration::from_secs(60));
    assert!(promotion(&setup)["rejoin_held"].is_null());
    setup
        .pair
        .secondary
        .must("INSERT INTO app.orders VALUES (999999, 'after the rebuild')");
    setup.pair.catch_up_from_secondary();
    assert!(ids(&setup.pair.primary).contains(&999_999));
    let journal = journal_text(&setup);
    for word in ["rejoin_held", "rejoin_released"] {
        assert!(journal.contains(word), "no {word}:\n{journal}");
    }
}

#[test]
fn an_application_account_that_can_bypass_read_only_makes_the_fence_fail_and_nothing_is_promoted() {
    let setup = start_with(&semi_sync(), "2s", |pair| {
        pair.primary
            .must("GRANT READ_ONLY ADMIN ON *.* TO 'app'@'%'");
        pair.catch_up();
    });
    assert!(
        wait_until(Duration::from_secs(20), || promotion(&setup)["rpo_zero"]
            == true),
        "{}",
        promotion(&setup)
    );
    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    assert!(
        wait_until(Duration::from_secs(30), || promotion(&setup)["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("can still write: app@%"))),
        "{}\n{}",
        promotion(&setup),
        journal_text(&setup)
    );
    assert_eq!(promotion(&setup)["stage"], "read_only");
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
}

const DRILL_PASSWORD: &str = "drill-secret-1234";

/// `drill.writer` as the account `drill`, its password from the
/// environment.
fn drill_writer(text: String) -> String {
    let edited = text.replace(
        "  timeout: 60s ",
        "  writer:\n    user: drill\n    password_env: GEOFAILOVER_DRILL_PASSWORD\n  timeout: 60s ",
    );
    assert!(edited.contains("writer:"), "{edited}");
    edited
}

#[test]
fn a_drill_in_promote_mode_promotes_switches_back_and_loses_none_of_its_own_writes() {
    // SAFETY: set before any thread of this test reads the environment
    // of the controller it starts.
    unsafe {
        std::env::set_var("GEOFAILOVER_REPL_PASSWORD", REPL_PASSWORD);
        std::env::set_var("GEOFAILOVER_DRILL_PASSWORD", DRILL_PASSWORD);
    }
    let pair = Pair::start_with(&semi_sync());
    grant_promotion(&pair);
    pair.primary.must(&format!(
        "CREATE USER 'drill'@'%' IDENTIFIED BY '{DRILL_PASSWORD}'"
    ));
    pair.primary
        .must("GRANT CREATE, INSERT, SELECT, DELETE ON geofailover_drill.* TO 'drill'@'%'");
    // First an account that writes through read_only.
    pair.primary
        .must("GRANT READ_ONLY ADMIN ON *.* TO 'drill'@'%'");
    pair.catch_up();
    let setup = Setup::start_on(
        pair,
        ADMIN_PASSWORD,
        |text| drill_writer(promote_mode("1h")(text)),
        false,
    );
    setup.wait_healthy();

    // It could not tell a fenced database from a writable one: the drill
    // fails before anything moves.
    let id = setup.start_drill(r#"{"hold": "1s", "operator": "grace"}"#);
    let report = setup.drill_report(&id, Duration::from_secs(60));
    assert_eq!(report["result"], "fail", "{report:#}");
    let first = &report["steps"][0];
    assert_eq!(first["name"], "start the drill's writer", "{report:#}");
    assert!(
        first["detail"]
            .as_str()
            .is_some_and(|d| d.contains("READ_ONLY ADMIN") && d.contains("write through read_only")),
        "{report:#}"
    );
    assert_eq!(
        report["steps"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
    assert_eq!(setup.status()["active_role"], "primary");

    setup
        .pair
        .primary
        .must("REVOKE READ_ONLY ADMIN ON *.* FROM 'drill'@'%'");
    setup.pair.catch_up();
    // The plan names the promotion.
    let (code, plan) = setup.post("/api/v1/drill", r#"{"dry_run": true}"#);
    assert_eq!(code, 200, "{plan}");
    assert!(plan.contains("promote the secondary"), "{plan}");

    let id = setup.start_drill(r#"{"hold": "2s", "operator": "grace"}"#);
    let report = setup.drill_report(&id, Duration::from_secs(180));
    assert_eq!(report["result"], "pass", "{report:#}");
    assert_eq!(report["promoted"], true, "{report:#}");
    let names: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for step in [
        "start the drill's writer",
        "switch to the secondary",
        "the secondary is read-only",
        "promote the secondary",
        "the secondary is writable",
        "the old primary rejoined",
        "hold",
        "switch back over",
        "all nameservers answer the primary",
        "writes at the primary",
        "the drill's writes",
    ] {
        assert!(names.contains(&step), "no step {step}: {names:?}");
    }
    let writes = &report["writes"];
    assert_eq!(writes["lost"], 0, "{writes:#}");
    assert_eq!(writes["missing_at_replica"], 0, "{writes:#}");
    for field in ["at_primary", "at_secondary"] {
        assert!(
            writes[field].as_u64().unwrap_or(0) > 0,
            "{field}: {writes:#}"
        );
    }
    for gap in ["promotion_gap_ms", "switchover_gap_ms"] {
        assert!(writes[gap].as_u64().is_some(), "{gap}: {writes:#}");
    }
    assert!(
        report["timings"]["promotion_ms"].as_u64().is_some(),
        "{report:#}"
    );
    println!(
        "drill writes: {} acknowledged, writes stopped {} ms at the promotion and {} ms at the switchover back",
        writes["acknowledged"], writes["promotion_gap_ms"], writes["switchover_gap_ms"]
    );

    // Back as before: the primary writable, the secondary its read-only
    // replica, no promotion; the drill's rows gone from both.
    assert_eq!(setup.status()["active_role"], "primary");
    assert_eq!(promotion(&setup)["stage"], "read_only");
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "0");
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    setup.pair.catch_up();
    for db in [&setup.pair.primary, &setup.pair.secondary] {
        assert_eq!(
            db.must("SELECT COUNT(*) FROM geofailover_drill.writes"),
            "0"
        );
    }
    // The Markdown report has the writes.
    let url = format!("http://{}", setup.api());
    let config = setup.config();
    let (code, out, err) = cli(&[
        "drill",
        "--last",
        "--config",
        config.to_str().expect("utf-8"),
        "--url",
        &url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("## Writes") && out.contains("| acknowledged but lost | 0 |"),
        "{out}"
    );

    // Writes lost behind the drill's back (deleted at the new primary
    // while it holds): the drill says so and fails.
    let id = setup.start_drill(r#"{"hold": "4s", "operator": "grace"}"#);
    assert!(
        wait_until(Duration::from_secs(60), || setup
            .pair
            .secondary
            .root("SELECT @@read_only")
            .is_ok_and(|r| r == "0")
            && setup
                .pair
                .secondary
                .root("SELECT COUNT(*) FROM geofailover_drill.writes")
                .is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 3)),
        "{}",
        setup.server.log()
    );
    setup
        .pair
        .secondary
        .must("DELETE FROM geofailover_drill.writes ORDER BY seq LIMIT 3");
    let report = setup.drill_report(&id, Duration::from_secs(180));
    assert_eq!(report["result"], "fail", "{report:#}");
    assert_eq!(report["writes"]["lost"], 3, "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the drill's writes") && r.contains("3 of")),
        "{report:#}"
    );
    // Back on the primary all the same.
    assert_eq!(setup.status()["active_role"], "primary");
    assert_eq!(setup.pair.primary.must("SELECT @@read_only"), "0");
}
