//! TCP answers to clients that do not read them: a zone transfer of a
//! zone larger than the socket buffers, asked by a client that then stops
//! reading (or reads slowly), must not keep its connection and its slot
//! past the idle timeout (or the connection's lifetime) while the server
//! writes; one that reads goes on to the end of its transfer, busy
//! however long it lasts; a transfer cut short ends its connection. The
//! server's side of each connection is watched in /proc/net/tcp.

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{Geofailover, query_message, wait_until};
use hickory_proto::{
    op::ResponseCode,
    rr::{Name, RecordType},
};

/// The example zone and 50,000 names with a 100-byte TXT each: about
/// 6 MB to transfer, far more than the socket buffers hold.
fn big_zone(dir: &Path) -> PathBuf {
    let mut zone = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("read the example zone");
    let text = "x".repeat(100);
    for i in 0..50_000 {
        zone.push_str(&format!("t{i} 300 IN TXT \"{text}\"\n"));
    }
    let file = dir.join("example.com.zone");
    std::fs::write(&file, zone).expect("write the zone");
    file
}

/// Serves the big zone, transferable from 127.0.0.1, with one TCP
/// connection at most (overall and from one address) unless `extra` (in
/// `dns`) says otherwise.
fn start(dir: &Path, extra: &str) -> Geofailover {
    serve(dir, &big_zone(dir), extra)
}

/// `start`, serving the zone file `zone` as example.com.
fn serve(dir: &Path, zone: &Path, extra: &str) -> Geofailover {
    let config = dir.join("geofailover.yaml");
    std::fs::write(
        &config,
        format!(
            "dns:\n  listen: [127.0.0.1:0]\n{caps}{extra}\
             state_dir: {state}\n\
             zones:\n  - name: example.com\n    file: {file}\n    allow_transfer: [\"127.0.0.1\"]\n",
            caps = if extra.contains("tcp_max_per_source") {
                ""
            } else {
                "  tcp_max_connections: 1\n  tcp_max_per_source: 1\n"
            },
            state = dir.join("state").display(),
            file = zone.display()
        ),
    )
    .expect("write the config");
    Geofailover::start(&config)
}

/// The AXFR request for example.com, framed for TCP.
fn axfr_request() -> Vec<u8> {
    let name = Name::from_ascii("example.com.").expect("name");
    let query = query_message(&name, RecordType::AXFR, false)
        .to_vec()
        .expect("encode");
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend(query);
    framed
}

/// A connection to `server` with a small receive buffer that has asked
/// for the zone's transfer.
fn ask_transfer(server: SocketAddr) -> TcpStream {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    setsockopt(&fd, sockopt::RcvBuf, &4096).expect("SO_RCVBUF");
    let SocketAddr::V4(to) = server else {
        panic!("{server} is not IPv4")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).expect("connect");
    let mut stream = TcpStream::from(fd);
    stream
        .write_all(&axfr_request())
        .expect("send the AXFR request");
    stream
}

/// Reads from `stream` until it has `bytes` more; false when it ends or
/// stalls first.
fn read_on(stream: &mut TcpStream, bytes: usize) -> bool {
    let mut received = 0;
    let mut chunk = [0u8; 8192];
    while received < bytes {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => received += n,
        }
    }
    true
}

/// The server's side of the connection from local port `client`: its
/// state (1 is ESTABLISHED) and how many bytes wait in its send queue.
fn server_side(server: SocketAddr, client: u16) -> Option<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        if port(fields[1])? != server.port() || port(fields[2])? != client {
            return None;
        }
        let state = u8::from_str_radix(fields[3], 16).ok()?;
        let queued = u64::from_str_radix(fields[4].split(':').next()?, 16).ok()?;
        Some((state, queued))
    })
}

fn answers_over_tcp(server: SocketAddr) -> bool {
    let name = Name::from_ascii("example.com.").expect("name");
    common::tcp(server, &query_message(&name, RecordType::SOA, false))
        .is_some_and(|reply| reply.metadata.response_code == ResponseCode::NoError)
}

/// Waits until the server writes to `client` and its send queue fills.
fn wait_blocked(server: &Geofailover, client: u16) {
    assert!(
        wait_until(Duration::from_secs(30), || server_side(server.addr, client)
            .is_some_and(|(state, queued)| state == 1 && queued > 0)),
        "the server never blocked writing: {:?}\n{}",
        server_side(server.addr, client),
        server.log()
    );
}

