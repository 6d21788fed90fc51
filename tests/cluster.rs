//! Several nameservers, one decision: three real geofailover nodes (one
//! per site and a witness, config/example-cluster.yaml) agreeing through a
//! real three-member etcd on loopback, with stand-in sites.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::cluster::Cluster;

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

#[test]
fn the_primary_dies_one_failover_and_every_node_answers_the_secondary_with_one_serial() {
    let cluster = Cluster::start(|config| config);
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    cluster.primary.set_healthy(false);
    let after = cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    assert!(after > serial, "serial {serial} -> {after}");
    // One failover, one epoch, decided once, seen alike from every node
    // (the shared journal follows the answers within moments).
    for node in ["ns1", "ns2", "witness"] {
        let status = cluster.status_json(node);
        assert_eq!(status["epoch"], 1, "{node}: {status}");
        assert_eq!(status["active_role"], "secondary", "{node}");
        let failovers = || -> Vec<serde_json::Value> {
            cluster
                .events(node)
                .into_iter()
                .filter(|e| e["event"] == "failed_over")
                .collect()
        };
        assert!(
            common::wait_until(Duration::from_secs(5), || !failovers().is_empty()),
            "{node}: {:#?}",
            cluster.events(node)
        );
        let failovers = failovers();
        assert_eq!(failovers.len(), 1, "{node}: {failovers:#?}");
        assert_eq!(failovers[0]["epoch"], 1);
    }
}

/// The records' TTL at 5 s, so a drill's drain is short.
fn short_ttl(config: String) -> String {
    config.replace("      ttl: 30\n", "      ttl: 5\n")
}

