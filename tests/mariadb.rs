//! Read-only failover and fail-back against two real MariaDB 10.11 servers
//! replicating with GTIDs, driven through the real binary running
//! config/example-mysql.yaml on test ports.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    AppSwitch, Geofailover, StandIn, WebhookSink, a_records, http,
    mariadb::{
        ADMIN_PASSWORD, APP_PASSWORD, APP_USER, Pair, Setup, Writer, assert_nothing_lost,
        mysql_config,
    },
    status_json, wait_until,
};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

#[test]
fn failover_makes_the_secondary_read_only_before_dns_moves_and_failback_under_a_writer_loses_nothing()
 {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    assert_eq!(
        setup.pair.secondary.must("SELECT @@read_only"),
        "0",
        "the test starts writable"
    );
    let st = setup.status();
    assert_eq!(
        st["sites"][0]["checks"][1]["last_detail"], "SELECT 1 answered",
        "{st}"
    );
    assert!(
        wait_until(
            Duration::from_secs(15),
            || setup.status()["replication"]["sql_running"] == true
        ),
        "{}",
        setup.status()
    );

    let writer = Writer::start(setup.pair.primary.port, 20);

    // The primary's web check starts failing.
    setup.primary_web.set_healthy(false);
    assert!(
        wait_until(Duration::from_secs(20), || a_records(
            setup.server.addr,
            "www.example.com."
        ) == [SECONDARY]),
        "no failover:\n{}",
        setup.server.log()
    );
    // Read-only at the secondary: database, the application's account, the flag.
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    let refused = setup.pair.secondary.as_user(
        APP_USER,
        APP_PASSWORD,
        "INSERT INTO app.orders VALUES (1000000, 'at the secondary')",
    );
    let error = refused.expect_err("the application's INSERT at the secondary must fail");
    assert!(
        error.contains("read-only") || error.contains("read_only"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.flag()).expect("flag file"),
        "read-only\n"
    );

    // The journal shows read-only verified before the answers moved.
    let journal = setup.events();
    let seq = |event: &str| {
        journal
            .iter()
            .find(|e| e["event"] == event)
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {event} in the journal: {journal:#?}"))
    };
    assert!(seq("failover_started") < seq("database_read_only"));
    assert!(seq("database_read_only") < seq("flag_file"));
    assert!(seq("flag_file") < seq("failed_over"));
    assert!(seq("failed_over") < seq("answers_switched"));
    let audit = journal
        .iter()
        .find(|e| e["event"] == "grant_audit")
        .expect("a grant audit");
    assert_eq!(audit["outcome"], "ok", "{audit}");
    assert!(
        audit["summary"]
            .as_str()
            .unwrap_or("")
            .contains("no application account"),
        "{audit}"
    );

    // The primary recovers; replication catches up; fail-back, with
    // the writer still writing at the primary: no transaction of the
    // primary's may look missing or errant at the secondary.
    let before = writer.acked().len();
    setup.primary_web.set_healthy(true);
    assert!(
        wait_until(
            Duration::from_secs(30),
            || setup.status()["ready_for_failback"] == true
        ),
        "{}",
        setup.status()
    );
    setup.fail_back();
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert!(
        writer.acked().len() > before,
        "the writer was not writing while fail-back was prepared"
    );
    assert_eq!(
        setup.status()["replication"]["errant"],
        serde_json::json!([]),
        "{}",
        setup.status()["replication"]
    );
    let acked = writer.stop();
    // The flag stays until the TTL (5 s) and margin (1 s) have passed.
    assert!(
        setup.flag().exists(),
        "the flag was cleared before the TTL wait"
    );
    assert!(
        wait_until(Duration::from_secs(20), || !setup.flag().exists()),
        "the flag was not cleared:\n{}",
        setup.server.log()
    );
    assert!(setup.events().iter().any(|e| e["event"] == "flag_cleared"));
    // The database stays read-only: it is a replica again.
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");

    // Nothing lost: every acknowledged id at the primary, and at the
    // secondary once it has caught up.
    assert!(acked.len() > 20, "only {} writes", acked.len());
    assert_nothing_lost(&setup.pair, &acked);
    eprintln!("{} acknowledged writes, all at both databases", acked.len());
}

#[test]
fn an_errant_write_at_the_secondary_blocks_failback_even_behind_later_replicated_writes() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    let (code, reply) = setup.post("/api/v1/failover", r#"{"reason": "errant test"}"#);
    assert_eq!(code, 200, "{reply}");
    assert!(wait_until(
        Duration::from_secs(15),
        || setup.status()["active_role"] == "secondary"
    ));

    // A privileged account writes at the secondary despite read_only; with
    // strict mode off (MariaDB's default) replication goes on after it.
    setup.pair.secondary.must(
        "SET GLOBAL gtid_strict_mode = 0;
         INSERT INTO app.orders VALUES (424242, 'written at the secondary')",
    );
    let gtid = setup.pair.secondary.must("SELECT @@gtid_binlog_pos");
    assert!(
        gtid.contains("0-2-"),
        "the write made no GTID of the secondary's: {gtid}"
    );
    let named = |gtid: &str| {
        wait_until(Duration::from_secs(15), || {
            let (_, body) = setup.post("/api/v1/failback", r#"{"dry_run": true}"#);
            body.contains(&format!("errant GTID {gtid}"))
        })
    };
    assert!(named(&gtid), "{}", setup.status()["failback_prechecks"]);

    // Writes at the primary replicate after it: the secondary's position
    // now shows only the primary's GTID, which hides the errant one.
    for id in [500_001, 500_002] {
        setup
            .pair
            .primary
            .must(&format!("INSERT INTO app.orders VALUES ({id}, 'later')"));
    }
    setup.pair.catch_up();
    assert_eq!(
        setup.pair.secondary.must("SELECT @@gtid_binlog_pos"),
        setup.pair.primary.must("SELECT @@gtid_binlog_pos"),
        "the position no longer shows the errant write"
    );
    assert!(named(&gtid), "{}", setup.status()["failback_prechecks"]);
    let (code, reply) = setup.post("/api/v1/failback", "{}");
    assert_eq!(code, 409, "{reply}");
    assert!(reply.contains(&gtid), "{reply}");
    assert_eq!(
        a_records(setup.server.addr, "www.example.com."),
        [SECONDARY]
    );
}

#[test]
fn broken_replication_shows_in_the_status_and_metrics_with_the_server_error() {
    let setup = Setup::start(ADMIN_PASSWORD);
    setup.wait_healthy();
    // The same key written at the secondary (unlogged) and then at the
    // primary: the secondary's SQL thread stops on a duplicate key.
    setup
        .pair
        .secondary
        .must("SET SESSION sql_log_bin = 0; INSERT INTO app.orders VALUES (7, 'local')");
    setup
        .pair
        .primary
        .must("INSERT INTO app.orders VALUES (7, 'from the primary')");
    let broken = wait_until(Duration::from_secs(20), || {
        let r = &setup.status()["replication"];
        r["sql_running"] == false
            && r["last_sql_error"]
                .as_str()
                .unwrap_or("")
                .contains("Duplicate entry")
    });
    assert!(broken, "{}", setup.status()["replication"]);
    let (code, metrics) = http("GET", setup.api(), "/metrics", None, "");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("geofailover_replication_running{thread=\"sql\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("geofailover_replication_error{thread=\"sql\"")
                && l.contains("Duplicate entry")
        ),
        "{metrics}"
    );
}

#[test]
fn read_only_that_cannot_be_set_keeps_dns_on_the_primary_and_says_why() {
    let pair = Pair::start();
    let primary_web = StandIn::start(0);
    let secondary_web = StandIn::start(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = mysql_config(dir.path(), &pair, primary_web.port, secondary_web.port);
    // The checks log in with the right password; the secondary's admin
    // account, which sets read_only, with a wrong one.
    let text = std::fs::read_to_string(&config).expect("read");
    let at = text
        .rfind("password_env: GEOFAILOVER_DB_PASSWORD")
        .expect("the secondary's database");
    let text = format!(
        "{}password_env: GEOFAILOVER_ADMIN_PASSWORD{}",
        &text[..at],
        &text[at + "password_env: GEOFAILOVER_DB_PASSWORD".len()..]
    );
    std::fs::write(&config, text).expect("write");
    let server = Geofailover::start_with_env(
        &config,
        &[
            ("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD),
            ("GEOFAILOVER_ADMIN_PASSWORD", "not-the-admin-password"),
        ],
    );
    let api = server.http.expect("http");
    assert!(wait_until(Duration::from_secs(30), || {
        let st = status_json(api);
        st["sites"][0]["health"] == "healthy" && st["sites"][1]["health"] == "healthy"
    }));

    primary_web.set_healthy(false);
    let stopped = wait_until(Duration::from_secs(20), || {
        server.log().contains("failover stopped")
    });
    assert!(stopped, "{}", server.log());
    let log = server.log();
    assert!(
        log.contains("could not be verified") && log.contains("Access denied"),
        "{log}"
    );
    assert!(log.contains("DNS stays on primary"), "{log}");
    assert!(
        !log.contains("not-the-admin-password"),
        "the password was logged"
    );
    assert_eq!(a_records(server.addr, "www.example.com."), [PRIMARY]);
    assert_eq!(pair.secondary.must("SELECT @@read_only"), "0");
    assert!(
        !dir.path().join("state/READONLY").exists(),
        "the flag was set without read-only"
    );
    assert_eq!(status_json(api)["active_role"], "primary");
    let says_when = wait_until(Duration::from_secs(10), || {
        let decision = status_json(api)["last_decision"].clone();
        decision.as_str().unwrap_or("").contains("next attempt")
    });
    assert!(says_when, "{}", status_json(api));
    // Still down a few seconds later, still on the primary.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a_records(server.addr, "www.example.com."), [PRIMARY]);

    // The operator moves traffic anyway, knowingly.
    let (code, reply) = http(
        "POST",
        api,
        "/api/v1/failover",
        Some(&Geofailover::token(dir.path())),
        r#"{"reason": "primary down, read-only impossible", "operator": "dana", "force": true}"#,
    );
    assert_eq!(code, 200, "{reply}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            a_records(server.addr, "www.example.com.") == [SECONDARY]
        }),
        "{}",
        server.log()
    );
    let (_, events) = http("GET", api, "/api/v1/events?since=0", None, "");
    assert!(
        events.contains("read-only NOT verified") && events.contains("forced"),
        "{events}"
    );
    assert!(
        !events.contains("not-the-admin-password"),
        "the password reached the journal"
    );
    // Nothing pretends the database is read-only.
    assert_eq!(pair.secondary.must("SELECT @@read_only"), "0");
}

#[test]
fn sql_and_http_flags_are_set_read_back_and_undone_without_an_errant_gtid() {
    let switch = AppSwitch::start();
    let flags = r#"
      sql:
        enable: ["UPDATE app.settings SET value = '1' WHERE name = 'read_only'"]
        disable: ["UPDATE app.settings SET value = '0' WHERE name = 'read_only'"]
        verify: {query: "SELECT value FROM app.settings WHERE name = 'read_only'", expect: "1"}
"#
    .to_string()
        + &switch.config();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            let anchor = "        content: \"read-only\\n\"\n";
            assert!(config.contains(anchor), "no flag_file in the example");
            config.replacen(
                anchor,
                &format!("{anchor}{}", flags.trim_start_matches('\n')),
                1,
            )
        },
        |pair| {
            pair.primary.must(
                "CREATE TABLE app.settings (name VARCHAR(32) PRIMARY KEY, value VARCHAR(8));
                 INSERT INTO app.settings VALUES ('read_only', '0');
                 GRANT SELECT, UPDATE ON app.* TO 'geofailover'@'%';",
            );
            pair.catch_up();
        },
    );
    setup.wait_healthy();
    let gtid_before = setup.pair.secondary.must("SELECT @@gtid_binlog_pos");
    let setting = || {
        setup
            .pair
            .secondary
            .must("SELECT value FROM app.settings WHERE name = 'read_only'")
    };
    assert_eq!(setting(), "0");
    // The readiness checks looked at the switch (its status page, and a
    // connection to its host), changing nothing.
    assert!(
        wait_until(Duration::from_secs(10), || setup.status()["failover_ready"]
            ["ready"]
            == true),
        "{}",
        setup.status()["failover_ready"]
    );
    let earlier = switch.requests().len();
    assert!(
        switch.requests().iter().all(|r| !r.starts_with("POST")),
        "{:?}",
        switch.requests()
    );

    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    // Both flags set and read back before the answers moved.
    assert_eq!(setting(), "1");
    assert_eq!(
        switch.requests()[earlier..],
        ["POST /admin/read-only HTTP/1.1", "GET /status HTTP/1.1"]
    );
    let journal = setup.events();
    let seq = |name: &str| {
        journal
            .iter()
            .find(|e| e["event"] == name)
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {name} in {journal:?}"))
    };
    for step in ["flag_sql", "flag_http_call"] {
        assert!(seq(step) < seq("answers_switched"), "{step}");
    }
    // Run unlogged: the secondary has no transaction of its own.
    assert_eq!(
        setup.pair.secondary.must("SELECT @@gtid_binlog_pos"),
        gtid_before
    );

    setup.primary_web.set_healthy(true);
    setup.fail_back();
    // After the TTL wait, both undone.
    assert!(
        wait_until(Duration::from_secs(20), || setting() == "0"
            && switch.requests().len() == earlier + 3),
        "flags not undone: {} {:?}\n{}",
        setting(),
        switch.requests(),
        setup.server.log()
    );
    assert_eq!(
        switch.requests()[earlier + 2],
        "POST /admin/read-write HTTP/1.1"
    );
    // The clears are journalled once their steps report back, just
    // after their effects can be seen.
    for event in ["clear_flag_sql", "clear_flag_http_call", "flag_cleared"] {
        assert!(
            wait_until(Duration::from_secs(10), || setup
                .events()
                .iter()
                .any(|e| e["event"] == event)),
            "no {event} in {:?}",
            setup.events()
        );
    }
    assert_eq!(
        setup.pair.secondary.must("SELECT @@gtid_binlog_pos"),
        gtid_before,
        "the undo wrote a transaction of the secondary's own"
    );
}

