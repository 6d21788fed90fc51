//! Shared test harness: the real geofailover binary and the reference
//! servers (Knot, NSD; a validating Unbound in `unbound`; Zonemaster and
//! a Knot that signs in `zonemaster`), each started
//! on a loopback port in a temporary folder and stopped by PID when
//! dropped; and DNS queries over real UDP and TCP sockets.
#![allow(dead_code)]

pub mod cluster;
pub mod corpus;
pub mod etcd;
pub mod flood;
pub mod mariadb;
pub mod netns;
pub mod secondary;
pub mod tls;
pub mod unbound;
pub mod zonemaster;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};

/// The repository's shipped zone files.
pub fn repo_zones() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
}

/// The shipped example zones: (origin, file name in zones/).
pub const EXAMPLE_ZONES: &[(&str, &str)] = &[
    ("example.com", "example.com.zone"),
    ("2.0.192.in-addr.arpa", "2.0.192.in-addr.arpa.zone"),
];

/// A loopback port free for both UDP and TCP right now, and never handed
/// out before in this test process (a port given to one part of a test
/// and not bound yet is not given to another). It is taken below the
/// kernel's ephemeral range (`ip_local_port_range`), so no outgoing
/// connection of a client can take it between this choice and the bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let high = ephemeral.clamp(12_000, 65_535);
    let low = high.saturating_sub(10_000);
    // Each test process starts elsewhere in the range.
    let offset = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + (offset.wrapping_add(n)) % (high - low)) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            let mut given = GIVEN.lock().expect("ports lock");
            if !given.contains(&port) {
                given.push(port);
                return port;
            }
        }
    }
}

/// dig's output for one question or transfer at `addr`, with extra
/// options.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["-p", &addr.port().to_string(), &format!("@{}", addr.ip())])
        .args(args)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed and reaped when dropped.
pub struct Process {
    child: Child,
    pub name: &'static str,
}

impl Process {
    pub fn new(child: Child, name: &'static str) -> Self {
        Self { child, name }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }
}

impl Drop for Process {
    /// SIGTERM first, so the process cleans up after itself; SIGKILL if it
    /// has not gone within five seconds.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

fn require(binary: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = format!("{dir}/{binary}");
        if Path::new(&path).exists() {
            return path;
        }
    }
    panic!("{binary} is not installed: run tests/run.sh, which installs the test dependencies");
}

