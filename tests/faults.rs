//! Faults a failover controller meets for real, against the real binary
//! on the shipped example config (www.example.com A and AAAA between two
//! stand-in sites): a primary that goes silent instead of refusing, a
//! query flood during the switch, a second outage after an operator's
//! fail-back, a failover that cannot start, and reloads that must apply
//! the zones and the failover section together or not at all.

mod common;

use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Geofailover, StandIn, WebhookSink, a_records, http, query_message, repo_zones, soa_serial,
    status_json, wait_until,
};
use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{Name, RData, RecordType},
};

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

/// The example config in `dir` (zones copied beside it, so a test can edit
/// them), with stand-in sites and an optional webhook; waits until both
/// sites are healthy.
struct Example {
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

    fn start_edited(webhook: Option<&WebhookSink>, edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
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
        let (code, body) = http("GET", self.api(), "/api/v1/events?since=0", None, "");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("events")
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

    /// The secondary's flag file, as the config names it.
    fn flag_file(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).expect("read");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("path: "))
            .expect("a flag file path");
        PathBuf::from(line.trim_start().trim_start_matches("path: "))
    }
}

#[test]
fn a_silent_primary_fails_over_within_interval_times_fall_plus_timeout_plus_a_second() {
    let example = Example::start(None);
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

/// What a flooding client saw.
#[derive(Default, Debug)]
struct Seen {
    answers: u64,
    wrong: Vec<String>,
    unanswered: u64,
}

fn check_reply(reply: &[u8], id: u16, seen: &Mutex<Seen>) {
    let mut seen = seen.lock().expect("lock");
    match Message::from_vec(reply) {
        Ok(m) if m.metadata.id == id && m.metadata.response_code == ResponseCode::NoError => {
            let got: Vec<String> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect();
            if got == [PRIMARY] || got == [SECONDARY] {
                seen.answers += 1;
            } else {
                seen.wrong.push(format!("answer {got:?}"));
            }
        }
        Ok(m) => seen.wrong.push(format!(
            "id {} rcode {:?}",
            m.metadata.id, m.metadata.response_code
        )),
        Err(e) => seen.wrong.push(format!("malformed: {e}")),
    }
}

fn flood_udp(server: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let name = Name::from_ascii("www.example.com.").expect("name");
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let query = query_message(&name, RecordType::A, false);
        let id = query.metadata.id;
        socket
            .send_to(&query.to_vec().expect("encode"), server)
            .expect("send");
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => check_reply(&buf[..n], id, &seen),
            Err(_) => seen.lock().expect("lock").unanswered += 1,
        }
    }
}

fn flood_tcp(server: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    use std::io::{Read, Write};
    let name = Name::from_ascii("www.example.com.").expect("name");
    let mut stream: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let conn = match &mut stream {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(server).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                stream.insert(conn)
            }
        };
        let query = query_message(&name, RecordType::A, false);
        let id = query.metadata.id;
        let bytes = query.to_vec().expect("encode");
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let mut len = [0u8; 2];
        let answered = conn.write_all(&framed).is_ok() && conn.read_exact(&mut len).is_ok();
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        if answered && conn.read_exact(&mut reply).is_ok() {
            check_reply(&reply, id, &seen);
        } else {
            // The server may close an idle or long-lived connection;
            // a query it never answered is counted.
            seen.lock().expect("lock").unanswered += u64::from(answered);
            stream = None;
        }
    }
}

#[test]
fn a_query_flood_during_a_failover_gets_only_well_formed_answers_and_the_switch_keeps_its_bound() {
    let example = Example::start(None);
    let stop = Arc::new(AtomicBool::new(false));
    let udp_seen = Arc::new(Mutex::new(Seen::default()));
    let tcp_seen = Arc::new(Mutex::new(Seen::default()));
    let mut flooders = Vec::new();
    for _ in 0..3 {
        let (stop, seen, addr) = (stop.clone(), udp_seen.clone(), example.server.addr);
        flooders.push(std::thread::spawn(move || flood_udp(addr, stop, seen)));
    }
    for _ in 0..2 {
        let (stop, seen, addr) = (stop.clone(), tcp_seen.clone(), example.server.addr);
        flooders.push(std::thread::spawn(move || flood_tcp(addr, stop, seen)));
    }
    assert!(wait_until(Duration::from_secs(5), || {
        udp_seen.lock().expect("lock").answers > 100 && tcp_seen.lock().expect("lock").answers > 100
    }));

    example.primary.set_healthy(false);
    // interval 1 s x fall 3 + timeout 1 s + 1 s.
    let bound = Duration::from_secs(5);
    let took = example.wait_for(SECONDARY, Duration::from_secs(20));
    // The flood goes on a moment after the switch.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().expect("flooder");
    }
    let took =
        took.unwrap_or_else(|| panic!("no failover under the flood:\n{}", example.server.log()));
    let (udp, tcp) = (
        udp_seen.lock().expect("lock"),
        tcp_seen.lock().expect("lock"),
    );
    eprintln!(
        "switched in {took:?} under a flood of {} UDP and {} TCP queries",
        udp.answers, tcp.answers
    );
    assert!(took <= bound, "took {took:?}");
    for (what, seen) in [("UDP", &*udp), ("TCP", &*tcp)] {
        assert!(
            seen.wrong.is_empty(),
            "{what}: {:?}",
            &seen.wrong[..seen.wrong.len().min(5)]
        );
        assert_eq!(seen.unanswered, 0, "{what}: unanswered queries");
        assert!(seen.answers > 1000, "{what}: only {} answers", seen.answers);
    }
}

#[test]
fn an_operators_failback_rearms_automatic_failover_for_the_next_outage() {
    let example = Example::start(None);
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
    let flag = tempfile::tempdir()
        .expect("tempdir")
        .keep()
        .join("READONLY");
    let flags = format!(
        "    read_only:\n      flag_file:\n        path: {}\n{}",
        flag.display(),
        switch.config()
    );
    Example::start_edited(None, |config| {
        let anchor = "      www.example.com: [198.51.100.10, 2001:db8:20::10]\n";
        assert!(config.contains(anchor));
        config.replacen(anchor, &format!("{anchor}{flags}"), 1)
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
