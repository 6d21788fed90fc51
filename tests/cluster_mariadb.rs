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