#[test]
fn pause_failback_and_a_drill_given_at_followers_are_carried_out_by_the_leader() {
    let cluster = Cluster::start(short_ttl);
    let leader = cluster.leader().expect("a leader");
    let followers: Vec<&str> = ["ns1", "ns2", "witness"]
        .into_iter()
        .filter(|n| *n != leader)
        .collect();

    // Pause at a follower: every node shows it, the primary's outage is
    // then not acted on.
    let (code, reply) = cluster.post(followers[0], "/api/v1/pause", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    for node in ["ns1", "ns2", "witness"] {
        assert!(
            common::wait_until(
                Duration::from_secs(5),
                || cluster.status_json(node)["paused"] == true
            ),
            "{node}"
        );
    }
    let (code, reply) = cluster.post(followers[1], "/api/v1/resume", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");

    // A drill asked of a follower runs at the leader and verifies every
    // node's answers.
    let (code, reply) = cluster.post(
        followers[1],
        "/api/v1/drill",
        r#"{"hold": "2s", "operator": "dana"}"#,
    );
    assert_eq!(code, 202, "{reply}");
    let passed = common::wait_until(Duration::from_secs(60), || {
        cluster.status_json(followers[0])["last_drill"]["result"] == "pass"
            || cluster.status_json(&leader)["last_drill"]["result"] == "pass"
    });
    let report = common::http(
        "GET",
        cluster.node(&leader).http,
        "/api/v1/drill/last",
        None,
        "",
    )
    .1;
    assert!(passed, "{report}\n{}", cluster.logs());
    for node in ["ns1", "ns2"] {
        let address = cluster.node(node).dns.expect("dns").to_string();
        assert!(
            report.contains(&address),
            "the drill did not verify {node}: {report}"
        );
    }
    assert!(
        cluster
            .wait_all_answer(PRIMARY, Duration::from_secs(10))
            .is_some()
    );

    // A real outage, and the fail-back asked of a follower.
    cluster.primary.set_healthy(false);
    cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    cluster.primary.set_healthy(true);
    assert!(common::wait_until(Duration::from_secs(20), || {
        cluster.status_json(followers[0])["ready_for_failback"] == true
    }));
    let (code, reply) = cluster.post(followers[0], "/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
}

#[test]
fn without_etcd_quorum_every_node_keeps_its_answer_decides_nothing_and_says_so() {
    let mut cluster = Cluster::start(|config| config);
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    cluster.etcd.members[0].kill();
    cluster.etcd.members[1].kill();
    for node in ["ns1", "ns2", "witness"] {
        assert!(
            common::wait_until(Duration::from_secs(15), || {
                cluster
                    .status(node)
                    .is_some_and(|s| s["cluster"]["etcd"]["up"] == false)
            }),
            "{node} does not say etcd is gone:\n{}",
            cluster.logs()
        );
        // The leader stops deciding before its lease can have expired.
        let stopped = common::wait_until(Duration::from_secs(5), || {
            let (_, metrics) = common::http("GET", cluster.node(node).http, "/metrics", None, "");
            metrics.contains("geofailover_etcd_up 0") && metrics.contains("geofailover_leader 0")
        });
        assert!(stopped, "{node}:\n{}", cluster.logs());
    }
    // The primary fails meanwhile: nobody decides, every node keeps the
    // last agreed answer.
    cluster.primary.set_healthy(false);
    let moved = common::wait_until(Duration::from_secs(6), || {
        cluster.answers().iter().any(|(_, a)| a != &[PRIMARY])
    });
    assert!(!moved, "{:?}", cluster.answers());
    cluster.primary.set_healthy(true);

    // Quorum back: a leader again, and no move.
    cluster.etcd.members[0].restart();
    cluster.etcd.members[1].restart();
    cluster.wait_settled();
    assert_eq!(
        cluster.wait_all_answer(PRIMARY, Duration::from_secs(5)),
        Some(serial),
        "{:?}",
        cluster.answers()
    );
    for node in ["ns1", "ns2", "witness"] {
        assert_eq!(cluster.status_json(node)["epoch"], 0, "{node}");
    }
}

/// Waits until the running nodes agree on a leader other than `old`.
fn new_leader(cluster: &Cluster, old: &str) -> String {
    let mut leader = None;
    let found = common::wait_until(Duration::from_secs(20), || {
        leader = cluster.leader().filter(|l| l != old);
        leader.is_some()
    });
    assert!(found, "no new leader after {old}:\n{}", cluster.logs());
    leader.unwrap_or_default()
}

#[test]
fn the_leader_killed_between_read_only_and_activation_another_node_finishes_without_redoing_it() {
    let switch = common::AppSwitch::start();
    let mut cluster = Cluster::start(|config| Cluster::with_flags(config, &switch));
    let leader = cluster.leader().expect("a leader");
    // The application hangs when asked to go read-only: the failover is
    // held after the flag file is set, before DNS moves.
    switch.hanging.store(true, Ordering::Relaxed);
    cluster.primary.set_healthy(false);
    assert!(
        common::wait_until(Duration::from_secs(20), || switch
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /admin/read-only"))),
        "{}",
        cluster.logs()
    );
    assert!(cluster.flag_file().exists());
    cluster.kill(&leader);
    let successor = new_leader(&cluster, &leader);
    switch.hanging.store(false, Ordering::Relaxed);
    cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));

    // The shared journal follows the answers within moments.
    assert!(common::wait_until(Duration::from_secs(5), || cluster
        .events(&successor)
        .iter()
        .any(|e| e["event"] == "failed_over")));
    let events = cluster.events(&successor);
    let named = |event: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == event).collect()
    };
    assert_eq!(named("failover_resumed").len(), 1, "{events:#?}");
    // The flag file, set by the first leader, was read back, not set again.
    let flag_file = named("flag_file");
    assert_eq!(flag_file.len(), 2, "{flag_file:#?}");
    assert!(
        flag_file[1]["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("verified, set earlier"),
        "{flag_file:#?}"
    );
    let failed_over = named("failed_over");
    assert_eq!(failed_over.len(), 1, "{events:#?}");
    assert_eq!(failed_over[0]["epoch"], 1);
    for node in ["ns1", "ns2", "witness"]
        .into_iter()
        .filter(|n| *n != leader)
    {
        assert_eq!(cluster.status_json(node)["epoch"], 1, "{node}");
    }
}

#[test]
fn a_paused_old_leader_cannot_write_once_another_leads() {
    let switch = common::AppSwitch::start();
    let mut cluster = Cluster::start(|config| Cluster::with_flags(config, &switch));
    let leader = cluster.leader().expect("a leader");
    switch.hanging.store(true, Ordering::Relaxed);
    cluster.primary.set_healthy(false);
    assert!(common::wait_until(Duration::from_secs(20), || switch
        .requests()
        .iter()
        .any(|r| r.starts_with("POST /admin/read-only"))));
    // The leader stops in the middle of its failover (a long pause, or a
    // partition): its lease runs out and another node leads and finishes.
    cluster.freeze(&leader);
    let successor = new_leader(&cluster, &leader);
    switch.hanging.store(false, Ordering::Relaxed);
    let serial = cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    let agreed = cluster.status_json(&successor);

    // The old leader goes on where it stopped: it finds it no longer
    // leads (its lease is gone, or its write is refused: whichever comes
    // first) and changes nothing of the agreed state.
    cluster.thaw(&leader);
    let stopped = cluster
        .server(&leader)
        .wait_for_log("this node is no longer the leader", 1);
    assert!(stopped, "{}", cluster.server(&leader).log());
    assert_eq!(
        cluster.wait_all_answer(SECONDARY, Duration::from_secs(10)),
        Some(serial),
        "{:?}",
        cluster.answers()
    );
    let now = cluster.status_json(&successor);
    assert_eq!(now["epoch"], agreed["epoch"]);
    assert_eq!(now["cluster"]["leader"], successor.as_str());
    assert_eq!(cluster.status_json(&leader)["cluster"]["leading"], false);
}

#[test]
fn the_primary_sites_node_and_etcd_member_die_with_the_primary_and_the_others_fail_over() {
    let mut cluster = Cluster::start(|config| config);
    cluster.kill("ns1");
    cluster.etcd.members[0].kill();
    cluster.primary.set_healthy(false);
    cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    let status = cluster.status_json("ns2");
    assert_eq!(status["epoch"], 1, "{status}");
    assert_ne!(status["cluster"]["leader"], "ns1");
}

#[test]
fn one_vantage_point_cut_off_from_the_primary_causes_no_failover_and_is_named() {
    let cluster = Cluster::start_apart("ns2", |config, _| config);
    let (_, namespace) = cluster.apart.first().expect("a namespace");
    let primary = std::net::SocketAddr::new(namespace.host_ip.into(), cluster.primary.port);
    // ns2's own link to the primary's web site breaks (its packets are
    // dropped: its checks time out); the others still reach it.
    namespace.cut(primary);
    let disagrees = common::wait_until(Duration::from_secs(20), || {
        cluster.status("ns1").is_some_and(|s| {
            s["cluster"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["name"] == "ns2" && n["view"][0]["health"] == "down")
        })
    });
    assert!(disagrees, "{}", cluster.logs());
    // No failover, from any node; the verdict names the view apart.
    let moved = common::wait_until(Duration::from_secs(6), || {
        cluster.answers().iter().any(|(_, a)| a != &[PRIMARY])
    });
    assert!(!moved, "{:?}", cluster.answers());
    for node in ["ns1", "ns2", "witness"] {
        let status = cluster.status_json(node);
        assert_eq!(status["epoch"], 0, "{node}");
        let verdict = status["cluster"]["agreed"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            verdict.contains("primary healthy for 2 of 3") && verdict.contains("ns2: primary down"),
            "{node}: {verdict}"
        );
    }
    namespace.mend(primary);
}

#[test]
fn the_leader_tells_the_webhooks_when_a_nodes_view_is_gone() {
    let hook = common::WebhookSink::start();
    let mut cluster = Cluster::start(|config| config + &hook.config());
    let leader = cluster.leader().expect("a leader");
    let follower = ["ns1", "ns2", "witness"]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a follower");
    cluster.kill(follower);
    assert!(
        hook.heard("node_lost"),
        "{:?}\n{}",
        hook.received(),
        cluster.logs()
    );
    let told: Vec<String> = hook
        .received()
        .into_iter()
        .filter(|r| r.contains("node_lost"))
        .collect();
    assert_eq!(told.len(), 1, "only the leader tells: {told:?}");
    assert!(told[0].contains(&format!("node {follower}")), "{told:?}");
    // The cluster's view on every live node says it is gone.
    let gone = common::wait_until(Duration::from_secs(5), || {
        cluster.status(&leader).is_some_and(|s| {
            s["cluster"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["name"] == follower && n["live"] == false)
        })
    });
    assert!(gone);
}

/// `dig`'s AXFR of example.com from `dns`: the records, or none when the
/// transfer was refused.
fn axfr(dns: std::net::SocketAddr) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .args([
            "+noall",
            "+answer",
            "+tries=1",
            "-p",
            &dns.port().to_string(),
            &format!("@{}", dns.ip()),
            "example.com",
            "axfr",
        ])
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// One serial, one content: a node whose zone file differs from the
/// content the agreed serial stands for says so (status, metric, log),
/// answers the agreed serial but transfers nothing of the zone; once the
/// leader has reloaded the same file, `geofailover reload`'s answer shows
/// every node with one content under a new serial, and the node
/// transfers again.
#[test]
fn a_node_whose_zone_file_differs_says_so_and_transfers_nothing_of_the_zone() {
    let zones = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("the example zone");
    let shared = zones.path().join("example.com.zone");
    let other = zones.path().join("other.zone");
    std::fs::write(&shared, &original).expect("write");
    std::fs::write(&other, format!("{original}added IN A 192.0.2.77\n")).expect("write");
    let repo_zone = common::repo_zones()
        .join("example.com.zone")
        .display()
        .to_string();
    let mut cluster = Cluster::start(|config| {
        config
            .replace(&repo_zone, &shared.display().to_string())
            .replace(
                "  - name: example.com\n",
                "  - name: example.com\n    allow_transfer: [\"127.0.0.0/8\"]\n",
            )
    });
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    let ns1 = cluster.node("ns1").dns.expect("dns");
    assert!(axfr(ns1).len() > 10, "{:?}", axfr(ns1));

    // ns2 restarted from a config naming another zone file.
    let text = std::fs::read_to_string(&cluster.config).expect("config");
    let ns2_config = cluster.dir.path().join("ns2.yaml");
    std::fs::write(
        &ns2_config,
        text.replace(&shared.display().to_string(), &other.display().to_string()),
    )
    .expect("write");
    cluster.kill("ns2");
    cluster.start_node_from("ns2", &ns2_config);
    cluster.wait_settled();
    let ns2 = cluster.node("ns2").dns.expect("dns");
    let differs = common::wait_until(Duration::from_secs(10), || {
        cluster.status_json("ns2")["dns"]["zones"][0]["agreed"] == false
    });
    assert!(differs, "{}", cluster.status_json("ns2")["dns"]);
    let zone = cluster.status_json("ns2")["dns"]["zones"][0].clone();
    assert_eq!(zone["zone"], "example.com.", "{zone}");
    assert_ne!(zone["digest"], zone["agreed_digest"], "{zone}");
    // It answers from its file, under the agreed serial, and transfers
    // nothing: no secondary gets its content under that serial.
    assert_eq!(common::a_records(ns2, "added.example.com."), ["192.0.2.77"]);
    assert_eq!(common::soa_serial(ns2, "example.com."), serial);
    assert_eq!(axfr(ns2), Vec::<String>::new());
    let ns1_records = axfr(ns1);
    assert!(ns1_records.len() > 10, "{ns1_records:?}");
    assert!(!ns1_records.iter().any(|r| r.starts_with("added.")));
    let metrics = common::http("GET", cluster.node("ns2").http, "/metrics", None, "").1;
    assert!(
        metrics.contains("geofailover_zone_content_agreed{zone=\"example.com.\"")
            && metrics.lines().any(|l| l
                .starts_with("geofailover_zone_content_agreed{zone=\"example.com.\"")
                && l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        cluster
            .server("ns2")
            .log()
            .contains("differs from the content the agreed serial stands for"),
        "{}",
        cluster.server("ns2").log()
    );
    // The other nodes show ns2's content beside theirs.
    let nodes = cluster.status_json("ns1")["cluster"]["nodes"].clone();
    let digest_of = |nodes: &serde_json::Value, node: &str| {
        nodes
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == node))
            .map(|n| n["zones"]["example.com."]["digest"].clone())
    };
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            let nodes = cluster.status_json("ns1")["cluster"]["nodes"].clone();
            digest_of(&nodes, "ns2") == Some(zone["digest"].clone())
        }),
        "{nodes}"
    );

    // The same file everywhere, reloaded at every node: one new serial
    // for the new content, and ns2 transfers again.
    std::fs::copy(&other, &shared).expect("copy");
    let mut reply = serde_json::Value::Null;
    for node in ["ns1", "witness", "ns2"] {
        let (code, body) = cluster.post(node, "/api/v1/reload", "");
        assert_eq!(code, 200, "{node}: {body}");
        reply = serde_json::from_str(&body).expect("json");
    }
    let after = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    assert_eq!(after, serial.wrapping_add(1), "{}", cluster.logs());
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            cluster.status_json("ns2")["dns"]["zones"][0]["agreed"] == true
        }),
        "{}",
        cluster.status_json("ns2")["dns"]
    );
    let records = axfr(ns2);
    assert!(
        records.iter().any(|r| r.starts_with("added.example.com.")),
        "{records:?}"
    );
    assert_eq!(records, axfr(ns1));
    // The reload's answer names each node's content.
    assert_eq!(reply["reloaded"], true, "{reply}");
    assert!(
        reply["nodes"].as_array().is_some_and(|ns| ns
            .iter()
            .any(|n| n["name"] == "ns1" && n["zones"]["example.com."]["digest"].is_string())),
        "{reply}"
    );
}