/// geofailover `serve`, started from a config file.
pub struct Geofailover {
    pub process: Process,
    /// The DNS address.
    pub addr: SocketAddr,
    /// The status page and API, when the config has them.
    pub http: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Geofailover {
    /// Writes a config serving `zones` (origin, zone file path) on a port
    /// the kernel picks, into `dir`.
    pub fn write_config(dir: &Path, zones: &[(&str, PathBuf)]) -> PathBuf {
        let mut text = String::from("dns:\n  listen:\n    - 127.0.0.1:0\nzones:\n");
        for (origin, file) in zones {
            text.push_str(&format!(
                "  - name: {origin}\n    file: {}\n",
                file.display()
            ));
        }
        let path = dir.join("geofailover.yaml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The shipped example config, rewritten to run in `dir`: DNS on a
    /// port the kernel picks, state in `dir/state`, zone files from zones/,
    /// and the two sites' health URLs on the given ports.
    pub fn example_config(dir: &Path, primary_port: u16, secondary_port: u16) -> PathBuf {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml"),
        )
        .expect("read config/example.yaml");
        let zones = format!("{}/", repo_zones().display());
        let state = dir.join("state");
        let text = text
            .replace("127.0.0.1:5353", "127.0.0.1:0")
            .replace("127.0.0.1:8053", "127.0.0.1:0")
            .replace(
                "state_dir: ../state",
                &format!("state_dir: {}", state.display()),
            )
            .replace("../zones/", &zones)
            .replace("127.0.0.1:18081", &format!("127.0.0.1:{primary_port}"))
            .replace("127.0.0.1:18082", &format!("127.0.0.1:{secondary_port}"));
        let path = dir.join("example.yaml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The example zones, from zones/.
    pub fn example_zones() -> Vec<(&'static str, PathBuf)> {
        EXAMPLE_ZONES
            .iter()
            .map(|(origin, file)| (*origin, repo_zones().join(file)))
            .collect()
    }

    /// Starts `serve` and waits for its "listening on" line.
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// `start`, with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_node(config, None, env)
    }

    /// `start_with_env` as one node of a cluster (`--node NAME`); a node
    /// that serves no DNS (a witness) has 0.0.0.0:0 as its DNS address.
    pub fn start_node(config: &Path, node: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::start_in(None, config, node, env)
    }

    /// `start_node`, inside a network namespace when one is given.
    pub fn start_in(
        namespace: Option<&netns::Namespace>,
        config: &Path,
        node: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let binary = env!("CARGO_BIN_EXE_geofailover");
        let mut command = match namespace {
            Some(namespace) => namespace.command(binary),
            None => Command::new(binary),
        };
        command.args(["serve", "--config"]).arg(config);
        if let Some(node) = node {
            command.args(["--node", node]);
        }
        let mut child = command
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start geofailover");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut process = Process {
            child,
            name: "geofailover",
        };
        let mut addr = None;
        let found = wait_until(Duration::from_secs(20), || {
            addr = log.lock().expect("log lock").iter().find_map(|line| {
                if line.contains("serves no DNS") {
                    return Some(SocketAddr::from(([0, 0, 0, 0], 0)));
                }
                let rest = line.split("listening on ").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            });
            addr.is_some() || process.child.try_wait().ok().flatten().is_some()
        });
        let addr = match (found, addr) {
            (true, Some(addr)) => addr,
            _ => {
                let status = process.wait_exit(Duration::from_secs(1));
                let lines = log.lock().expect("log lock").join("\n");
                panic!("geofailover did not start ({status:?}); its log:\n{lines}");
            }
        };
        // The HTTP side starts after DNS; its line follows shortly if at all.
        let has_http = std::fs::read_to_string(config)
            .map(|t| t.lines().any(|l| l.starts_with("http:")))
            .unwrap_or(false);
        let mut http = None;
        if has_http {
            wait_until(Duration::from_secs(20), || {
                http = log.lock().expect("log lock").iter().find_map(|line| {
                    let rest = line.split("status page on http://").nth(1)?;
                    rest.split('/').next()?.parse().ok()
                });
                http.is_some()
            });
            assert!(
                http.is_some(),
                "no status page line:\n{}",
                log.lock().expect("log lock").join("\n")
            );
        }
        Self {
            process,
            addr,
            http,
            log,
        }
    }

    /// The HTTP base URL.
    pub fn url(&self) -> String {
        format!(
            "http://{}",
            self.http.expect("this config has no http section")
        )
    }

    /// The API token the server created in its state directory.
    pub fn token(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("state/api.token"))
            .expect("read the API token")
            .trim()
            .to_string()
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Waits until the log has `count` lines containing `needle`.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> bool {
        wait_until(Duration::from_secs(20), || {
            self.log
                .lock()
                .expect("log lock")
                .iter()
                .filter(|l| l.contains(needle))
                .count()
                >= count
        })
    }
}

/// Keeps `dir/state` in memory (a folder in /dev/shm it links to), for
/// the tests that hold a failover to a time bound: the answers change
/// only once the state is fsynced, and this machine's shared disk stalls
/// an fsync for seconds now and then (up to 11 s was measured while the
/// suite ran), which is the disk's time, not the controller's.
/// `bench/failover.sh` measures with the state on disk. Without /dev/shm,
/// the state stays on disk.
pub fn state_in_memory(dir: &Path) -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return None;
    }
    let memory = tempfile::tempdir_in(shm).ok()?;
    std::os::unix::fs::symlink(memory.path(), dir.join("state")).ok()?;
    Some(memory)
}

