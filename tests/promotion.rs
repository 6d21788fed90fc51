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
    // SAFETY: set before any thread of this test reads the environment
    // of the controller it starts.
    unsafe { std::env::set_var("GEOFAILOVER_REPL_PASSWORD", REPL_PASSWORD) };
    let pair = Pair::start_with(extra);
    grant_promotion(&pair);
    prepare(&pair);
    let setup = Setup::start_on(pair, ADMIN_PASSWORD, promote_mode(after), false);
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
    let mut setup = start(&semi_sync(), "3s");
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
    let position = setup.pair.secondary.must("SELECT @@gtid_binlog_pos");
    assert_eq!(
        setup
            .pair
            .primary
            .must(&format!("SELECT MASTER_GTID_WAIT('{position}', 30)")),
        "0",
        "the old primary did not catch up to {position}"
    );
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
    let position = setup.pair.secondary.must("SELECT @@gtid_binlog_pos");
    assert_eq!(
        setup
            .pair
            .primary
            .must(&format!("SELECT MASTER_GTID_WAIT('{position}', 30)")),
        "0"
    );
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