/// A signed zone whose keys at one node are not the agreed ones: that
/// node says so and refuses the zone's DNSSEC answers (SERVFAIL), so no
/// resolver sees two key sets; plain answers go on; the other nodes
/// answer signed.
#[test]
fn a_node_signing_with_other_keys_refuses_dnssec_answers_for_the_zone() {
    let mut cluster = Cluster::start(|config| {
        config.replace(
            "  - name: example.com\n",
            "  - name: example.com\n    dnssec: {}\n",
        )
    });
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(20))
        .expect("every node answers the primary");
    let signed_a = |cluster: &Cluster, node: &str| {
        let addr = cluster.node(node).dns.expect("dns");
        common::dig(addr, &["+dnssec", "+norec", "www.example.com", "A"])
    };
    for node in ["ns1", "ns2"] {
        let out = signed_a(&cluster, node);
        assert!(out.contains("RRSIG\tA 13 3"), "{node}: {out}");
    }
    let tags = |cluster: &Cluster, node: &str| {
        cluster.status_json(node)["dns"]["zones"][0]["dnssec"]["keys"][0]["tag"].clone()
    };
    // One key, made once for the nodes sharing the folder.
    assert_eq!(tags(&cluster, "ns1"), tags(&cluster, "ns2"));

    // ns2 restarted with a key folder of its own: a key of its own.
    let text = std::fs::read_to_string(&cluster.config).expect("config");
    let other_keys = cluster.dir.path().join("other-keys");
    let ns2_config = cluster.dir.path().join("ns2.yaml");
    std::fs::write(
        &ns2_config,
        text.replace(
            "    dnssec: {}\n",
            &format!("    dnssec: {{keys: {}}}\n", other_keys.display()),
        ),
    )
    .expect("write");
    cluster.kill("ns2");
    cluster.start_node_from("ns2", &ns2_config);
    cluster.wait_settled();
    let refused = common::wait_until(Duration::from_secs(20), || {
        cluster.status_json("ns2")["dns"]["zones"][0]["keys_agreed"] == false
    });
    assert!(refused, "{}", cluster.status_json("ns2")["dns"]);
    assert_ne!(tags(&cluster, "ns1"), tags(&cluster, "ns2"));
    let out = signed_a(&cluster, "ns2");
    assert!(out.contains("status: SERVFAIL"), "{out}");
    let ns2 = cluster.node("ns2").dns.expect("dns");
    let keys = common::dig(ns2, &["+norec", "example.com", "DNSKEY"]);
    assert!(keys.contains("status: SERVFAIL"), "{keys}");
    // Plain answers go on; the other node answers signed.
    assert_eq!(common::a_records(ns2, "www.example.com."), [PRIMARY]);
    let out = signed_a(&cluster, "ns1");
    assert!(out.contains("RRSIG\tA 13 3"), "{out}");
    let metrics = common::http("GET", cluster.node("ns2").http, "/metrics", None, "").1;
    assert!(
        metrics
            .lines()
            .any(|l| l == "geofailover_dnssec_keys_agreed{zone=\"example.com.\"} 0"),
        "{metrics}"
    );
    assert!(
        cluster
            .server("ns2")
            .log()
            .contains("its DNSSEC answers for the zone are refused"),
        "{}",
        cluster.server("ns2").log()
    );
}

