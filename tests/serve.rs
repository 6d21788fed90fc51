//! The real binary serving the shipped zones: answers over UDP and TCP to
//! hickory's client and dig, the protocol edge cases (EDNS, truncation,
//! opcodes, malformed input), and reload on SIGHUP.

mod common;

use std::{net::SocketAddr, path::PathBuf, process::Command, time::Duration};

use common::{
    Geofailover, ask_on, dig, free_port, query_message, tcp, tcp_raw, udp, udp_raw, wait_until,
};
use hickory_net::{
    client::{Client, ClientHandle},
    runtime::TokioRuntimeProvider,
    tcp::TcpClientStream,
    udp::UdpClientStream,
};
use hickory_proto::{
    op::{Edns, Message, OpCode, ResponseCode},
    rr::{DNSClass, Name, RData, RecordType},
};

/// The shipped example config, its sites' health URLs on ports where
/// nothing listens: both sites down, so answers stay on the primary.
fn start_example() -> (Geofailover, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Geofailover::example_config(dir.path(), free_port(), free_port());
    (Geofailover::start(&config), dir)
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("name")
}

fn a_records(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn hickory_client_gets_the_same_answer_over_udp_and_tcp() {
    let (server, _dir) = start_example();
    let provider = TokioRuntimeProvider::default();

    let udp = UdpClientStream::builder(server.addr, provider.clone()).build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(udp);
    tokio::spawn(bg);
    let response = client
        .query(name("www.example.com."), DNSClass::IN, RecordType::A)
        .await
        .expect("udp query");
    assert_eq!(a_records(&response), ["192.0.2.10"]);
    assert!(response.metadata.authoritative);
    assert!(!response.metadata.recursion_available);

    let (stream, handle) =
        TcpClientStream::new(server.addr, None, Some(Duration::from_secs(5)), provider);
    let (mut client, bg) =
        Client::<TokioRuntimeProvider>::new(stream.await.expect("tcp connect"), handle);
    tokio::spawn(bg);
    let response = client
        .query(name("www.example.com."), DNSClass::IN, RecordType::A)
        .await
        .expect("tcp query");
    assert_eq!(a_records(&response), ["192.0.2.10"]);
}

#[test]
fn dig_gets_answers_and_nxdomain() {
    let (server, _dir) = start_example();
    let dig = |args: &[&str]| {
        let out = Command::new("dig")
            .arg(format!("@{}", server.addr.ip()))
            .args(["-p", &server.addr.port().to_string(), "+time=2", "+tries=2"])
            .args(args)
            .output()
            .expect("dig is not installed: run tests/run.sh");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        dig(&["+short", "www.example.com", "A"]).trim(),
        "192.0.2.10"
    );
    assert_eq!(
        dig(&["+short", "example.com", "MX"]).trim(),
        "10 mail.example.com.\n20 mail2.example.net."
    );
    assert!(dig(&["nope.example.com", "A"]).contains("status: NXDOMAIN"));
    // Retried over TCP after the truncated UDP answer.
    assert_eq!(
        dig(&["+short", "+noedns", "big.example.com", "TXT"])
            .lines()
            .count(),
        6
    );
}

fn big_txt_with_payload(payload: u16) -> Message {
    let mut query = query_message(&name("big.example.com."), RecordType::TXT, true);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    query.set_edns(edns);
    query
}

#[test]
fn edns_payload_is_honoured_and_a_truncated_answer_comes_whole_over_tcp() {
    let (server, _dir) = start_example();
    let small = udp(server.addr, &big_txt_with_payload(600)).expect("reply");
    assert!(small.metadata.truncation);
    assert!(
        small.answers.is_empty(),
        "no partial RRset: {:?}",
        small.answers
    );
    assert_eq!(small.edns.as_ref().map(Edns::max_payload), Some(1232));

    let large = udp(server.addr, &big_txt_with_payload(4096)).expect("reply");
    assert!(!large.metadata.truncation);
    assert_eq!(large.answers.len(), 6);

    let plain = query_message(&name("big.example.com."), RecordType::TXT, false);
    let over_udp = udp(server.addr, &plain).expect("reply");
    assert!(over_udp.metadata.truncation && over_udp.answers.is_empty());
    assert!(over_udp.edns.is_none());
    let over_tcp = tcp(server.addr, &plain).expect("reply");
    assert!(!over_tcp.metadata.truncation);
    assert_eq!(over_tcp.answers.len(), 6);
}

#[test]
fn unknown_edns_version_gets_badvers() {
    let (server, _dir) = start_example();
    let mut query = query_message(&name("www.example.com."), RecordType::A, true);
    let mut edns = Edns::new();
    edns.set_version(1);
    query.set_edns(edns);
    let reply = udp(server.addr, &query).expect("reply");
    // BADVERS and BADSIG share the code 16; the decoder names it BADSIG.
    assert_eq!(u16::from(reply.metadata.response_code), 16);
    assert_eq!(reply.edns.as_ref().map(Edns::version), Some(0));
    assert!(reply.answers.is_empty());
}

#[test]
fn unknown_opcodes_get_notimp_and_the_question_is_echoed() {
    let (server, _dir) = start_example();
    for opcode in [OpCode::Status, OpCode::Update, OpCode::Notify] {
        let mut query = query_message(&name("www.example.com."), RecordType::A, false);
        query.metadata.op_code = opcode;
        let reply = udp(server.addr, &query).expect("reply");
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NotImp,
            "{opcode:?}"
        );
        assert_eq!(reply.metadata.op_code, opcode);
    }
}

