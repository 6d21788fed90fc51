//! The status page as a person sees it: real headless Chromium loads it
//! from the real binary after a switchover, runs its script, and must show
//! the secondary as active with the reason. A screenshot is kept as an
//! artifact (its path is printed).

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::{Geofailover, http, status_json, wait_until};

fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(path).exists() {
            return path;
        }
    }
    panic!("chromium is not installed: run tests/run.sh, which installs it");
}

/// Chromium's flags for a closed machine: no sandbox (root), no GPU, no
/// background connections, a fresh profile.
fn headless(profile: &std::path::Path) -> Command {
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=4000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

#[test]
fn after_a_switchover_the_page_shows_the_secondary_active_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _) = common::start_example(dir.path(), None, |t| t);
    let addr = server.http.expect("http");
    let token = Geofailover::token(dir.path());
    let (code, reply) = http(
        "POST",
        addr,
        "/api/v1/failover",
        Some(&token),
        r#"{"reason": "move to the offsite site for the page test", "operator": "dana"}"#,
    );
    assert_eq!(code, 200, "{reply}");

    let profile = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/", server.url());
    let dom = headless(profile.path())
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    // Rendered by the page's script, not in the HTML as served.
    assert!(
        html.contains("secondary (secondary, epoch 1)"),
        "the page does not show the secondary active:\n{html}"
    );
    assert!(
        html.contains("because: failover by dana (move to the offsite site for the page test)"),
        "no reason on the page:\n{html}"
    );
    assert!(html.contains("dana"), "no operator on the page:\n{html}");
    assert!(
        html.contains("198.51.100.10"),
        "no answer on the page:\n{html}"
    );

    let shot: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(profile.path())
        .arg("--window-size=412,1400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a real screenshot"
    );
    eprintln!("screenshot of the status page: {}", shot.display());
}

#[test]
fn a_blocked_failover_shows_a_red_line_and_readiness_shows_yes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary, _) = common::start_example(dir.path(), None, |t| t);
    let addr = server.http.expect("http");
    let token = Geofailover::token(dir.path());
    let (code, reply) = http("POST", addr, "/api/v1/pause", Some(&token), "{}");
    assert_eq!(code, 200, "{reply}");
    primary.set_healthy(false);
    assert!(wait_until(Duration::from_secs(15), || {
        status_json(addr)["failover_blocked"].is_string()
    }));

    let profile = tempfile::tempdir().expect("tempdir");
    let dom = headless(profile.path())
        .arg("--dump-dom")
        .arg(format!("{}/", server.url()))
        .output()
        .expect("run chromium");
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains(r#"<div id="blocked" class="alert">the primary is down and no failover starts: paused</div>"#),
        "no red blocked line:\n{html}"
    );
    assert!(
        html.contains("failover ready: "),
        "no readiness line:\n{html}"
    );
    assert!(html.contains(">yes</span>"), "readiness not yes:\n{html}");
}
