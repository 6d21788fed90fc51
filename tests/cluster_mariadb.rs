//! Several nodes and real databases: the cluster of config/
//! example-cluster.yaml, with the sites' MariaDB pair of
//! config/example-mysql.yaml (real GTID replication), and a writer
//! counting acknowledged rows at the primary.

mod common;

use std::{path::Path, time::Duration};

use common::{
    cluster::Cluster,
    mariadb::{ADMIN_PASSWORD, Pair, Writer, assert_nothing_lost, mysql_example},
    wait_until,
};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

/// The cluster config with the failover and sites of
/// config/example-mysql.yaml, on `pair`'s ports.
fn with_databases(config: String, pair: &Pair, dir: &Path) -> String {
    // The stand-in sites' addresses, as the cluster config has them.
    let address_of = |site: &str| {
        let at = config.find(&format!("name: {site}\n")).expect("site");
        let url = &config[at..];
        let url = &url[url.find("url: http://").expect("url") + 12..];
        url[..url.find('/').expect("path")].to_string()
    };
    let mysql = mysql_example(pair, dir, &address_of("primary"), &address_of("secondary"));
    let sites = &mysql[mysql.find("failover:").expect("failover")..];
    let head = &config[..config.find("failover:").expect("failover")];
    format!("{head}{sites}")
}

