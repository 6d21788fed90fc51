//! TLS to the databases and to the application's flag: two real MariaDB
//! servers with certificates from a CA made with openssl in the test, the
//! controller's account allowed in only over TLS (`REQUIRE SSL`), and the
//! flag's HTTP calls to an HTTPS front (socat) of the application switch.

mod common;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::{
    AppSwitch, Process, free_port,
    mariadb::{ADMIN_PASSWORD, Pair, Setup},
    tls::Ca,
    wait_until,
};

const SECONDARY: &str = "198.51.100.10";

/// Each database and mysql check of the example gets `tls` (a YAML flow
/// mapping) under its password line.
fn with_tls(config: &str, tls: &str) -> String {
    config
        .lines()
        .map(|line| {
            if line.trim_start() == "password_env: GEOFAILOVER_DB_PASSWORD" {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{line}\n{indent}tls: {tls}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

/// `geofailover check --live` on `config` as written to `path`.
fn check_live(path: &Path, config: &str) -> (Output, String) {
    std::fs::write(path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["check", "--live", "--config"])
        .arg(path)
        .env("GEOFAILOVER_DB_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run check --live");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The read-only step at the secondary's database, as `check --live`
/// prints it.
fn database_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.contains(" database read_only"))
        .unwrap_or_else(|| panic!("no database line in:\n{text}"))
}

/// socat terminating TLS with `cert`/`key` on a free port, relaying to
/// `port`.
fn https_front(cert: &Path, key: &Path, port: u16) -> (Process, u16) {
    let front = free_port();
    let child = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{front},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            cert.display(),
            key.display()
        ))
        .arg(format!("TCP:127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat is not installed: run tests/run.sh");
    let process = Process::new(child, "socat");
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            front
        ))
        .is_ok()),
        "socat did not start"
    );
    (process, front)
}

#[test]
fn checks_replication_and_read_only_mode_run_over_verified_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(certs.path(), "ca");
    let other = Ca::new(certs.path(), "other");
    let (db_cert, db_key) = ca.issue("db", "DNS:db.test,IP:127.0.0.1");
    let (app_cert, app_key) = ca.issue("app", "IP:127.0.0.1");
    let pair = Pair::start_with(&[
        format!("--ssl-cert={}", db_cert.display()),
        format!("--ssl-key={}", db_key.display()),
        format!("--ssl-ca={}", ca.pem.display()),
    ]);
    // The controller's account gets in over TLS only: every statement it
    // runs below went encrypted.
    pair.primary
        .must("ALTER USER 'geofailover'@'%' REQUIRE SSL");
    pair.catch_up();
    assert!(
        pair.secondary
            .must("SELECT ssl_type FROM mysql.user WHERE user = 'geofailover'")
            == "ANY"
    );

    let switch = AppSwitch::start();
    let (_front, front) = https_front(&app_cert, &app_key, switch.port);
    let base = format!("https://127.0.0.1:{front}");
    let flag = format!(
        "      http:\n        url: {base}/admin/read-only\n        check_url: {base}/status\n        check_contains: read-only\n        undo_url: {base}/admin/read-write\n        ca_file: {}\n",
        ca.pem.display()
    );
    let tls = format!("{{ca_file: {}}}", ca.pem.display());
    let setup = Setup::start_on(
        pair,
        ADMIN_PASSWORD,
        |config| {
            let anchor = "        content: \"read-only\\n\"\n";
            assert!(config.contains(anchor), "no flag_file in the example");
            with_tls(&config, &tls).replacen(anchor, &format!("{anchor}{flag}"), 1)
        },
        false,
    );
    setup.wait_healthy();
    let st = setup.status();
    for site in 0..2 {
        let database = &st["sites"][site]["checks"][1];
        assert_eq!(database["last_detail"], "SELECT 1 answered", "{st}");
        assert!(
            database["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("(TLS)")),
            "{database}"
        );
    }
    // Replication is watched, and every failover step found ready (the
    // secondary's privileges and the flag's status page over HTTPS).
    assert!(
        wait_until(Duration::from_secs(15), || {
            let st = setup.status();
            st["replication"]["sql_running"] == true && st["failover_ready"]["ready"] == true
        }),
        "{}",
        setup.status()
    );

    setup.primary_web.set_healthy(false);
    setup.wait_for_answer(SECONDARY);
    assert_eq!(setup.pair.secondary.must("SELECT @@read_only"), "1");
    assert!(
        switch
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /admin/read-only")),
        "the flag was not set over HTTPS: {:?}",
        switch.requests()
    );

    // The same deployment with other TLS settings, checked once.
    let config = std::fs::read_to_string(setup.config()).expect("read config");
    let variant = setup.dir.path().join("variant.yaml");
    let ours = ca.pem.display().to_string();
    let theirs = other.pem.display().to_string();
    let tls_line = format!("tls: {{ca_file: {ours}}}");

    let (_, text) = check_live(&variant, &config);
    assert!(
        database_line(&text).starts_with("ok"),
        "verified TLS was refused:\n{text}"
    );
    let (out, text) = check_live(&variant, &config.replace(&tls_line, ""));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        database_line(&text).contains("Access denied"),
        "a connection in clear was let in:\n{text}"
    );
    let (out, text) = check_live(&variant, &config.replace(&ours, &theirs));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = database_line(&text);
    assert!(
        line.starts_with("FAILED")
            && line.contains("TLS: the server's certificate is not signed by a CA in tls.ca_file"),
        "a server certificate from another CA was accepted:\n{text}"
    );
    assert!(!text.contains(ADMIN_PASSWORD), "{text}");
    let (out, text) = check_live(
        &variant,
        &config.replace(
            &tls_line,
            &format!("tls: {{ca_file: {ours}, server_name: other.test}}"),
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        database_line(&text).contains("certificate"),
        "a certificate for another name was accepted:\n{text}"
    );
    let (_, text) = check_live(
        &variant,
        &config.replace(
            &tls_line,
            &format!("tls: {{ca_file: {ours}, server_name: db.test}}"),
        ),
    );
    assert!(database_line(&text).starts_with("ok"), "{text}");
    let (_, text) = check_live(
        &variant,
        &config.replace(
            &tls_line,
            &format!("tls: {{ca_file: {theirs}, verify: false}}"),
        ),
    );
    assert!(database_line(&text).starts_with("ok"), "{text}");
}