/// `geofailover reload` asked of `node`, from the config file `config`:
/// whether it succeeded, and what it printed.
fn reload_cli(config: &std::path::Path, node: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["reload", "--config"])
        .arg(config)
        .args(["--node", node])
        .output()
        .expect("geofailover reload");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One serial, one content, the failover section included: a follower
/// whose failover section differs (the primary's address, the active
/// one) reloads without moving its serials (only the leader picks them),
/// says its content differs (status, metric) and transfers nothing of the
/// zone, while its zone files are the same as everyone's.
/// `geofailover reload` asked of it lists, per zone, which nodes serve
/// which content, and flags it. With the same config again, it agrees.
#[test]
fn a_follower_whose_failover_section_differs_keeps_the_agreed_serial_and_says_so() {
    let mut cluster = Cluster::start(|config| {
        config.replace(
            "  - name: example.com\n",
            "  - name: example.com\n    allow_transfer: [\"127.0.0.0/8\"]\n",
        )
    });
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    let leader = cluster.leader().expect("a leader");
    let follower = ["ns1", "ns2"]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a follower serving DNS");
    // The follower runs from a config file of its own, the same for now.
    let text = std::fs::read_to_string(&cluster.config).expect("config");
    let own = cluster.dir.path().join("own.yaml");
    std::fs::write(&own, &text).expect("write");
    cluster.kill(follower);
    cluster.start_node_from(follower, &own);
    cluster.wait_settled();
    assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()));
    let dns = cluster.node(follower).dns.expect("dns");
    let agreed_at =
        |node: &str, zone: usize| cluster.status_json(node)["dns"]["zones"][zone].clone();
    assert_eq!(agreed_at(follower, 0)["agreed"], true);

    let primary_addresses = "[192.0.2.10, 2001:db8:10::10]";
    assert!(text.contains(primary_addresses));
    std::fs::write(
        &own,
        text.replace(primary_addresses, "[192.0.2.99, 2001:db8:10::10]"),
    )
    .expect("write");
    let (ok, out) = reload_cli(&own, follower);
    assert!(ok, "{out}");
    // It answers its own records under the agreed serial, which it did
    // not move (not even for a moment: the reload changed no serial),
    // and says its content differs.
    assert!(
        out.contains("changed: the failover records' answers")
            && !out.contains(&format!("serial {serial} ->")),
        "{out}"
    );
    assert_eq!(common::a_records(dns, "www.example.com."), ["192.0.2.99"]);
    assert_eq!(common::soa_serial(dns, "example.com."), serial, "{out}");
    let leader_dns = cluster.node(&leader).dns;
    if let Some(leader_dns) = leader_dns {
        assert_eq!(common::soa_serial(leader_dns, "example.com."), serial);
        assert_eq!(common::a_records(leader_dns, "www.example.com."), [PRIMARY]);
    }
    let zone = agreed_at(follower, 0);
    assert_eq!(zone["zone"], "example.com.", "{zone}");
    assert_eq!(zone["agreed"], false, "{zone}");
    assert_ne!(zone["digest"], zone["agreed_digest"], "{zone}");
    // The reverse zone holds no failover record: still agreed.
    assert_eq!(agreed_at(follower, 1)["agreed"], true);
    assert_eq!(axfr(dns), Vec::<String>::new());
    let metrics = common::http("GET", cluster.node(follower).http, "/metrics", None, "").1;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("geofailover_zone_content_agreed{zone=\"example.com.\"")
            && l.ends_with(" 0")),
        "{metrics}"
    );
    // The reload's answer: per zone, the agreed content and each node's,
    // the follower's flagged, the others' not.
    let short = |d: &serde_json::Value| d.as_str().expect("digest")[..12].to_string();
    let (mine, agreed) = (short(&zone["digest"]), short(&zone["agreed_digest"]));
    assert!(
        out.contains(&format!(
            "example.com.: agreed serial {serial} content {agreed}"
        )),
        "{out}"
    );
    let line_of = |node: &str| {
        out.lines()
            .find(|l| {
                l.starts_with("  ")
                    && l.contains(": serial ")
                    && l.split(':')
                        .next()
                        .is_some_and(|names| names.split(", ").any(|n| n.trim() == node))
            })
            .map(str::to_string)
            .unwrap_or_default()
    };
    let flagged = line_of(follower);
    assert!(
        flagged.contains(&format!("serial {serial} content {mine}: DIFFERS")),
        "{out}"
    );
    for other in ["ns1", "ns2", "witness"]
        .into_iter()
        .filter(|n| *n != follower)
    {
        let line = line_of(other);
        assert!(
            line.contains(&format!("serial {serial} content {agreed}"))
                && !line.contains("DIFFERS"),
            "{other}: {out}"
        );
    }

    // The shared config again: one content everywhere, the serial unmoved.
    std::fs::write(&own, &text).expect("write");
    let (ok, out) = reload_cli(&own, follower);
    assert!(ok, "{out}");
    assert!(!out.contains("DIFFERS"), "{out}");
    assert_eq!(agreed_at(follower, 0)["agreed"], true);
    assert_eq!(common::a_records(dns, "www.example.com."), [PRIMARY]);
    assert_eq!(common::soa_serial(dns, "example.com."), serial);
}