#[test]
fn the_primary_dies_under_a_writer_one_failover_read_only_set_once_and_nothing_acknowledged_lost() {
    let pair = Pair::start();
    let flags = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start_with(
        |config| with_databases(config, &pair, flags.path()),
        &[("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)],
    );
    assert!(
        cluster
            .wait_all_answer(PRIMARY, Duration::from_secs(10))
            .is_some()
    );

    let writer = Writer::start(pair.primary.port, 20);

    cluster.primary.set_healthy(false);
    cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    assert_eq!(pair.secondary.must("SELECT @@read_only"), "1");
    let leader = cluster.leader().expect("a leader");
    assert!(wait_until(Duration::from_secs(5), || cluster
        .events(&leader)
        .iter()
        .any(|e| e["event"] == "failed_over")));
    let events = cluster.events(&leader);
    let count = |event: &str| events.iter().filter(|e| e["event"] == event).count();
    assert_eq!(count("failed_over"), 1, "{events:#?}");
    assert_eq!(
        count("database_read_only"),
        1,
        "read-only set more than once: {events:#?}"
    );
    for node in ["ns1", "ns2", "witness"] {
        assert_eq!(cluster.status_json(node)["epoch"], 1, "{node}");
    }

    // The primary comes back; fail-back at a follower; nothing lost.
    cluster.primary.set_healthy(true);
    let follower = ["ns1", "ns2", "witness"]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a follower");
    assert!(
        wait_until(Duration::from_secs(40), || {
            let (_, body) = cluster.post(follower, "/api/v1/failback", r#"{"dry_run": true}"#);
            body.contains("\"accepted\":true")
        }),
        "{}",
        cluster.status_json(follower)["failback_prechecks"]
    );
    let (code, reply) = cluster.post(follower, "/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    let acked = writer.stop();
    assert_nothing_lost(&pair, &acked);
    eprintln!("{} acknowledged writes, all at both databases", acked.len());
}

/// `mode: promote` on a cluster whose primary-site node ns1 sits in a
/// network namespace of its own, the databases reachable from it at the
/// namespace link's host address `host` (and at 127.0.0.1).
fn promote_cluster(after: &str) -> (Cluster, Pair) {
    use common::mariadb::{REPL_PASSWORD, grant_promotion, promote_mode, semi_sync};
    // SAFETY: the same constant values for every test of this binary,
    // set before the nodes (which inherit them) start.
    unsafe {
        std::env::set_var("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD);
        std::env::set_var("GEOFAILOVER_REPL_PASSWORD", REPL_PASSWORD);
    }
    let flags = tempfile::tempdir().expect("tempdir");
    let mut started = None;
    let cluster = Cluster::start_apart("ns1", |config, host| {
        let mut extra = semi_sync();
        extra.push(format!("--bind-address=127.0.0.1,{host}"));
        let pair = Pair::start_with(&extra);
        grant_promotion(&pair);
        let config = with_databases(config, &pair, flags.path())
            .replace(
                &format!("127.0.0.1:{}", pair.primary.port),
                &format!("{host}:{}", pair.primary.port),
            )
            .replace(
                &format!("127.0.0.1:{}", pair.secondary.port),
                &format!("{host}:{}", pair.secondary.port),
            );
        started = Some(pair);
        promote_mode(after)(config)
    });
    std::mem::forget(flags);
    (cluster, started.expect("the pair"))
}

/// `@@read_only` at `db`; empty while the query's connection is killed
/// by a fence.
fn read_only(db: &common::mariadb::MariaDb) -> String {
    db.root("SELECT @@read_only").unwrap_or_default()
}

/// The promotion as the node that leads now shows it (a node cut off
/// may still think another leads).
fn leader_promotion(cluster: &Cluster) -> serde_json::Value {
    ["ns1", "ns2", "witness"]
        .iter()
        .filter_map(|n| cluster.status(n))
        .find(|s| s["cluster"]["leading"] == true)
        .map(|s| s["promotion"].clone())
        .unwrap_or_default()
}

/// Waits until the leader reads RPO 0 (semi-sync AFTER_SYNC, the
/// secondary acknowledging).
fn wait_rpo_zero(cluster: &Cluster) {
    assert!(
        wait_until(
            Duration::from_secs(20),
            || leader_promotion(cluster)["rpo_zero"] == true
        ),
        "{}",
        leader_promotion(cluster)
    );
}

/// Waits until the leader shows the promotion at `stage`.
fn wait_leader_stage(cluster: &Cluster, stage: &str, within: Duration) {
    assert!(
        wait_until(within, || leader_promotion(cluster)["stage"] == stage),
        "never {stage}: {}\n{}",
        leader_promotion(cluster),
        cluster.logs()
    );
}

/// Each of `events` exactly once in the shared journal, as `leader`
/// serves it; read once it has the last of them (the journal follows the
/// state through etcd).
fn once_each(cluster: &Cluster, leader: &str, events: &[&str]) {
    let last = events.last().copied().unwrap_or_default();
    let mut journal = cluster.events(leader);
    wait_until(Duration::from_secs(10), || {
        journal = cluster.events(leader);
        journal.iter().any(|e| e["event"] == last)
    });
    for word in events {
        let count = journal.iter().filter(|e| e["event"] == *word).count();
        assert_eq!(count, 1, "{word}: {journal:?}");
    }
}

/// The cluster on loopback over a semi-synchronous pair in `mode:
/// promote` (promotion after 3 s), the config edited by `edit` last;
/// returns once the leader reads RPO 0.
fn promote_cluster_on_loopback(edit: impl FnOnce(String) -> String) -> (Cluster, Pair) {
    promote_cluster_on_loopback_with(&[], |_| {}, edit)
}

/// `promote_cluster_on_loopback`, the servers started with `extra`
/// options too and `prepare` run on them first.
fn promote_cluster_on_loopback_with(
    extra: &[&str],
    prepare: impl FnOnce(&Pair),
    edit: impl FnOnce(String) -> String,
) -> (Cluster, Pair) {
    use common::mariadb::{REPL_PASSWORD, grant_promotion, promote_mode, semi_sync};
    // SAFETY: as in `promote_cluster`.
    unsafe {
        std::env::set_var("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD);
        std::env::set_var("GEOFAILOVER_REPL_PASSWORD", REPL_PASSWORD);
    }
    let mut options = semi_sync();
    options.extend(extra.iter().map(|o| o.to_string()));
    let pair = Pair::start_with(&options);
    grant_promotion(&pair);
    prepare(&pair);
    let flags = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(|config| {
        edit(promote_mode("3s")(with_databases(
            config,
            &pair,
            flags.path(),
        )))
    });
    std::mem::forget(flags);
    wait_rpo_zero(&cluster);
    (cluster, pair)
}

#[test]
fn cut_from_the_cluster_the_primary_node_fences_its_database_and_the_secondary_is_promoted_without_reaching_it()
 {
    let (mut cluster, mut pair) = promote_cluster("8s");
    assert!(
        cluster
            .wait_all_answer(PRIMARY, Duration::from_secs(20))
            .is_some(),
        "{}",
        cluster.logs()
    );
    wait_rpo_zero(&cluster);
    let writer = Writer::start(pair.primary.port, 20);
    let cut = std::time::Instant::now();
    cluster.cut_from_etcd(true);
    // ns1 fences its own database within fence_after (1 s) of noticing.
    assert!(
        wait_until(Duration::from_secs(20), || read_only(&pair.primary) == "1"),
        "ns1 never fenced its database:\n{}",
        cluster.logs()
    );
    let fenced = std::time::Instant::now();
    eprintln!(
        "self-fenced {} ms after the cut",
        (fenced - cut).as_millis()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        writer.acked_since(fenced),
        0,
        "a write was acknowledged at the old primary after its fence"
    );
    let acked = writer.stop();
    assert!(
        cluster
            .status("ns1")
            .is_some_and(|s| s["promotion"]["self_fenced"].is_string())
    );

    // The primary's site goes: its database with it. The others cannot
    // reach it, so the promotion rests on ns1's self-fence.
    pair.primary.crash();
    cluster.primary.set_healthy(false);
    wait_leader_stage(&cluster, "promoted", Duration::from_secs(60));
    let promotion = leader_promotion(&cluster);
    assert!(
        promotion["fence"]
            .as_str()
            .unwrap_or("")
            .contains("the primary site's node has been gone"),
        "{promotion}"
    );
    assert_eq!(pair.secondary.must("SELECT @@read_only"), "0");
    let at_new = common::mariadb::ids(&pair.secondary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_new.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged write(s) lost: {lost:?}");

    // ns1 comes back: the agreed promotion keeps its fence; the old
    // primary, restarted, is rejoined.
    cluster.cut_from_etcd(false);
    pair.primary.restart();
    wait_leader_stage(&cluster, "rejoined", Duration::from_secs(60));
    assert_eq!(pair.primary.must("SELECT @@read_only"), "1");
    let _ = &mut cluster;
}

#[test]
fn a_primary_node_cut_off_briefly_fences_its_database_and_lifts_the_fence_when_back_without_a_promotion()
 {
    let (cluster, pair) = promote_cluster("5m");
    assert!(
        cluster
            .wait_all_answer(PRIMARY, Duration::from_secs(20))
            .is_some()
    );
    let writer = Writer::start(pair.primary.port, 20);
    cluster.cut_from_etcd(true);
    assert!(
        wait_until(Duration::from_secs(20), || read_only(&pair.primary) == "1"),
        "ns1 never fenced its database:\n{}",
        cluster.logs()
    );
    let fenced = std::time::Instant::now();
    cluster.cut_from_etcd(false);
    // Back, and no promotion agreed: the fence is lifted after a lease
    // and a margin.
    assert!(
        wait_until(Duration::from_secs(30), || read_only(&pair.primary) == "0"),
        "the self-fence was never lifted:\n{}",
        cluster.logs()
    );
    assert!(
        wait_until(Duration::from_secs(10), || writer.acked_since(fenced) > 10),
        "writes did not resume at the primary"
    );
    let acked = writer.stop();
    assert_nothing_lost(&pair, &acked);
    // The leader lifted it; ns1 reads that and drops its mark.
    for line in [
        "cut from the cluster: this site's database fenced",
        "back in the cluster, no promotion agreed: the leader lifted the fence",
    ] {
        assert!(
            wait_until(Duration::from_secs(20), || cluster
                .server("ns1")
                .log()
                .contains(line)),
            "ns1's log does not say `{line}`:\n{}",
            cluster.server("ns1").log()
        );
    }
    assert!(
        cluster
            .answers()
            .iter()
            .all(|(_, a)| a == &[PRIMARY.to_string()]),
        "{:?}",
        cluster.answers()
    );
}

#[test]
fn the_leader_killed_mid_promotion_the_next_leader_finishes_it_once_and_nothing_acknowledged_is_lost()
 {
    let (mut cluster, pair) = promote_cluster_on_loopback(|config| config);
    // The secondary applies what it receives 8 s late (it still
    // acknowledges at once): a promotion waits that long for its relay log.
    pair.secondary
        .must("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=8; START SLAVE");
    wait_rpo_zero(&cluster);
    let writer = Writer::start(pair.primary.port, 20);
    cluster.primary.set_healthy(false);
    let first = {
        let mut found = None;
        let promoting = wait_until(Duration::from_secs(40), || {
            found = ["ns1", "ns2", "witness"].into_iter().find(|n| {
                cluster.status(n).is_some_and(|s| {
                    s["cluster"]["leading"] == true && s["promotion"]["stage"] == "promoting"
                })
            });
            found.is_some()
        });
        assert!(promoting, "never promoting:\n{}", cluster.logs());
        found.expect("the leader")
    };
    cluster.kill(first);
    let acked = writer.stop();
    wait_leader_stage(&cluster, "promoted", Duration::from_secs(40));
    let leader = cluster.leader().expect("a leader");
    assert_ne!(leader, first);
    let log = cluster.server(&leader).log();
    assert!(
        log.contains("resuming the promotion"),
        "{leader} did not resume the promotion:\n{log}"
    );
    once_each(
        &cluster,
        &leader,
        &[
            "promotion_started",
            "promote_secondary_database",
            "promoted",
        ],
    );
    assert_eq!(pair.secondary.must("SELECT @@read_only"), "0");
    let at_new = common::mariadb::ids(&pair.secondary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_new.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged write(s) lost: {lost:?}");
}

#[test]
fn the_leader_killed_mid_switchover_the_next_leader_finishes_it_once_and_nothing_acknowledged_is_lost()
 {
    use std::sync::atomic::Ordering;
    // The secondary's application switch: hung on request, it holds the
    // switchover after the secondary's database is fenced.
    let switch = common::AppSwitch::start();
    let (mut cluster, pair) = promote_cluster_on_loopback(|text| {
        let anchor = "        content: \"read-only\\n\"\n";
        let at = text.rfind(anchor).expect("the secondary's flag file") + anchor.len();
        format!("{}{}{}", &text[..at], switch.config(), &text[at..])
    });
    // Promoted (the old primary reachable, so fenced first) and rejoined.
    cluster.primary.set_healthy(false);
    wait_leader_stage(&cluster, "rejoined", Duration::from_secs(60));
    cluster.primary.set_healthy(true);
    let writer = Writer::start_following(vec![pair.secondary.port, pair.primary.port], 20);
    let asked = || {
        switch
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST /admin/read-only"))
            .count()
    };
    let before = asked();
    switch.hanging.store(true, Ordering::Relaxed);
    let first = cluster.leader().expect("a leader");
    let accepted = wait_until(Duration::from_secs(30), || {
        let (_, body) = cluster.post(&first, "/api/v1/failback", r#"{"dry_run": true}"#);
        body.contains("\"accepted\":true")
            && cluster
                .post(&first, "/api/v1/failback", r#"{"operator": "erin"}"#)
                .0
                == 200
    });
    assert!(
        accepted,
        "{}",
        cluster.status_json(&first)["failback_prechecks"]
    );
    // The switchover holds at the secondary's application flag, its
    // database already fenced: the leader dies there.
    assert!(
        wait_until(Duration::from_secs(20), || asked() > before),
        "{}",
        cluster.logs()
    );
    assert_eq!(
        cluster.status_json(&first)["promotion"]["stage"],
        "switching_back"
    );
    cluster.kill(&first);
    switch.hanging.store(false, Ordering::Relaxed);
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    let leader = cluster.leader().expect("a leader");
    assert_ne!(leader, first);
    let log = cluster.server(&leader).log();
    assert!(
        log.contains("resuming the switchover back"),
        "{leader} did not resume the switchover:\n{log}"
    );
    // Writes resume at the primary; none acknowledged is lost.
    let resumed = writer.acked().len();
    assert!(
        wait_until(Duration::from_secs(20), || writer.acked().len()
            >= resumed + 20),
        "writes did not resume"
    );
    let acked = writer.stop();
    assert_eq!(read_only(&pair.primary), "0");
    assert_eq!(read_only(&pair.secondary), "1");
    let at_primary = common::mariadb::ids(&pair.primary);
    let lost: Vec<&u32> = acked.iter().filter(|id| !at_primary.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged write(s) lost: {lost:?}");
    // One switchover in the shared journal, its primary promoted once.
    once_each(
        &cluster,
        &leader,
        &[
            "switchback_started",
            "promote_primary_database",
            "failed_back",
        ],
    );
}

#[test]
fn with_the_heartbeat_fence_a_hung_primary_node_has_its_database_fenced_by_the_database_and_the_leader_lifts_it_when_back()
 {
    let (mut cluster, pair) = promote_cluster_on_loopback_with(
        &["--event-scheduler=ON"],
        |pair| {
            pair.primary.must(&format!(
                "GRANT ALL ON geofailover_fence.* TO '{}'@'%'",
                common::mariadb::ADMIN_USER
            ));
            pair.catch_up();
        },
        |text| {
            text.replace(
                "  mode: promote\n",
                "  mode: promote\n  fence_heartbeat: true\n  readiness_interval: 1s\n",
            )
        },
    );
    // The readiness checks see the heartbeat beat.
    let item = || {
        let leader = cluster.leader().unwrap_or_default();
        cluster.status(&leader).and_then(|s| {
            s["failover_ready"]["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|i| i["name"] == "fence heartbeat at primary")
                    .cloned()
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || item()
            .is_some_and(|i| i["ok"] == true)),
        "{:?}\n{}",
        item(),
        cluster.logs()
    );
    // Nothing of it reached the replica: no table, no GTID of its own.
    assert_eq!(
        pair.secondary
            .must("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'geofailover_fence'"),
        "0"
    );
    let writer = Writer::start(pair.primary.port, 20);
    // An application session that stays open: the fence ends it.
    let (ended, session) = std::sync::mpsc::channel();
    let port = pair.primary.port;
    std::thread::spawn(move || {
        let result = common::mariadb::as_user_at(
            port,
            common::mariadb::APP_USER,
            common::mariadb::APP_PASSWORD,
            "SELECT SLEEP(120)",
        );
        let _ = ended.send(result);
    });
    assert!(
        wait_until(Duration::from_secs(10), || pair.primary.must(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(120)'"
        ) == "1"),
        "the application session never ran"
    );
    // ns1 hangs: it beats no more, and the database fences itself.
    cluster.freeze("ns1");
    assert!(
        wait_until(Duration::from_secs(15), || read_only(&pair.primary) == "1"),
        "the primary's database was not fenced by its event:\n{}",
        cluster.logs()
    );
    let killed = session
        .recv_timeout(Duration::from_secs(10))
        .expect("the open session was not ended by the fence");
    assert!(
        killed
            .as_ref()
            .is_err_and(|e| e.contains("Lost connection") || e.contains("interrupted")),
        "{killed:?}"
    );
    let fenced_at = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || writer
            .acked_since(fenced_at + Duration::from_millis(200))
            == 0
            && !writer.acked().is_empty()),
        "writes still acknowledged at a fenced primary"
    );
    // Back: the node finds what the event did, and the leader, with no
    // promotion agreed (the primary site stayed healthy), lifts it.
    cluster.thaw("ns1");
    assert!(
        wait_until(Duration::from_secs(40), || read_only(&pair.primary) == "0"),
        "the fence was not lifted:\n{}",
        cluster.logs()
    );
    let before = writer.acked().len();
    assert!(
        wait_until(Duration::from_secs(15), || writer.acked().len()
            >= before + 20),
        "writes did not resume"
    );
    let acked = writer.stop();
    pair.catch_up();
    let at_secondary = common::mariadb::ids(&pair.secondary);
    assert!(acked.iter().all(|id| at_secondary.contains(id)));
    let log = cluster.server("ns1").log();
    assert!(log.contains("fenced by its heartbeat event"), "{log}");
    let _ = &mut cluster;
}

#[test]
fn a_drill_in_promote_mode_runs_through_the_leader_and_loses_none_of_its_writes() {
    // SAFETY: set before the nodes (which inherit it) start.
    unsafe { std::env::set_var("GEOFAILOVER_DRILL_PASSWORD", "drill-secret-1234") };
    let (cluster, pair) = promote_cluster_on_loopback_with(
        &[],
        |pair| {
            pair.primary
                .must("CREATE USER 'drill'@'%' IDENTIFIED BY 'drill-secret-1234'");
            pair.primary
                .must("GRANT CREATE, INSERT, SELECT, DELETE ON geofailover_drill.* TO 'drill'@'%'");
            pair.catch_up();
        },
        |text| {
            let edited = text.replace(
                "  hold: 30s ",
                "  writer:\n    user: drill\n    password_env: GEOFAILOVER_DRILL_PASSWORD\n  hold: 30s ",
            );
            assert!(edited.contains("writer:"), "{edited}");
            edited
        },
    );
    // Asked of a follower, run by the leader.
    let leader = cluster.leader().expect("a leader");
    let follower = ["ns1", "ns2", "witness"]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a follower");
    let (code, reply) = cluster.post(follower, "/api/v1/drill", r#"{"hold": "2s"}"#);
    assert_eq!(code, 202, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("json");
    let id = reply["id"].as_str().expect("an id").to_string();
    let ended = wait_until(Duration::from_secs(180), || {
        cluster
            .status(&leader)
            .is_some_and(|s| s["drill"].is_null() && s["last_drill"]["id"] == id)
    });
    assert!(ended, "the drill did not end:\n{}", cluster.logs());
    let (code, body) = common::http(
        "GET",
        cluster.node(&leader).http,
        "/api/v1/drill/last",
        None,
        "",
    );
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("report");
    assert_eq!(report["result"], "pass", "{report:#}");
    assert_eq!(report["promoted"], true, "{report:#}");
    let writes = &report["writes"];
    assert_eq!(writes["lost"], 0, "{writes:#}");
    assert_eq!(writes["missing_at_replica"], 0, "{writes:#}");
    assert!(
        writes["at_secondary"].as_u64().unwrap_or(0) > 0,
        "{writes:#}"
    );
    // Every node's DNS was verified at each switch; back on the primary.
    assert!(
        report["nameservers"]
            .as_array()
            .is_some_and(|n| n.len() >= 2),
        "{report:#}"
    );
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}", cluster.answers()));
    assert_eq!(read_only(&pair.primary), "0");
    assert_eq!(read_only(&pair.secondary), "1");
}