/// The shipped example config in `dir` with stand-in sites (both
/// healthy), an optional webhook, and `edit` applied to its text; starts
/// the binary and waits until both sites count as healthy.
pub fn start_example(
    dir: &Path,
    webhook: Option<&WebhookSink>,
    edit: impl FnOnce(String) -> String,
) -> (Geofailover, StandIn, StandIn, PathBuf) {
    let primary = StandIn::start(0);
    let secondary = StandIn::start(0);
    let config = Geofailover::example_config(dir, primary.port, secondary.port);
    let mut text = std::fs::read_to_string(&config).expect("read");
    if let Some(hook) = webhook {
        text.push_str(&hook.config());
    }
    std::fs::write(&config, edit(text)).expect("write");
    let server = Geofailover::start(&config);
    assert!(
        server.wait_for_log("site primary is now healthy", 1)
            && server.wait_for_log("site secondary is now healthy", 1),
        "{}",
        server.log()
    );
    (server, primary, secondary, config)
}

/// A reference server (Knot or NSD) serving zone files on loopback.
pub struct Reference {
    pub process: Process,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Reference {
    /// knotd serving `zones` from `zone_dir`.
    pub fn knot(zone_dir: &Path, zones: &[(&str, &str)]) -> Self {
        let knotd = require("knotd");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut conf = format!(
            "server:\n  listen: 127.0.0.1@{port}\n  rundir: {run}\n  user: root\n\
             database:\n  storage: {run}/db\n\
             template:\n  - id: default\n    storage: {zones}\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
             log:\n  - target: stderr\n    any: warning\nzone:\n",
            run = dir.path().display(),
            zones = zone_dir.display()
        );
        for (origin, file) in zones {
            conf.push_str(&format!("  - domain: {origin}\n    file: {file}\n"));
        }
        let path = dir.path().join("knot.conf");
        std::fs::write(&path, conf).expect("write knot.conf");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start knotd");
        Self::ready("knotd", child, ([127, 0, 0, 1], port).into(), zones, dir)
    }

    /// nsd serving `zones` from `zone_dir` (response rate limiting off).
    pub fn nsd(zone_dir: &Path, zones: &[(&str, &str)]) -> Self {
        Self::nsd_at(zone_dir, zones, ([127, 0, 0, 1], free_port()).into())
    }

    /// `nsd` listening on `addr` (any loopback address, any port).
    pub fn nsd_at(zone_dir: &Path, zones: &[(&str, &str)], addr: SocketAddr) -> Self {
        let nsd = require("nsd");
        let dir = tempfile::tempdir().expect("tempdir");
        let (ip, port) = (addr.ip(), addr.port());
        let run = dir.path().display();
        let mut conf = format!(
            "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n\
             \x20 zonesdir: \"{zones}\"\n  pidfile: \"{run}/nsd.pid\"\n  database: \"\"\n\
             \x20 zonelistfile: \"{run}/zone.list\"\n  xfrdfile: \"{run}/xfrd.state\"\n  xfrdir: \"{run}\"\n\
             \x20 logfile: \"{run}/nsd.log\"\n  server-count: 1\n  rrl-ratelimit: 0\n  hide-version: yes\n\
             remote-control:\n  control-enable: no\n",
            zones = zone_dir.display()
        );
        for (origin, file) in zones {
            conf.push_str(&format!("zone:\n  name: {origin}\n  zonefile: {file}\n"));
        }
        let path = dir.path().join("nsd.conf");
        std::fs::write(&path, conf).expect("write nsd.conf");
        let child = Command::new(nsd)
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nsd");
        Self::ready("nsd", child, addr, zones, dir)
    }

    /// Waits until the server answers for its first zone.
    fn ready(
        name: &'static str,
        child: Child,
        addr: SocketAddr,
        zones: &[(&str, &str)],
        dir: tempfile::TempDir,
    ) -> Self {
        let mut process = Process { child, name };
        let origin = Name::from_ascii(zones[0].0).expect("origin");
        let up = wait_until(Duration::from_secs(20), || {
            let probe = query_message(&origin, RecordType::SOA, false);
            matches!(udp(addr, &probe), Some(r) if !r.answers.is_empty())
                || process.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            up && process.child.try_wait().ok().flatten().is_none(),
            "{name} did not start on {addr}"
        );
        Self {
            process,
            addr,
            _dir: dir,
        }
    }
}

/// A standard query; `edns` adds an OPT record offering 1232 bytes.
pub fn query_message(name: &Name, rtype: RecordType, edns: bool) -> Message {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name.clone(), rtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        message.set_edns(opt);
    }
    message
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(4242);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends raw bytes over UDP and returns the raw reply (three tries).
pub fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    // A loopback source cannot reach a namespace's address.
    let local = if addr.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(local).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    for _ in 0..3 {
        socket.send_to(bytes, addr).expect("send");
        let mut buf = vec![0u8; 65535];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// A query over UDP; `None` when nothing came back.
pub fn udp(addr: SocketAddr, message: &Message) -> Option<Message> {
    let reply = udp_raw(addr, &message.to_vec().expect("encode"))?;
    Some(Message::from_vec(&reply).expect("decode reply"))
}

/// Sends raw bytes as one TCP DNS message and returns the raw reply.
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply).ok()?;
    Some(reply)
}

/// Sends `query` on `stream` (a TCP connection kept open) and reads its
/// answer.
pub fn ask_on(stream: &mut TcpStream, query: &Message) -> Option<Message> {
    let bytes = query.to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).ok()?;
    Message::from_vec(&reply).ok()
}