#[test]
fn question_letter_case_comes_back_as_asked() {
    let (server, _dir) = start_example();
    let query = query_message(&name("WwW.ExAmPlE.cOm."), RecordType::A, false);
    let reply = udp(server.addr, &query).expect("reply");
    assert_eq!(reply.queries[0].name().to_string(), "WwW.ExAmPlE.cOm.");
    assert_eq!(reply.answers[0].name.to_string(), "WwW.ExAmPlE.cOm.");
}

#[test]
fn two_questions_get_formerr_and_other_classes_are_refused() {
    let (server, _dir) = start_example();
    let mut query = query_message(&name("www.example.com."), RecordType::A, false);
    query.add_query(hickory_proto::op::Query::query(
        name("example.com."),
        RecordType::MX,
    ));
    let reply = udp(server.addr, &query).expect("reply");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let mut query = query_message(&name("version.bind."), RecordType::TXT, false);
    query.queries[0].set_query_class(DNSClass::CH);
    let reply = udp(server.addr, &query).expect("reply");
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

/// Deterministic bytes (xorshift), so a failure can be replayed.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn malformed_packets_get_formerr_or_silence_and_never_stop_the_server() {
    let (mut server, _dir) = start_example();
    // A valid header announcing a question that is not there.
    let mut truncated = query_message(&name("www.example.com."), RecordType::A, false)
        .to_vec()
        .expect("encode");
    truncated.truncate(17);
    let reply = udp_raw(server.addr, &truncated).expect("a FORMERR reply");
    let reply = Message::from_vec(&reply).expect("decode");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..2000 {
        let mut packet = noise(&mut seed, 1 + i % 300);
        if i % 2 == 0 && packet.len() > 12 {
            // Keep it a query with one question, so the parser goes deeper.
            packet[2] &= 0x07;
            packet[4] = 0;
            packet[5] = 1;
        }
        socket.send_to(&packet, server.addr).expect("send");
    }
    for i in 0..50 {
        let _ = tcp_raw(server.addr, &noise(&mut seed, 1 + i * 7));
    }
    let query = query_message(&name("www.example.com."), RecordType::A, false);
    let reply = udp(server.addr, &query).expect("still answering over udp");
    assert_eq!(a_records(&reply), ["192.0.2.10"]);
    let reply = tcp(server.addr, &query).expect("still answering over tcp");
    assert_eq!(a_records(&reply), ["192.0.2.10"]);
    assert!(
        server
            .process
            .wait_exit(Duration::from_millis(10))
            .is_none()
    );
}