#[test]
fn strict_grants_stop_a_failover_and_the_webhook_hears_why() {
    let hook = WebhookSink::start();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            let lenient = "strict_grants: false";
            assert!(config.contains(lenient), "no strict_grants in the example");
            config.replacen(lenient, "strict_grants: true", 1) + &hook.config()
        },
        // The application's account could write despite read_only.
        |pair| {
            pair.primary
                .must(&format!("GRANT READ_ONLY ADMIN ON *.* TO '{APP_USER}'@'%'"));
            pair.catch_up();
        },
    );
    setup.wait_healthy();
    setup.primary_web.set_healthy(false);
    assert!(
        hook.heard("\"event\":\"action_failed\""),
        "{:?}\n{}",
        hook.received(),
        setup.server.log()
    );
    let message = hook
        .received()
        .into_iter()
        .find(|r| r.contains("action_failed"))
        .unwrap_or_default();
    assert!(
        message.contains("strict_grants") && message.contains("app@%"),
        "{message}"
    );
    assert!(message.contains("DNS stays on primary"), "{message}");
    assert_eq!(a_records(setup.server.addr, "www.example.com."), [PRIMARY]);
    assert_eq!(setup.status()["active_role"], "primary");
    assert!(!setup.flag().exists(), "the flag was set");
    let journal = setup.events();
    let audit = journal
        .iter()
        .find(|e| e["event"] == "grant_audit")
        .expect("a grant audit");
    assert!(
        audit["outcome"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed"),
        "{audit}"
    );

    // The engine tries again 30 s later and stops the same way; the
    // webhook is not told twice about the same outage.
    let stopped_twice = wait_until(Duration::from_secs(50), || {
        setup
            .events()
            .iter()
            .filter(|e| e["event"] == "failover_aborted")
            .count()
            >= 2
    });
    assert!(stopped_twice, "{:?}", setup.events());
    let told = || {
        hook.received()
            .iter()
            .filter(|r| r.contains("\"event\":\"action_failed\""))
            .count()
    };
    // Delivery is in the background: give a second message time to come.
    let told_again = wait_until(Duration::from_secs(3), || told() > 1);
    assert!(!told_again, "{:?}", hook.received());
    assert_eq!(told(), 1, "{:?}", hook.received());
}

