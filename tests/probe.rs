//! Each probe kind against real listeners on loopback: http status, body
//! and timeout; https with our own CA, the Host name as TLS server name, and
//! verification on by default; tcp connect.

mod common;

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::{Process, StandIn, free_port, tls::Ca, wait_until};
use geofailover::{
    config::{Check, CheckKind, HttpCheck},
    probe::Prober,
};

fn http_check(url: String) -> HttpCheck {
    HttpCheck {
        url,
        method: "GET".into(),
        host: None,
        expect_status: vec![200],
        body_contains: None,
        tls_verify: true,
        ca_file: None,
    }
}

fn check(kind: CheckKind) -> Check {
    Check {
        name: "probe".into(),
        kind,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        fall: 3,
        rise: 3,
    }
}

async fn run(kind: CheckKind) -> (bool, String) {
    let result = Prober::new(&check(kind)).expect("prober").run().await;
    (result.ok, result.detail)
}

#[tokio::test]
async fn http_status_and_body_decide_the_result() {
    let site = StandIn::start(0);
    let url = format!("http://127.0.0.1:{}/health", site.port);
    assert_eq!(
        run(CheckKind::Http(http_check(url.clone()))).await,
        (true, "HTTP 200".into())
    );

    let mut wants_body = http_check(url.clone());
    wants_body.body_contains = Some("ok".into());
    assert!(run(CheckKind::Http(wants_body.clone())).await.0);
    wants_body.body_contains = Some("all systems go".into());
    let (ok, detail) = run(CheckKind::Http(wants_body)).await;
    assert!(!ok && detail.contains("body lacks"), "{detail}");

    site.set_healthy(false);
    let (ok, detail) = run(CheckKind::Http(http_check(url.clone()))).await;
    assert!(!ok && detail.contains("HTTP 503"), "{detail}");
    let mut accepts_503 = http_check(url);
    accepts_503.expect_status = vec![200, 503];
    assert!(run(CheckKind::Http(accepts_503)).await.0);
}

#[tokio::test]
async fn http_connection_refused_and_silence_fail_within_the_timeout() {
    let (ok, detail) = run(CheckKind::Http(http_check(format!(
        "http://127.0.0.1:{}/",
        free_port()
    ))))
    .await;
    assert!(!ok, "{detail}");

    // Accepts the connection, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", silent.local_addr().expect("addr"));
    let start = std::time::Instant::now();
    let (ok, detail) = run(CheckKind::Http(http_check(url))).await;
    assert!(!ok, "{detail}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn tcp_connect_succeeds_or_names_the_refusal() {
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = open.local_addr().expect("addr");
    assert_eq!(
        run(CheckKind::Tcp { address }).await,
        (true, "connected".into())
    );
    let closed = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let (ok, detail) = run(CheckKind::Tcp { address: closed }).await;
    assert!(!ok && detail.contains("refused"), "{detail}");
}

/// `openssl s_server -www` with a certificate for site.test signed by a CA
/// of our own (`ca.pem` in `dir`), on a free port.
fn https_site(dir: &Path) -> (Process, u16) {
    let ca = Ca::new(dir, "ca");
    ca.issue("site", "DNS:site.test");
    let port = free_port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "site.pem",
            "-key",
            "site.key",
            "-www",
            "-quiet",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let process = Process::new(child, "openssl s_server");
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "s_server did not start"
    );
    (process, port)
}

#[tokio::test]
async fn https_is_verified_against_the_ca_file_under_the_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, port) = https_site(dir.path());
    let mut https = http_check(format!("https://127.0.0.1:{port}/"));
    https.host = Some("site.test".into());

    // Verified by default: our CA is unknown to the system.
    let (ok, detail) = run(CheckKind::Http(https.clone())).await;
    assert!(!ok, "an unknown CA was accepted: {detail}");

    https.ca_file = Some(dir.path().join("ca.pem"));
    let (ok, detail) = run(CheckKind::Http(https.clone())).await;
    assert!(ok, "{detail}");

    // The certificate is for site.test, not for another name.
    let mut wrong_name = https.clone();
    wrong_name.host = Some("other.test".into());
    let (ok, detail) = run(CheckKind::Http(wrong_name)).await;
    assert!(!ok, "a certificate for another name was accepted: {detail}");

    let mut unverified = http_check(format!("https://127.0.0.1:{port}/"));
    unverified.tls_verify = false;
    let (ok, detail) = run(CheckKind::Http(unverified)).await;
    assert!(ok, "{detail}");
}