#[test]
fn queries_are_not_logged_by_default() {
    let (server, _dir) = start_example();
    let query = query_message(&name("www.example.com."), RecordType::A, false);
    udp(server.addr, &query).expect("reply");
    tcp(server.addr, &query).expect("reply");
    let log = server.log();
    assert!(log.contains("listening on"), "{log}");
    assert!(
        !log.contains("www.example.com"),
        "a per-query line was logged:\n{log}"
    );
}

fn copy_zones(dir: &std::path::Path) -> Vec<(&'static str, PathBuf)> {
    Geofailover::example_zones()
        .into_iter()
        .map(|(origin, file)| {
            let copy = dir.join(file.file_name().expect("file name"));
            std::fs::copy(&file, &copy).expect("copy zone");
            (origin, copy)
        })
        .collect()
}

fn mail(addr: SocketAddr) -> Vec<String> {
    let query = query_message(&name("mail.example.com."), RecordType::A, false);
    a_records(&udp(addr, &query).expect("reply"))
}

#[test]
fn sighup_swaps_in_a_good_zone_and_keeps_the_old_one_when_the_new_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = copy_zones(dir.path());
    let config = Geofailover::write_config(dir.path(), &zones);
    let server = Geofailover::start(&config);
    let zone_file = &zones[0].1;
    let original = std::fs::read_to_string(zone_file).expect("read zone");
    assert_eq!(mail(server.addr), ["192.0.2.25"]);

    let changed = original
        .replace(
            "mail            IN  A    192.0.2.25",
            "mail            IN  A    192.0.2.99",
        )
        .replace("2026112101", "2026112102");
    assert_ne!(changed, original);
    std::fs::write(zone_file, &changed).expect("write zone");
    server.process.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || mail(server.addr)
            == ["192.0.2.99"]),
        "the reload was not applied:\n{}",
        server.log()
    );

    std::fs::write(zone_file, changed.replace("192.0.2.99", "192.0.2.999")).expect("write zone");
    server.process.signal("HUP");
    assert!(server.wait_for_log("reload failed", 1), "{}", server.log());
    assert!(
        server.log().contains("example.com.zone:"),
        "{}",
        server.log()
    );
    assert_eq!(mail(server.addr), ["192.0.2.99"]);
}

#[test]
fn ipv6_and_ipv4_listeners_answer_alike() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: nothing to test");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Geofailover::example_config(dir.path(), free_port(), free_port());
    let text = std::fs::read_to_string(&config).expect("read");
    let text = text.replacen(
        "    - 127.0.0.1:0\n",
        "    - 127.0.0.1:0\n    - \"[::1]:0\"\n",
        1,
    );
    assert!(text.contains("[::1]:0"), "no dns.listen to extend");
    std::fs::write(&config, text).expect("write");
    let server = Geofailover::start(&config);
    let v6: SocketAddr = wait_for_listener(&server, |a| a.is_ipv6());
    for addr in [server.addr, v6] {
        for transport in ["+notcp", "+tcp"] {
            for (query, want) in [
                ("www.example.com", "192.0.2.10"),
                ("mail.example.com", "192.0.2.25"),
            ] {
                let out = Command::new("dig")
                    .arg(format!("@{}", addr.ip()))
                    .args(["-p", &addr.port().to_string(), "+short", "+time=2"])
                    .args([transport, query, "A"])
                    .output()
                    .expect("dig");
                let got = String::from_utf8_lossy(&out.stdout);
                assert_eq!(got.trim(), want, "{query} at {addr} {transport}");
            }
        }
        // A missing name, asked three times: the general way, learned,
        // then from what was learned.
        for _ in 0..3 {
            let out = Command::new("dig")
                .arg(format!("@{}", addr.ip()))
                .args(["-p", &addr.port().to_string(), "+time=2"])
                .args(["nope.example.com", "A"])
                .output()
                .expect("dig");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("status: NXDOMAIN"),
                "at {addr}"
            );
        }
    }
}

