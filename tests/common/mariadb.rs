//! Real MariaDB servers for tests: each `mariadbd` in its own temporary
//! folder on a free loopback port, stopped by PID when dropped; and a pair
//! set up with GTID replication primary -> secondary, with the accounts a
//! deployment has: a replication user, an application user without SUPER
//! or READ ONLY ADMIN, and geofailover's own admin account.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use std::path::Path;

use super::{Geofailover, Process, StandIn, free_port, http, status_json, wait_until};

pub const ADMIN_USER: &str = "geofailover";
pub const ADMIN_PASSWORD: &str = "admin-secret-4711";
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-secret-0815";
/// The replication account's password (as `Pair` creates it).
pub const REPL_PASSWORD: &str = "repl-secret";

pub struct MariaDb {
    pub port: u16,
    pub server_id: u32,
    /// Options beyond the standard ones, such as TLS's.
    extra: Vec<String>,
    socket: PathBuf,
    process: Process,
    dir: tempfile::TempDir,
}

fn require(binary: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let path = format!("{dir}/{binary}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!("{binary} is not installed: run tests/run.sh, which installs mariadb-server");
}

impl MariaDb {
    /// A fresh server with binary logging and GTID strict mode.
    pub fn start(server_id: u32) -> Self {
        Self::start_with(server_id, &[])
    }

    /// `start`, with `extra` options for `mariadbd`.
    pub fn start_with(server_id: u32, extra: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        // mariadb-install-db fails now and then under load (its bootstrap
        // server gives up); it is run one at a time and tried again.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        let mut failures = String::new();
        let installed = (0..3).any(|_| {
            let _ = std::fs::remove_dir_all(&data);
            let install = Command::new(require("mariadb-install-db"))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--user=root"])
                .output()
                .expect("run mariadb-install-db");
            if !install.status.success() {
                failures.push_str(&String::from_utf8_lossy(&install.stdout));
                failures.push_str(&String::from_utf8_lossy(&install.stderr));
            }
            install.status.success()
        });
        drop(guard);
        assert!(
            installed,
            "mariadb-install-db failed three times: {failures}"
        );
        let port = free_port();
        let socket = dir.path().join("sock");
        let process = Self::spawn(dir.path(), port, server_id, extra);
        let server = Self {
            port,
            server_id,
            extra: extra.to_vec(),
            socket,
            process,
            dir,
        };
        server.wait_up();
        server
    }

    /// `mariadbd` on the data in `dir`.
    fn spawn(dir: &Path, port: u16, server_id: u32, extra: &[String]) -> Process {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("error.log"))
            .expect("log file");
        let child = Command::new(require("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-bin={}", dir.join("binlog").display()))
            .arg(format!("--server-id={server_id}"))
            .args([
                "--user=root",
                "--skip-name-resolve",
                "--gtid-strict-mode=ON",
                "--log-slave-updates=ON",
                "--innodb-buffer-pool-size=16M",
                "--skip-slave-start",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        Process::new(child, "mariadbd")
    }

    fn wait_up(&self) {
        assert!(
            wait_until(Duration::from_secs(30), || self.root("SELECT 1").is_ok()),
            "mariadbd {} did not start",
            self.server_id
        );
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until
    /// it is gone.
    pub fn crash(&mut self) {
        self.process.signal("KILL");
        assert!(
            self.process.wait_exit(Duration::from_secs(10)).is_some(),
            "mariadbd {} did not die",
            self.server_id
        );
    }

    /// Starts the server again on its data and port, after `crash`.
    pub fn restart(&mut self) {
        self.process = Self::spawn(self.dir.path(), self.port, self.server_id, &self.extra);
        self.wait_up();
    }

    /// Runs SQL as root over the socket; the rows, tab-separated.
    pub fn root(&self, sql: &str) -> Result<String, String> {
        run_client(
            &[
                format!("--socket={}", self.socket.display()),
                "-uroot".into(),
            ],
            sql,
        )
    }

    /// Runs SQL as `user` over TCP, as an application would.
    pub fn as_user(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        as_user_at(self.port, user, password, sql)
    }

    pub fn must(&self, sql: &str) -> String {
        self.root(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// An application writing rows at a database as the application user,
/// one every 10 ms, keeping the id of every INSERT that was acknowledged;
/// stopped when dropped.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
    /// When each acknowledged write was sent.
    times: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts writing at the database on `port` and waits until `first`
    /// writes were acknowledged.
    pub fn start(port: u16, first: usize) -> Self {
        Self::start_following(vec![port], first)
    }

    /// Like `start`, each write tried at `ports` in order until one
    /// acknowledges it: an application that follows whichever database
    /// takes writes.
    pub fn start_following(ports: Vec<u16>, first: usize) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, acked, times) = (stop.clone(), acked.clone(), times.clone());
            std::thread::spawn(move || {
                // Ids are unique across the writers of one test process.
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
                while !stop.load(Ordering::Relaxed) {
                    let id = NEXT.fetch_add(1, Ordering::Relaxed);
                    let sql = format!("INSERT INTO app.orders VALUES ({id}, 'order {id}')");
                    let at = std::time::Instant::now();
                    if ports
                        .iter()
                        .any(|port| as_user_at(*port, APP_USER, APP_PASSWORD, &sql).is_ok())
                    {
                        acked.lock().expect("lock").push(id);
                        times.lock().expect("lock").push(at);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let writer = Self {
            stop,
            acked,
            times,
            thread: Some(thread),
        };
        assert!(
            wait_until(Duration::from_secs(15), || writer.acked().len() >= first),
            "only {} writes acknowledged",
            writer.acked().len()
        );
        writer
    }

    /// The longest time between two acknowledged writes: how long the
    /// application could not write.
    pub fn longest_gap(&self) -> Duration {
        let times = self.times.lock().expect("lock");
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    /// How many writes were acknowledged that were sent after `at`.
    pub fn acked_since(&self, at: std::time::Instant) -> usize {
        self.times
            .lock()
            .expect("lock")
            .iter()
            .filter(|t| **t > at)
            .count()
    }

    /// The ids acknowledged so far.
    pub fn acked(&self) -> Vec<u32> {
        self.acked.lock().expect("lock").clone()
    }

    /// Stops writing; every id acknowledged.
    pub fn stop(mut self) -> Vec<u32> {
        self.halt();
        self.acked()
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The ids in `app.orders`.
pub fn ids(db: &MariaDb) -> Vec<u32> {
    db.must("SELECT id FROM app.orders")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Asserts every acknowledged id is at both databases (the secondary
/// first catching up).
pub fn assert_nothing_lost(pair: &Pair, acked: &[u32]) {
    let at_primary = ids(&pair.primary);
    pair.catch_up();
    let at_secondary = ids(&pair.secondary);
    for id in acked {
        assert!(
            at_primary.contains(id),
            "acknowledged id {id} lost at the primary"
        );
        assert!(
            at_secondary.contains(id),
            "acknowledged id {id} missing at the secondary"
        );
    }
}

/// Runs SQL as `user` over TCP at a loopback `port`.
pub fn as_user_at(port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
    let args = [
        "-h127.0.0.1".to_string(),
        format!("-P{port}"),
        format!("-u{user}"),
        format!("-p{password}"),
    ];
    run_client(&args, sql)
}

/// The `mariadb` client with `args`, running `sql`.
fn run_client(args: &[String], sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .args(["--no-defaults", "-N", "-B"])
        .args(args)
        .args(["-e", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Two servers, the secondary replicating from the primary with GTIDs.
pub struct Pair {
    pub primary: MariaDb,
    pub secondary: MariaDb,
}

impl Pair {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// `start`, both servers with `extra` options for `mariadbd`.
    pub fn start_with(extra: &[String]) -> Self {
        let (primary, secondary) = std::thread::scope(|s| {
            let a = s.spawn(|| MariaDb::start_with(1, extra));
            let b = s.spawn(|| MariaDb::start_with(2, extra));
            (a.join().expect("primary"), b.join().expect("secondary"))
        });
        primary.must(&format!(
            "CREATE DATABASE app;
             CREATE TABLE app.orders (id INT PRIMARY KEY, note VARCHAR(64));
             CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-secret';
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
             CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';
             GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO '{APP_USER}'@'%';
             CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
             GRANT READ_ONLY ADMIN, SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, BINLOG ADMIN ON *.* TO '{ADMIN_USER}'@'%';
             GRANT SELECT ON mysql.* TO '{ADMIN_USER}'@'%';"
        ));
        secondary.must(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl',
               MASTER_PASSWORD='repl-secret', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
             START SLAVE;",
            primary.port
        ));
        let pair = Self { primary, secondary };
        pair.catch_up();
        pair
    }

    /// Waits until the secondary has applied everything the primary wrote.
    pub fn catch_up(&self) {
        Self::reach(&self.primary, &self.secondary);
    }

    /// After a promotion: the old primary, now the secondary's replica,
    /// applies everything the secondary wrote (within 30 s).
    pub fn catch_up_from_secondary(&self) {
        Self::reach(&self.secondary, &self.primary);
    }

    fn reach(source: &MariaDb, replica: &MariaDb) {
        let position = source.must("SELECT @@gtid_binlog_pos");
        let waited = replica.must(&format!("SELECT MASTER_GTID_WAIT('{position}', 30)"));
        assert_eq!(waited, "0", "the replica did not reach {position}");
    }
}

/// config/example-mysql.yaml with `pair`'s database ports, the flag file
/// in `flag_dir` and the sites' web checks at `primary_web` and
/// `secondary_web` (addresses).
pub fn mysql_example(
    pair: &Pair,
    flag_dir: &Path,
    primary_web: &str,
    secondary_web: &str,
) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-mysql.yaml"))
        .expect("read config/example-mysql.yaml")
        .replace(
            "path: ../state/READONLY",
            &format!("path: {}", flag_dir.join("READONLY").display()),
        )
        .replace(
            "127.0.0.1:3306",
            &format!("127.0.0.1:{}", pair.primary.port),
        )
        .replace(
            "127.0.0.1:3307",
            &format!("127.0.0.1:{}", pair.secondary.port),
        )
        .replace("127.0.0.1:18081", primary_web)
        .replace("127.0.0.1:18082", secondary_web)
}

/// config/example-mysql.yaml on this test's ports and folder.
pub fn mysql_config(dir: &Path, pair: &Pair, primary_web: u16, secondary_web: u16) -> PathBuf {
    let state = dir.join("state");
    let text = mysql_example(
        pair,
        &state,
        &format!("127.0.0.1:{primary_web}"),
        &format!("127.0.0.1:{secondary_web}"),
    )
    .replace(
        "state_dir: ../state",
        &format!("state_dir: {}", state.display()),
    )
    .replace("../zones/", &format!("{}/", super::repo_zones().display()))
    .replace("127.0.0.1:5353", "127.0.0.1:0")
    .replace("127.0.0.1:8053", "127.0.0.1:0");
    let path = dir.join("example-mysql.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

pub struct Setup {
    /// The state folder's memory, when it is kept there.
    _memory: Option<tempfile::TempDir>,
    pub pair: Pair,
    pub primary_web: StandIn,
    pub secondary_web: StandIn,
    pub server: Geofailover,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn start(admin_password: &str) -> Self {
        Self::start_edited(admin_password, |config| config, |_| {})
    }

    /// Like `start`, with the config text edited by `edit` and `prepare`
    /// run on the databases before the controller starts.
    pub fn start_edited(
        admin_password: &str,
        edit: impl FnOnce(String) -> String,
        prepare: impl FnOnce(&Pair),
    ) -> Self {
        Self::start_with(admin_password, edit, prepare, false)
    }

    /// `start_edited`; `in_memory` keeps the state folder in memory (see
    /// `state_in_memory`), for tests that hold a failover to a time bound.
    pub fn start_with(
        admin_password: &str,
        edit: impl FnOnce(String) -> String,
        prepare: impl FnOnce(&Pair),
        in_memory: bool,
    ) -> Self {
        let pair = Pair::start();
        prepare(&pair);
        Self::start_on(pair, admin_password, edit, in_memory)
    }

    /// The controller on `pair`, already started.
    pub fn start_on(
        pair: Pair,
        admin_password: &str,
        edit: impl FnOnce(String) -> String,
        in_memory: bool,
    ) -> Self {
        let primary_web = StandIn::start(0);
        let secondary_web = StandIn::start(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = in_memory
            .then(|| super::state_in_memory(dir.path()))
            .flatten();
        let config = mysql_config(dir.path(), &pair, primary_web.port, secondary_web.port);
        let text = std::fs::read_to_string(&config).expect("read config");
        std::fs::write(&config, edit(text)).expect("write config");
        let server =
            Geofailover::start_with_env(&config, &[("GEOFAILOVER_DB_PASSWORD", admin_password)]);
        Self {
            _memory: memory,
            pair,
            primary_web,
            secondary_web,
            server,
            dir,
        }
    }

    pub fn api(&self) -> std::net::SocketAddr {
        self.server.http.expect("http")
    }

    /// POSTs `body` to the API's `path` with the token: (status, body).
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        http("POST", self.api(), path, Some(&self.token()), body)
    }

    pub fn status(&self) -> serde_json::Value {
        status_json(self.api())
    }

    pub fn wait_healthy(&self) {
        let healthy = wait_until(Duration::from_secs(30), || {
            let st = self.status();
            st["sites"][0]["health"] == "healthy" && st["sites"][1]["health"] == "healthy"
        });
        assert!(
            healthy,
            "sites not healthy: {}\n{}",
            self.status(),
            self.server.log()
        );
    }

    pub fn token(&self) -> String {
        Geofailover::token(self.dir.path())
    }

    /// The config file the controller runs.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("example-mysql.yaml")
    }

    /// The stored state, as JSON.
    pub fn stored(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("state/state.json"))
            .expect("read the state file");
        serde_json::from_str(&text).expect("state JSON")
    }

    /// Kills the controller with SIGKILL and starts it again on the same
    /// config and state.
    pub fn kill_and_restart(&mut self, before_restart: impl FnOnce()) {
        self.server.process.signal("KILL");
        assert!(
            self.server
                .process
                .wait_exit(Duration::from_secs(10))
                .is_some(),
            "geofailover did not die"
        );
        before_restart();
        self.server = Geofailover::start_with_env(
            &self.config(),
            &[("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)],
        );
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        super::journal(self.api())
    }

    pub fn flag(&self) -> PathBuf {
        self.dir.path().join("state/READONLY")
    }

    /// Waits until the failover record www.example.com answers `address`.
    pub fn wait_for_answer(&self, address: &str) {
        let answered = wait_until(Duration::from_secs(20), || {
            super::a_records(self.server.addr, "www.example.com.") == [address]
        });
        assert!(
            answered,
            "www.example.com never answered {address}:\n{}",
            self.server.log()
        );
    }

    /// Starts a drill through the API; returns its id.
    pub fn start_drill(&self, body: &str) -> String {
        let (code, reply) = self.post("/api/v1/drill", body);
        assert_eq!(code, 202, "{reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("json");
        reply["id"].as_str().expect("an id").to_string()
    }

    /// Waits for drill `id` to end and returns its report.
    pub fn drill_report(&self, id: &str, within: Duration) -> serde_json::Value {
        let ended = wait_until(within, || {
            let st = self.status();
            st["drill"].is_null() && st["last_drill"]["id"] == id
        });
        assert!(
            ended,
            "the drill did not end: {}\n{}",
            self.status(),
            self.server.log()
        );
        let (code, body) = http("GET", self.api(), "/api/v1/drill/last", None, "");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("report")
    }

    /// Fails back as operator "erin" once the pre-checks pass (polled with
    /// dry runs).
    pub fn fail_back(&self) {
        let ready = wait_until(Duration::from_secs(30), || {
            let (_, body) = self.post("/api/v1/failback", r#"{"dry_run": true}"#);
            body.contains("\"accepted\":true")
        });
        assert!(ready, "{}", self.status()["failback_prechecks"]);
        let (code, reply) = self.post("/api/v1/failback", r#"{"operator": "erin"}"#);
        assert_eq!(code, 200, "{reply}");
    }
}

// failover.mode: promote

/// Both servers semi-synchronous in both roles, waiting AFTER_SYNC; a
/// primary with no replica acknowledging falls back after 2 s.
pub fn semi_sync() -> Vec<String> {
    [
        "--rpl-semi-sync-master-enabled=ON",
        "--rpl-semi-sync-slave-enabled=ON",
        "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
        "--rpl-semi-sync-master-timeout=2000",
    ]
    .map(String::from)
    .to_vec()
}

/// The example config in `mode: promote`, promotion after `after`, the
/// primary site with a flag file of its own (set when it is fenced).
pub fn promote_mode(after: &str) -> impl FnOnce(String) -> String {
    let after = after.to_string();
    move |text: String| {
        let state = text
            .lines()
            .find_map(|l| l.strip_prefix("state_dir: "))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("state_dir")
            .to_string();
        text.replace(
            "  flag_clear_margin: 1s",
            &format!(
                "  flag_clear_margin: 1s\n  mode: promote\n  promote_after: {after}\n  fence_after: 1s\n"
            ),
        )
        .replace(
            "    max_lag: 5s                  # fail-back needs the secondary this close",
            "    max_lag: 5s\n    user: repl\n    password_env: GEOFAILOVER_REPL_PASSWORD",
        )
        .replace(
            "      app_accounts: [\"app@%\"]\n  - name: secondary",
            &format!(
                "      app_accounts: [\"app@%\"]\n    read_only:\n      flag_file:\n        path: {state}/PRIMARY-READONLY\n        content: \"read-only\\n\"\n  - name: secondary"
            ),
        )
    }
}

/// What fencing and promotion need beyond the read-only grants.
pub fn grant_promotion(pair: &Pair) {
    pair.primary.must(&format!(
        "GRANT PROCESS, CONNECTION ADMIN, RELOAD ON *.* TO '{ADMIN_USER}'@'%'"
    ));
    pair.catch_up();
}