/// Whether the server's side of the connection from `client` is closed.
fn closed(server: &Geofailover, client: u16) -> bool {
    server_side(server.addr, client).is_none_or(|(state, _)| state != 1)
}

#[test]
fn a_client_that_stops_reading_a_transfer_is_closed_after_the_idle_timeout_and_its_slot_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for a second connection: nothing makes room early.
    let server = start(
        dir.path(),
        "  tcp_max_connections: 2\n  tcp_max_per_source: 2\n",
    );
    let stalled = ask_transfer(server.addr);
    let client = stalled.local_addr().expect("local addr").port();
    // The server is writing the transfer and the client reads nothing:
    // its send queue fills.
    wait_blocked(&server, client);
    assert!(answers_over_tcp(server.addr), "{}", server.log());
    // After the idle timeout (10 s by default) without reading, the
    // server closes it.
    let stalled_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(25), || closed(&server, client)),
        "the connection is still open {:?} after the client stopped reading: {:?}",
        stalled_at.elapsed(),
        server_side(server.addr, client)
    );
    assert!(
        stalled_at.elapsed() >= Duration::from_secs(5),
        "closed after {:?}, before the idle timeout",
        stalled_at.elapsed()
    );
    drop(stalled);
}

/// At the cap, a new connection from the same address is answered: the
/// one that stopped reading mid-transfer is closed to make room at once,
/// while it is writing, not at its next read.
#[test]
fn a_client_that_stops_reading_makes_room_at_once_for_a_new_connection_at_the_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), "");
    let stalled = ask_transfer(server.addr);
    let client = stalled.local_addr().expect("local addr").port();
    wait_blocked(&server, client);
    let asked = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || answers_over_tcp(server.addr)),
        "no TCP answer at the cap:\n{}",
        server.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || closed(&server, client)),
        "the stalled connection is still open: {:?}",
        server_side(server.addr, client)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "room was made only after {:?}",
        asked.elapsed()
    );
    drop(stalled);
}

/// The connection's lifetime does not cut a transfer under way (a large
/// zone over a slow link takes long; NSD and Knot do not cut it either):
/// one read at about 1.6 MB/s for twice the lifetime arrives whole, and
/// the connection ends after it.
#[test]
fn a_transfer_outlasts_the_connection_lifetime_and_the_connection_ends_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), "  tcp_max_lifetime: 2\n");
    let mut slow = ask_transfer(server.addr);
    slow.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let started = Instant::now();
    let mut received = 0;
    let ended = loop {
        let mut chunk = [0u8; 8192];
        match slow.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // Reset by the server: cut short.
            Err(_) => break false,
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    assert!(ended, "the transfer was cut: {received} bytes in {took:?}");
    // 50,000 TXT records of 100 bytes and more: the whole zone.
    assert!(received > 5_500_000, "{received} bytes in {took:?}");
    assert!(
        took > Duration::from_secs(2),
        "the transfer took {took:?}: not past the lifetime"
    );
    assert!(
        wait_until(Duration::from_secs(5), || answers_over_tcp(server.addr)),
        "no TCP answer after the transfer:\n{}",
        server.log()
    );
}

/// A connection busy with a transfer counts as busy at each message it
/// sends, not idle since its request: at the cap, the connection closed
/// to make room is one left idle after the transfer began, and the
/// transfer goes on to its end.
#[test]
fn at_the_cap_a_connection_busy_with_a_transfer_is_not_closed_as_the_longest_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(
        dir.path(),
        "  tcp_max_connections: 2\n  tcp_max_per_source: 2\n",
    );
    let mut transfer = ask_transfer(server.addr);
    transfer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert!(read_on(&mut transfer, 100_000), "{}", server.log());
    // A connection asked once, after the transfer's request, then quiet.
    let mut idle = TcpStream::connect(server.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let soa = query_message(
        &Name::from_ascii("example.com.").expect("name"),
        RecordType::SOA,
        false,
    );
    assert!(common::ask_on(&mut idle, &soa).is_some());
    let idle_port = idle.local_addr().expect("local addr").port();
    // Many messages of the transfer leave after it.
    assert!(read_on(&mut transfer, 400_000), "{}", server.log());
    // A third connection at the cap is answered: room is made by closing
    // the idle one, not the transfer.
    assert!(answers_over_tcp(server.addr), "{}", server.log());
    assert!(
        wait_until(Duration::from_secs(5), || closed(&server, idle_port)),
        "the idle connection is still open: {:?}",
        server_side(server.addr, idle_port)
    );
    // To its end: then the connection waits for another query.
    transfer
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut received = 500_000;
    let cut = loop {
        let mut chunk = [0u8; 65536];
        match transfer.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => received += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            // Reset by the server: cut short.
            Err(_) => break true,
        }
    };
    assert!(
        !cut && received > 5_500_000,
        "the transfer was cut after {received} bytes:\n{}",
        server.log()
    );
}

