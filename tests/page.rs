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

/// The page at `url` as Chromium's script leaves it, in a window `width`
/// CSS pixels wide.
fn rendered(url: &str, width: u32) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let dom = headless(profile.path())
        .arg(format!("--window-size={width},1600"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// A screenshot of the page at `url`, `width` by `height`, kept as
/// target/tmp/`name`.
fn screenshot(url: &str, width: u32, height: u32, name: &str) {
    let profile = tempfile::tempdir().expect("tempdir");
    let shot: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&shot);
    let out = headless(profile.path())
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
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

    let url = format!("{}/", server.url());
    let html = rendered(&url, 800);
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

    screenshot(&url, 412, 1400, "status-page.png");
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

    let html = rendered(&format!("{}/", server.url()), 800);
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

/// The attributes of each element whose tag and class start as `opening`
/// (such as `<rect class="active-band`), in document order.
fn elements(html: &str, opening: &str) -> Vec<std::collections::HashMap<String, String>> {
    html.match_indices(opening)
        .map(|(at, _)| {
            let tag = &html[at..at + html[at..].find('>').expect("a closed tag")];
            let mut attributes = std::collections::HashMap::new();
            let mut rest = tag;
            while let Some(eq) = rest.find("=\"") {
                let name = rest[..eq].rsplit(' ').next().unwrap_or("").to_string();
                let value_end = rest[eq + 2..].find('"').expect("a closed value");
                attributes.insert(name, rest[eq + 2..eq + 2 + value_end].to_string());
                rest = &rest[eq + 2 + value_end + 1..];
            }
            attributes
        })
        .collect()
}

fn number(attributes: &std::collections::HashMap<String, String>, name: &str) -> f64 {
    attributes
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {attributes:?}"))
}

#[test]
fn the_timeline_draws_a_failover_and_a_failback_where_they_happened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary, _) = common::start_example(dir.path(), None, |t| t);
    let addr = server.http.expect("http");
    let token = Geofailover::token(dir.path());
    primary.set_healthy(false);
    assert!(
        wait_until(Duration::from_secs(20), || status_json(addr)["active_role"]
            == "secondary"),
        "no failover:\n{}",
        server.log()
    );
    primary.set_healthy(true);
    common::fail_back_when_ready(addr, &token, "erin");

    let url = format!("{}/", server.url());
    // Headless Chromium keeps a window at least 500 CSS pixels wide (a
    // larger device scale does not lower it): the narrowest it shows is
    // that, a large phone's width.
    for (width, name) in [
        (1200, "status-timeline.png"),
        (500, "status-timeline-phone.png"),
    ] {
        let html = rendered(&url, width);
        // What the script drew, not the script's own text.
        let html = &html[..html.find("<script>").unwrap_or(html.len())];

        // Where the answers pointed: primary, secondary, primary again.
        let active = elements(html, "<rect class=\"active-band");
        let sites: Vec<&str> = active.iter().map(|a| a["data-site"].as_str()).collect();
        assert_eq!(sites, ["primary", "secondary", "primary"], "{html}");
        let body = &elements(html, "<body")[0];
        let viewport = number(body, "data-viewport");
        assert!(
            (viewport - f64::from(width)).abs() <= 2.0,
            "a viewport of {viewport}"
        );
        let svg = &elements(html, "<svg id=\"timeline-svg\"")[0];
        assert!(
            number(svg, "width") <= viewport,
            "the timeline is wider than the window: {svg:?}"
        );
        // The markers of the failover and the fail-back sit on the
        // transitions.
        let markers = elements(html, "<g class=\"marker\"");
        let at = |event: &str| {
            let marker = markers
                .iter()
                .find(|m| m["data-event"] == event)
                .unwrap_or_else(|| panic!("no {event} marker in {markers:?}"));
            number(marker, "data-x")
        };
        let (over, back) = (at("failed_over"), at("failed_back"));
        let second = &active[1];
        let (start, end) = (
            number(second, "x"),
            number(second, "x") + number(second, "width"),
        );
        assert!(
            (over - start).abs() <= 2.0 && (back - end).abs() <= 2.0,
            "markers at {over} and {back}, transitions at {start} and {end}"
        );
        assert!(over < back);
        // Hovering a marker shows its journal entry (its title); tapping
        // shows the same below the picture.
        let failback = &html[html.find("data-event=\"failed_back\"").expect("a marker")..];
        let title = &failback[..failback.find("</title>").expect("a title")];
        assert!(
            title.contains("erin") && title.contains("fail-back"),
            "{title}"
        );
        // The primary's health band shows it down in between.
        let down = elements(html, "<rect class=\"band tl-down");
        assert!(
            down.iter().any(|b| b["data-site"] == "primary"
                && number(b, "x") <= over
                && number(b, "x") + number(b, "width") >= over
                && number(b, "x") + number(b, "width") <= back + 2.0),
            "no down band for the primary before the failover: {down:?}"
        );
        // Each check has its latency sparkline.
        let sparks = elements(html, "<svg class=\"spark\"");
        assert!(
            sparks.len() == 2 && sparks.iter().all(|s| number(s, "data-samples") >= 2.0),
            "{sparks:?}"
        );

        screenshot(&url, width, 1600, name);
    }
}

/// A signed zone on the page: "signed", the key with its role and the
/// signatures' expiry, as Chromium renders them.
#[test]
fn a_signed_zone_shows_its_key_and_signature_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _) = common::start_example(dir.path(), None, |text| {
        text.replace(
            "  - name: example.com\n",
            "  - name: example.com\n    dnssec: {}\n",
        )
    });
    let status = common::http(
        "GET",
        server.http.expect("http"),
        "/api/v1/status",
        None,
        "",
    )
    .1;
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    let signed = &status["dns"]["zones"]
        .as_array()
        .and_then(|zones| zones.iter().find(|z| z["zone"] == "example.com."))
        .expect("example.com in status")["dnssec"];
    let tag = signed["keys"][0]["tag"].as_u64().expect("a key tag");
    let expires = signed["expires"].as_str().expect("expiry").to_string();
    let html = rendered(&format!("{}/", server.url()), 1200);
    assert!(html.contains(">signed<"), "no signed badge:\n{html}");
    assert!(
        html.contains(&format!("CSK {tag}")),
        "no key {tag}:\n{html}"
    );
    assert!(
        html.contains(&format!("signatures valid until {expires}")),
        "no expiry {expires}:\n{html}"
    );
}