/// The address of the listener `which` picks, from the log (waited for:
/// the lines come one after another).
fn wait_for_listener(server: &Geofailover, which: impl Fn(&SocketAddr) -> bool) -> SocketAddr {
    let find = || {
        server
            .log()
            .lines()
            .filter_map(|line| {
                let rest = line.split("listening on ").nth(1)?;
                rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
            })
            .find(|a| which(a))
    };
    assert!(
        wait_until(Duration::from_secs(10), || find().is_some()),
        "no such listener:\n{}",
        server.log()
    );
    find().expect("found")
}

/// A TCP connection from `source` to `to`, held open idle.
fn connect_from(source: std::net::Ipv4Addr, to: SocketAddr) -> Option<std::net::TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .ok()?;
    let SocketAddr::V4(to) = to else { return None };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).ok()?;
    Some(std::net::TcpStream::from(fd))
}

/// Raises this process's open files limit to what it may, for the many
/// connections below.
fn raise_open_files_limit() -> u64 {
    use nix::libc;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit, living across both calls.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// The server's CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn five_thousand_idle_tcp_connections_keep_no_query_or_probe_out() {
    assert!(
        raise_open_files_limit() > 5_200,
        "the open files limit is too low for this test"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _config) =
        common::start_example(dir.path(), None, |text| text);
    let http = server.http.expect("http");
    // 5,000 idle connections from 200 addresses, 25 each: past the cap of
    // 1,000 open connections the ones idle longest are closed.
    let mut held = Vec::new();
    for i in 0..5_000u32 {
        let source =
            std::net::Ipv4Addr::new(127, 0, 1 + (i / 25 / 250) as u8, 2 + (i / 25 % 250) as u8);
        if let Some(stream) = connect_from(source, server.addr) {
            held.push(stream);
        }
    }
    assert!(held.len() > 4_900, "only {} connections made", held.len());
    // One address past its cap of 32: closed by the server at once.
    let crowd: Vec<_> = (0..40)
        .filter_map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 9, 9), server.addr))
        .collect();
    let closed = crowd
        .iter()
        .filter(|s| {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            matches!((&mut &**s).read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed >= 8, "{closed} of 40 from one address were closed");
    // New queries over TCP and UDP are answered, the status too.
    let query = query_message(&name("www.example.com."), RecordType::A, false);
    for _ in 0..5 {
        let reply = tcp(server.addr, &query).expect("a TCP answer past the cap");
        assert_eq!(a_records(&reply), ["192.0.2.10"]);
        let reply = udp(server.addr, &query).expect("a UDP answer");
        assert_eq!(a_records(&reply), ["192.0.2.10"]);
    }
    // Idle connections cost no CPU, and the probes go on: no false down.
    let before = cpu_ticks(server.process.pid());
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(server.process.pid()) - before;
    assert!(spent < 100, "{spent} ticks in 3 s with idle connections");
    let status = common::status_json(http);
    for site in status["sites"].as_array().expect("sites") {
        assert_eq!(site["health"], "healthy", "{status}");
    }
    assert!(!server.log().contains("is now down"), "{}", server.log());
    assert!(
        server.log().contains("dns.tcp_max_per_source"),
        "{}",
        server.log()
    );
    drop(held);

    // The same against the HTTP port: 600 idle connections from 30
    // addresses (past the cap of 256, the idle ones make room), and the
    // status API still answers; 40 from one address get some closed.
    let mut idle_http = Vec::new();
    for i in 0..600u32 {
        let source = std::net::Ipv4Addr::new(127, 0, 20, 2 + (i / 20) as u8);
        if let Some(stream) = connect_from(source, http) {
            idle_http.push(stream);
        }
    }
    assert!(
        idle_http.len() > 590,
        "only {} connections made",
        idle_http.len()
    );
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let (code, _) = common::try_http("GET", http, "/api/v1/status", None, "")
            .expect("the status API answers past the cap");
        assert_eq!(code, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let crowd: Vec<_> = (0..40)
        .filter_map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 21, 9), http))
        .collect();
    let closed = crowd
        .iter()
        .filter(|s| {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            matches!((&mut &**s).read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(
        closed >= 8,
        "{closed} of 40 HTTP connections from one address were closed"
    );
    assert!(
        server
            .log()
            .contains("an HTTP connection past the cap of 32"),
        "{}",
        server.log()
    );
}

/// Response rate limiting seen on the wire: a flood from 127.0.0.2 gets
/// its first responses, then every second one truncated and the rest
/// dropped, while 127.0.0.3 gets every answer in full.
#[test]
fn a_flooding_source_is_rate_limited_with_slips_and_another_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _config) = common::start_example(dir.path(), None, |text| {
        text.replacen(
            "dns:\n",
            "dns:\n  rrl:\n    rate: 20\n    slip: 2\n    ipv4_prefix: 32\n    exempt: []\n",
            1,
        )
    });
    let query = query_message(&name("www.example.com."), RecordType::A, false)
        .to_vec()
        .expect("encode");
    let flood = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let calm = std::net::UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    calm.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut calm_answers = 0;
    for i in 0..400 {
        flood.send_to(&query, server.addr).expect("send");
        if i % 20 == 0 {
            calm.send_to(&query, server.addr).expect("send");
            let mut buf = [0u8; 1500];
            let n = calm.recv(&mut buf).expect("the calm source is answered");
            let reply = Message::from_vec(&buf[..n]).expect("decode");
            assert!(!reply.metadata.truncation, "the calm source got TC");
            assert_eq!(a_records(&reply), ["192.0.2.10"]);
            calm_answers += 1;
        }
    }
    assert_eq!(calm_answers, 20);
    flood
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok(n) = flood.recv(&mut buf) {
        let reply = Message::from_vec(&buf[..n]).expect("decode");
        if reply.metadata.truncation {
            assert!(reply.answers.is_empty());
            truncated += 1;
        } else {
            full += 1;
        }
    }
    let limited = 400 - full;
    assert!(
        (20..=40).contains(&full),
        "{full} full answers to the flood"
    );
    assert!(
        truncated * 2 >= limited - 2 && truncated * 2 <= limited + 2,
        "{truncated} truncated of {limited} limited: expected every second"
    );
    let metrics = common::http("GET", server.http.expect("http"), "/metrics", None, "").1;
    assert!(
        metrics.contains(&format!("geofailover_rrl_slipped_total {truncated}")),
        "{metrics}"
    );
    assert_eq!(
        server
            .log()
            .matches("response rate limiting: the prefix of 127.0.0.2/32")
            .count(),
        1,
        "{}",
        server.log()
    );
}