#[test]
fn a_flag_that_cannot_be_cleared_is_notified_and_cleared_on_the_retry() {
    let switch = AppSwitch::start();
    let hook = WebhookSink::start();
    let setup = Setup::start_edited(
        ADMIN_PASSWORD,
        |config| {
            let anchor = "        content: \"read-only\\n\"\n";
            assert!(config.contains(anchor), "no flag_file in the example");
            config.replacen(anchor, &format!("{anchor}{}", switch.config()), 1) + &hook.config()
        },
        |_| {},
    );
    setup.wait_healthy();
    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    // The application will not leave read-only mode for now.
    switch.refusing.store(true, Ordering::Relaxed);
    setup.primary_web.set_healthy(true);
    setup.fail_back();
    assert!(
        hook.heard("the application flag could not be cleared"),
        "{:?}\n{}",
        hook.received(),
        setup.server.log()
    );
    let failed = setup
        .events()
        .into_iter()
        .find(|e| e["event"] == "clear_flag_http_call")
        .expect("a clear_flag_http_call entry");
    assert!(
        failed["outcome"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed"),
        "{failed}"
    );
    assert!(
        failed["summary"].as_str().unwrap_or("").contains("503"),
        "{failed}"
    );

    // The application is ready again: the retry, a minute later, clears it.
    switch.refusing.store(false, Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(90), || setup
            .events()
            .iter()
            .any(|e| e["event"] == "flag_cleared")),
        "{:?}",
        switch.requests()
    );
    let undo = "POST /admin/read-write HTTP/1.1".to_string();
    assert!(
        switch.requests().iter().filter(|r| **r == undo).count() >= 2,
        "{:?}",
        switch.requests()
    );
}
