//! No node acts without leadership, on the worst day: a leader cut from
//! etcd in the middle of a slow read-only step, and an etcd member that
//! stalls while the primary dies. Three real nodes, a real three-member
//! etcd, stand-in sites, cuts made with iptables in a network namespace.

mod common;

use std::{
    net::SocketAddr,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use common::{AppSwitch, cluster::Cluster, wait_until};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

/// A leader whose link to etcd (not to the sites) is cut while its
/// application-flag request hangs, the primary back at that moment: it
/// stops acting when its leadership's deadline passes, never switches
/// its own answers, and the flag its late request set is undone (or
/// repaired) to match the agreed site once the next leader's quiet time
/// is over. No node answers apart from the others meanwhile.
#[test]
fn a_leader_cut_from_etcd_in_a_slow_flag_step_never_answers_apart_and_the_flag_follows() {
    let mut switch = None;
    let cluster = Cluster::start_apart("ns1", |config, host| {
        let app = AppSwitch::start_on(host);
        let config = Cluster::with_flags(config, &app).replacen(
            "failover:\n",
            "failover:\n  readiness_interval: 1s\n  step_timeout: 5s\n",
            1,
        );
        switch = Some(app);
        config
    });
    let switch = switch.expect("the switch");
    assert_eq!(cluster.leader().as_deref(), Some("ns1"));
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");

    switch.hanging.store(true, Ordering::Relaxed);
    cluster.primary.set_healthy(false);
    let held = wait_until(Duration::from_secs(20), || {
        switch
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /admin/read-only"))
    });
    assert!(held, "{}", cluster.logs());

    // The leader loses etcd mid-step; the primary is back.
    cluster.cut_from_etcd(true);
    cluster.primary.set_healthy(true);
    // Cut off, ns1 answers the last agreed site it saw: the primary (the
    // failover was not agreed yet).
    let mut watch = LastAgreed::new("ns1", PRIMARY);
    let stepped_down = wait_until(Duration::from_secs(15), || {
        watch.sample(&cluster);
        cluster
            .status("ns1")
            .is_some_and(|s| s["cluster"]["leading"] == false)
    });
    assert!(stepped_down, "{}", cluster.logs());
    // Its request lands late: the application goes read-only now.
    switch.hanging.store(false, Ordering::Relaxed);
    let others_lead = wait_until(Duration::from_secs(20), || {
        watch.sample(&cluster);
        cluster
            .status("ns2")
            .and_then(|s| s["cluster"]["leader"].as_str().map(str::to_string))
            .is_some_and(|l| l != "ns1")
    });
    assert!(others_lead, "{}", cluster.logs());
    let app = SocketAddr::new(switch.ip, switch.port);
    let open = || {
        common::try_http("GET", app, "/status", None, "")
            .is_ok_and(|(_, body)| body.contains("shop is open"))
    };
    // Apart for a while, then healed.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        watch.sample(&cluster);
        std::thread::sleep(Duration::from_millis(100));
    }
    // While cut off, the old leader never switched its own answers.
    let cut_log = cluster.server("ns1").log();
    assert!(
        !cut_log.contains("answers switched to secondary"),
        "{cut_log}"
    );
    cluster.cut_from_etcd(false);
    assert!(
        watch.apart.is_empty(),
        "ns1 answered other than the last agreed site while cut off: {:?}",
        watch.apart
    );
    // The next leader either rolled the failover back (the primary is
    // healthy again) or finished it (the quorum still counted it down
    // when it took over): either way the flags follow the agreed site.
    let agreed = || {
        cluster
            .status("ns2")
            .and_then(|s| s["active_role"].as_str().map(str::to_string))
    };
    let converged = wait_until(Duration::from_secs(30), || {
        let (read_only, address) = match agreed().as_deref() {
            Some("secondary") => (true, SECONDARY),
            Some(_) => (false, PRIMARY),
            None => return false,
        };
        open() != read_only
            && cluster.flag_file().exists() == read_only
            && cluster.answers().iter().all(|(_, a)| a == &[address])
    });
    assert!(
        converged,
        "agreed {:?}, open {}, flag file {}, answers {:?}\n{}",
        agreed(),
        open(),
        cluster.flag_file().exists(),
        cluster.answers(),
        cluster.logs()
    );
}

/// An etcd member the nodes talk to stalls (SIGSTOP, as a long pause or
/// a stuck disk) while the primary dies; the other two keep quorum. No
/// call to it holds a decision: the failover comes within the usual bound
/// plus an etcd timeout.
#[test]
fn a_stalled_etcd_member_holds_no_decision() {
    let cluster = Cluster::start(|config| config);
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    // Every node's client tries the first member first.
    cluster.etcd.members[0].freeze();
    let started = Instant::now();
    cluster.primary.set_healthy(false);
    // interval 1 s x fall 3 + check timeout 1 s, the views through etcd,
    // one etcd timeout (1 s), and the margin the cluster tests allow.
    let bound = Duration::from_secs(15);
    let moved = cluster.wait_all_answer(SECONDARY, bound);
    let took = started.elapsed();
    cluster.etcd.members[0].thaw();
    assert!(
        moved.is_some(),
        "no failover within {bound:?} with a stalled member: {:?}\n{}",
        cluster.answers(),
        cluster.logs()
    );
    eprintln!("failover with a stalled etcd member: {took:?} (bound {bound:?})");
}

/// Samples one node's answer while it is cut off: it must be the last
/// agreed site it saw.
struct LastAgreed {
    node: &'static str,
    address: &'static str,
    apart: Vec<Vec<String>>,
}

impl LastAgreed {
    fn new(node: &'static str, address: &'static str) -> Self {
        Self {
            node,
            address,
            apart: Vec::new(),
        }
    }

    fn sample(&mut self, cluster: &Cluster) {
        for (node, answer) in cluster.answers() {
            if node == self.node && answer != [self.address] {
                self.apart.push(answer);
            }
        }
    }
}