/// A transfer cut short after its first message (a record that fits in
/// no message, not even one of 64 KiB, after those that fit in the
/// first) closes the connection at once: the client reads the first
/// message, then the connection's end, not silence until the idle
/// timeout as after a whole transfer.
#[test]
fn a_transfer_cut_short_after_its_first_message_closes_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut zone = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("read the example zone");
    // 65,535 bytes of TXT data: with its owner and header, over 64 KiB.
    let mut strings = vec![format!("\"{}\"", "x".repeat(255)); 255];
    strings.push(format!("\"{}\"", "y".repeat(254)));
    zone.push_str(&format!("huge 300 IN TXT {}\n", strings.join(" ")));
    let file = dir.path().join("example.com.zone");
    std::fs::write(&file, zone).expect("write the zone");
    let server = serve(
        dir.path(),
        &file,
        "  tcp_idle_timeout: 30\n  tcp_max_connections: 2\n  tcp_max_per_source: 2\n",
    );
    let mut client = TcpStream::connect(server.addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    client
        .write_all(&axfr_request())
        .expect("send the AXFR request");
    let asked = Instant::now();
    let mut messages = 0;
    let end = loop {
        let mut length = [0u8; 2];
        if let Err(e) = client.read_exact(&mut length) {
            break e.kind();
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if let Err(e) = client.read_exact(&mut message) {
            break e.kind();
        }
        messages += 1;
    };
    assert!(
        matches!(end, ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset),
        "{end:?} after {messages} messages in {:?}:\n{}",
        asked.elapsed(),
        server.log()
    );
    assert_eq!(messages, 1, "{}", server.log());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the connection ended only after {:?}",
        asked.elapsed()
    );
    assert!(
        server.log().contains("a record does not fit in 64 KiB"),
        "{}",
        server.log()
    );
}

/// The server's resident memory, in KiB.
fn rss_kib(server: &Geofailover) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.process.pid()))
        .expect("read the server's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Ten transfers of a 6 MB zone at once, none read: each is sent as it is
/// encoded, so the server holds a few messages per transfer, not the zone
/// encoded ten times over (about 60 MB); at most eight are encoded at
/// once, the others wait their turn; then ten read to the end all finish
/// whole.
#[test]
fn ten_transfers_at_once_hold_little_memory_and_all_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(
        dir.path(),
        "  tcp_max_connections: 40\n  tcp_max_per_source: 40\n",
    );
    let before = rss_kib(&server);
    let stalled: Vec<TcpStream> = (0..10).map(|_| ask_transfer(server.addr)).collect();
    let ports: Vec<u16> = stalled
        .iter()
        .map(|s| s.local_addr().expect("local addr").port())
        .collect();
    let blocked = |ports: &[u16]| {
        ports
            .iter()
            .filter(|p| server_side(server.addr, **p).is_some_and(|(s, q)| s == 1 && q > 0))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || blocked(&ports) == 8),
        "{} transfers blocked writing",
        blocked(&ports)
    );
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(
        grown < 30 * 1024,
        "the server grew by {} MiB holding ten unread transfers",
        grown / 1024
    );
    drop(stalled);
    let digs: Vec<std::process::Child> = (0..10)
        .map(|_| {
            std::process::Command::new("dig")
                .args([
                    "+noall",
                    "+stats",
                    "-p",
                    &server.addr.port().to_string(),
                    "@127.0.0.1",
                    "example.com",
                    "AXFR",
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("dig")
        })
        .collect();
    for dig in digs {
        let out = dig.wait_with_output().expect("dig");
        let text = String::from_utf8_lossy(&out.stdout);
        let records: u64 = text
            .split("XFR size: ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(records > 50_000, "an incomplete transfer: {text}");
    }
}