/// A query over TCP.
pub fn tcp(addr: SocketAddr, message: &Message) -> Option<Message> {
    let reply = tcp_raw(addr, &message.to_vec().expect("encode"))?;
    Some(Message::from_vec(&reply).expect("decode reply"))
}

/// A stand-in web site: answers every HTTP request with 200 "ok" while
/// healthy and 503 otherwise, on a loopback port, until dropped. Made
/// silent, it accepts connections and never answers, as a host whose
/// network went quiet.
pub struct StandIn {
    pub port: u16,
    healthy: Arc<std::sync::atomic::AtomicBool>,
    silent: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl StandIn {
    pub fn start(port: u16) -> Self {
        Self::start_on([127, 0, 0, 1].into(), port)
    }

    /// A stand-in on an address of the test's choosing.
    pub fn start_on(ip: std::net::IpAddr, port: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind((ip, port))
            .unwrap_or_else(|e| panic!("stand-in site cannot listen on {ip}:{port}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let healthy = Arc::new(AtomicBool::new(true));
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, q, s) = (healthy.clone(), silent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if !q.load(Ordering::Relaxed) {
                    held.clear();
                }
                match listener.accept() {
                    Ok((stream, _)) if q.load(Ordering::Relaxed) => held.push(stream),
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut request = [0u8; 2048];
                        let _ = stream.read(&mut request);
                        let reply: &[u8] = if h.load(Ordering::Relaxed) {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                        } else {
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndown\n"
                        };
                        let _ = stream.write_all(reply);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            healthy,
            silent,
            stop,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy
            .store(healthy, std::sync::atomic::Ordering::Relaxed);
    }

    /// Silent: connections are accepted and never answered.
    pub fn set_silent(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A TCP relay on a loopback port to `target`, for faults a refusal
/// would not show: silenced, it keeps accepting and holding connections
/// but passes nothing either way; with `stall_on`, each connection stops
/// passing anything from the client on once the client sends bytes that
/// contain the needle (a server that took the connection and then
/// stopped answering at that statement).
pub struct Relay {
    pub port: u16,
    silent: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Self {
        Self::start_with(target, None)
    }

    pub fn stall_on(target: SocketAddr, needle: &'static [u8]) -> Self {
        Self::start_with(target, Some(needle))
    }

    fn start_with(target: SocketAddr, needle: Option<&'static [u8]>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (silent.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for (from, to, needle) in [
                    (client.try_clone(), server.try_clone(), needle),
                    (server.try_clone(), client.try_clone(), None),
                ] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else {
                        continue;
                    };
                    let (q, s) = (q.clone(), s.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buf = [0u8; 16384];
                        let mut stalled = false;
                        while !s.load(Ordering::Relaxed) {
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => {
                                    stalled |= needle.is_some_and(|needle| {
                                        buf[..n].windows(needle.len()).any(|w| w == needle)
                                    });
                                    if stalled || q.load(Ordering::Relaxed) {
                                        continue;
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Self { port, silent, stop }
    }

    pub fn set_silent(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The application's own read-only switch, as an HTTP admin endpoint:
/// POST /admin/read-only and /admin/read-write flip it, GET /status
/// shows it. Every request line is kept.
pub struct AppSwitch {
    pub ip: std::net::IpAddr,
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    /// While set, POST /admin/read-write fails with 503.
    pub refusing: Arc<AtomicBool>,
    /// While set, POST /admin/read-only fails with 503.
    pub failing: Arc<AtomicBool>,
    /// While set, POST /admin/read-only is read and not answered (the
    /// connection is held open), as an application that hangs; cleared,
    /// the held requests are answered.
    pub hanging: Arc<AtomicBool>,
    /// Each POST is answered this many milliseconds late (and carried
    /// out then), as a slow application.
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// The application's state: read-only or not.
    pub read_only: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl AppSwitch {
    pub fn start() -> Self {
        Self::start_on([127, 0, 0, 1].into())
    }

    /// A switch on an address of the test's choosing.
    pub fn start_on(ip: std::net::IpAddr) -> Self {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let refusing = Arc::new(AtomicBool::new(false));
        let failing = Arc::new(AtomicBool::new(false));
        let hanging = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let state = Arc::new(AtomicBool::new(false));
        let (log, halt, refuse, fail, hang, delay, shared) = (
            requests.clone(),
            stop.clone(),
            refusing.clone(),
            failing.clone(),
            hanging.clone(),
            delay_ms.clone(),
            state.clone(),
        );
        std::thread::spawn(move || {
            let mut read_only = false;
            let mut held: Vec<std::net::TcpStream> = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                // Unhung: the held requests are answered, late.
                if !hang.load(Ordering::Relaxed) && !held.is_empty() {
                    read_only = true;
                    shared.store(true, Ordering::Relaxed);
                    for mut stream in held.drain(..) {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                }
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or("").to_string();
                if hang.load(Ordering::Relaxed) && line.starts_with("POST /admin/read-only") {
                    log.lock().expect("lock").push(line);
                    held.push(stream);
                    continue;
                }
                let mut status = "200 OK";
                if line.starts_with("POST") {
                    let late = delay.load(Ordering::Relaxed);
                    if late > 0 {
                        std::thread::sleep(Duration::from_millis(late));
                    }
                }
                let body = match line.split(' ').take(2).collect::<Vec<_>>()[..] {
                    ["POST", "/admin/read-write"] if refuse.load(Ordering::Relaxed) => {
                        status = "503 Service Unavailable";
                        "busy"
                    }
                    ["POST", "/admin/read-only"] if fail.load(Ordering::Relaxed) => {
                        status = "503 Service Unavailable";
                        "busy"
                    }
                    ["POST", "/admin/read-only"] => {
                        read_only = true;
                        "ok"
                    }
                    ["POST", "/admin/read-write"] => {
                        read_only = false;
                        "ok"
                    }
                    ["GET", "/status"] if read_only => "shop is read-only",
                    _ => "shop is open",
                };
                log.lock().expect("lock").push(line);
                shared.store(read_only, Ordering::Relaxed);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Self {
            ip,
            port,
            requests,
            refusing,
            failing,
            hanging,
            delay_ms,
            read_only: state,
            stop,
        }
    }

    /// The application's flag section for this switch.
    pub fn config(&self) -> String {
        let base = format!("http://{}:{}", self.ip, self.port);
        format!(
            "      http:\n        url: {base}/admin/read-only\n        check_url: {base}/status\n        check_contains: read-only\n        undo_url: {base}/admin/read-write\n"
        )
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for AppSwitch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A webhook receiver on a loopback port: keeps every request it gets
/// and answers 200.
pub struct WebhookSink {
    pub port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl WebhookSink {
    pub fn start() -> Self {
        let hook = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = hook.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in hook.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&data).contains("\"text\"") {
                        break;
                    }
                }
                sink.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&data).to_string());
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { port, received }
    }

    /// The config lines that send notifications here.
    pub fn config(&self) -> String {
        format!(
            "\nnotify:\n  webhooks:\n    - url: http://127.0.0.1:{}/hook\n      timeout: 2s\n      retries: 1\n",
            self.port
        )
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits up to 15 s for a request containing `what`.
    pub fn heard(&self, what: &str) -> bool {
        wait_until(Duration::from_secs(15), || {
            self.received().iter().any(|r| r.contains(what))
        })
    }
}

/// The A records for `name` over UDP.
pub fn a_records(addr: SocketAddr, name: &str) -> Vec<String> {
    try_a_records(addr, name).unwrap_or_default()
}

/// The A records for `name` over UDP; `None` when nothing came back.
pub fn try_a_records(addr: SocketAddr, name: &str) -> Option<Vec<String>> {
    let query = query_message(&Name::from_ascii(name).expect("name"), RecordType::A, false);
    let reply = udp(addr, &query)?;
    Some(
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                hickory_proto::rr::RData::A(a) => Some(a.to_string()),
                _ => None,
            })
            .collect(),
    )
}

/// The zone's SOA serial over UDP; `None` when none came back.
pub fn try_soa_serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    let query = query_message(
        &Name::from_ascii(zone).expect("name"),
        RecordType::SOA,
        false,
    );
    udp(addr, &query)?
        .answers
        .iter()
        .find_map(|r| match &r.data {
            hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
}

/// The zone's SOA serial over UDP.
pub fn soa_serial(addr: SocketAddr, zone: &str) -> u32 {
    try_soa_serial(addr, zone).expect("an SOA in the answer")
}

/// One HTTP/1.1 request over a plain socket: (status, body).
pub fn http(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    try_http(method, addr, path, token, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// `http`, with an error instead of a panic when the server cannot be
/// reached or does not answer.
pub fn try_http(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP reply: {reply}"))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Fails back through the API at `addr` as `operator`, once the
/// controller says it is ready (within 20 s); the primary is then active.
pub fn fail_back_when_ready(addr: SocketAddr, token: &str, operator: &str) {
    assert!(
        wait_until(
            Duration::from_secs(20),
            || status_json(addr)["ready_for_failback"] == true
        ),
        "never ready for fail-back: {}",
        status_json(addr)
    );
    let (code, reply) = http(
        "POST",
        addr,
        "/api/v1/failback",
        Some(token),
        &format!(r#"{{"operator": "{operator}"}}"#),
    );
    assert_eq!(code, 200, "{reply}");
    assert_eq!(status_json(addr)["active_role"], "primary");
}

/// The whole journal, as the API at `addr` serves it.
/// Runs the CLI as operator "carol": (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(args)
        .env("USER", "carol")
        .output()
        .expect("run the CLI");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub fn journal(addr: SocketAddr) -> Vec<serde_json::Value> {
    let (code, body) = http("GET", addr, "/api/v1/events?since=0", None, "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("events JSON")
}

/// The controller's status as JSON.
pub fn status_json(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = http("GET", addr, "/api/v1/status", None, "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}