/// The size dig says it received.
fn received(text: &str) -> usize {
    text.split("MSG SIZE  rcvd: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no size:\n{text}"))
}

#[test]
fn additional_addresses_that_do_not_fit_are_left_out_without_tc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = copy_zones(dir.path());
    let mut zone = std::fs::read_to_string(&zones[0].1).expect("read zone");
    // 20 mail exchangers in the zone, each with an address; and a
    // delegation whose 15 name servers' in-domain glue cannot all fit.
    for i in 0..20 {
        zone.push_str(&format!(
            "many IN MX {i} mx{i}\nmx{i} IN A 192.0.2.{}\n",
            100 + i
        ));
    }
    for i in 0..15 {
        zone.push_str(&format!(
            "deleg IN NS ns{i}.deleg\nns{i}.deleg IN A 198.51.100.{i}\n"
        ));
    }
    std::fs::write(&zones[0].1, zone).expect("write zone");
    let config = Geofailover::write_config(dir.path(), &zones);
    let server = Geofailover::start(&config);
    // Twice: the general way, then as precomputed or learned.
    for _ in 0..2 {
        let text = dig(
            server.addr,
            &["+noedns", "+ignore", "many.example.com", "MX"],
        );
        assert!(
            text.contains("status: NOERROR") && text.contains("ANSWER: 20,"),
            "{text}"
        );
        let flags = text
            .lines()
            .find(|l| l.starts_with(";; flags:"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!flags.contains(" tc"), "{text}");
        assert!(text.contains("mx0.example.com.\t"), "{text}");
        assert!(received(&text) <= 512, "{text}");
    }
    // With EDNS and 512 bytes offered: the same.
    let text = dig(
        server.addr,
        &["+bufsize=512", "+ignore", "many.example.com", "MX"],
    );
    assert!(
        text.contains("ANSWER: 20,") && !text.contains(" tc;") && !text.contains("flags: qr tc"),
        "{text}"
    );
    assert!(received(&text) <= 512, "{text}");
    // Over TCP every address comes.
    let text = dig(server.addr, &["+tcp", "+noedns", "many.example.com", "MX"]);
    assert!(text.contains("ADDITIONAL: 20"), "{text}");
    // A referral whose in-domain glue does not fit is still truncated
    // (RFC 9471).
    let text = dig(
        server.addr,
        &["+noedns", "+ignore", "x.deleg.example.com", "A"],
    );
    let flags = text
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(flags.contains(" tc"), "{text}");
}

#[test]
fn past_its_tcp_cap_an_address_loses_its_longest_idle_connection_not_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = copy_zones(dir.path());
    let config = Geofailover::write_config(dir.path(), &zones);
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(
        &config,
        text.replace("dns:\n", "dns:\n  tcp_max_per_source: 2\n"),
    )
    .expect("write config");
    let server = Geofailover::start(&config);
    let query = query_message(&name("mail.example.com."), RecordType::A, false);
    let connect = || {
        let stream = std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(2))
            .expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
    };
    // Two connections at the cap, each answered once (so the server holds
    // both), the first idle the longer.
    let mut first = connect();
    assert!(ask_on(&mut first, &query).is_some());
    let mut second = connect();
    assert!(ask_on(&mut second, &query).is_some());
    // A third is answered: the first is closed to make room.
    let mut third = connect();
    let reply = ask_on(&mut third, &query).expect("the new connection is answered");
    assert_eq!(a_records(&reply), ["192.0.2.25"]);
    {
        use std::io::Read;
        assert!(
            matches!(first.read(&mut [0u8; 1]), Ok(0)),
            "the longest idle connection was not closed"
        );
    }
    assert!(ask_on(&mut second, &query).is_some());
    assert!(ask_on(&mut third, &query).is_some());
    assert!(
        server.wait_for_log("its connection idle the longest was closed", 1),
        "{}",
        server.log()
    );
}

/// Pipelined queries over one TCP connection (RFC 7766 section 6.2.1.1)
/// sent in one write, the last a message that gets no answer (a
/// response): every query before it is answered, in order, before the
/// connection closes, though their answers waited to go out together.
#[test]
fn pipelined_queries_are_all_answered_before_a_close() {
    use std::io::{Read, Write};
    let (server, _dir) = start_example();
    let mut burst = Vec::new();
    for id in 1..=20u16 {
        let mut query = query_message(&name("mail.example.com."), RecordType::A, false);
        query.metadata.id = id;
        let bytes = query.to_vec().expect("encode");
        burst.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        burst.extend_from_slice(&bytes);
    }
    let mut response = query_message(&name("mail.example.com."), RecordType::A, false);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    let bytes = response.to_vec().expect("encode");
    burst.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    burst.extend_from_slice(&bytes);
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(&burst).expect("send the burst");
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .expect("read until the close");
    let mut ids = Vec::new();
    let mut at = 0;
    while at + 2 <= received.len() {
        let len = usize::from(u16::from_be_bytes([received[at], received[at + 1]]));
        let reply = Message::from_vec(&received[at + 2..at + 2 + len]).expect("a reply");
        assert_eq!(a_records(&reply), ["192.0.2.25"], "{reply:?}");
        ids.push(reply.metadata.id);
        at += 2 + len;
    }
    assert_eq!(ids, (1..=20).collect::<Vec<u16>>());
}
