//! The operator surface against the real binary: the JSON API and its
//! token, fail-back pre-checks, the journal, webhooks, Prometheus metrics,
//! and the CLI against a running controller.

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use common::{Geofailover, StandIn, WebhookSink, http, status_json, wait_until};

/// The example config with stand-in sites, both healthy, and (optionally)
/// a webhook.
fn start(dir: &Path, webhook: Option<&WebhookSink>) -> (Geofailover, StandIn, StandIn) {
    let (server, primary, secondary, _) = common::start_example(dir, webhook, |text| text);
    (server, primary, secondary)
}

fn events(server: &Geofailover) -> Vec<serde_json::Value> {
    common::journal(server.http.expect("http"))
}

#[test]
fn commands_without_the_token_or_with_a_wrong_one_are_401_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _p, _s) = start(dir.path(), None);
    let addr = server.http.expect("http");
    let before = status_json(addr);
    let journal_before = events(&server).len();
    let body = r#"{"reason": "test", "operator": "mallory"}"#;
    for path in [
        "/api/v1/failover",
        "/api/v1/failback",
        "/api/v1/pause",
        "/api/v1/resume",
    ] {
        for token in [None, Some("wrong-token-wrong-token")] {
            let (code, reply) = http("POST", addr, path, token, body);
            assert_eq!(code, 401, "{path} with {token:?}: {reply}");
            assert!(reply.contains("token"), "{reply}");
        }
    }
    let after = status_json(addr);
    assert_eq!(after["active"], before["active"]);
    assert_eq!(after["epoch"], before["epoch"]);
    assert_eq!(after["paused"], before["paused"]);
    assert_eq!(events(&server).len(), journal_before, "the journal changed");
    assert!(!server.log().contains("mallory"));
}

#[test]
fn switchover_needs_a_reason_and_failback_is_refused_naming_the_failing_precheck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary) = start(dir.path(), None);
    let addr = server.http.expect("http");
    let token = Geofailover::token(dir.path());

    let (code, reply) = http("POST", addr, "/api/v1/failover", Some(&token), "{}");
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("reason is required"), "{reply}");
    let (code, reply) = http("POST", addr, "/api/v1/failover", Some(&token), "{not json");
    assert_eq!(code, 400, "{reply}");

    // Traffic is on the primary: fail-back makes no sense yet.
    let (code, reply) = http("POST", addr, "/api/v1/failback", Some(&token), "{}");
    assert_eq!(code, 409, "{reply}");
    assert!(reply.contains("traffic on the secondary failed"), "{reply}");

    let (code, reply) = http(
        "POST",
        addr,
        "/api/v1/failover",
        Some(&token),
        r#"{"reason": "planned maintenance", "operator": "alice"}"#,
    );
    assert_eq!(code, 200, "{reply}");
    assert_eq!(status_json(addr)["active_role"], "secondary");

    // The primary goes down: fail-back is refused, and the dry run says why.
    primary.set_healthy(false);
    assert!(wait_until(Duration::from_secs(10), || {
        status_json(addr)["sites"][0]["health"] == "down"
    }));
    let (code, reply) = http(
        "POST",
        addr,
        "/api/v1/failback",
        Some(&token),
        r#"{"dry_run": true}"#,
    );
    assert_eq!(code, 200, "{reply}");
    let dry: serde_json::Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(dry["accepted"], false);
    assert!(
        dry["summary"]
            .as_str()
            .unwrap_or("")
            .contains("primary healthy"),
        "{reply}"
    );
    let (code, reply) = http(
        "POST",
        addr,
        "/api/v1/failback",
        Some(&token),
        r#"{"operator": "alice"}"#,
    );
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply.contains("primary healthy failed") && reply.contains("HTTP 503"),
        "{reply}"
    );
    assert_eq!(status_json(addr)["active_role"], "secondary");

    // Healthy again: fail-back goes through.
    primary.set_healthy(true);
    common::fail_back_when_ready(addr, &token, "alice");

    // The journal has the operator's name, the reason and the outcome.
    let journal = events(&server);
    let switch = journal
        .iter()
        .find(|e| e["event"] == "switched_over")
        .expect("the switchover is journalled");
    assert_eq!(switch["actor"], "alice");
    assert!(
        switch["summary"]
            .as_str()
            .unwrap_or("")
            .contains("planned maintenance")
    );
    assert!(
        journal
            .iter()
            .any(|e| e["event"] == "refused" && e["actor"] == "alice")
    );
    assert!(journal.iter().any(|e| e["event"] == "answers_switched"));
    let seqs: Vec<u64> = journal
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let last = seqs[seqs.len() - 1];
    let (_, newer) = http(
        "GET",
        addr,
        &format!("/api/v1/events?since={}", last - 1),
        None,
        "",
    );
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&newer)
            .expect("json")
            .len(),
        1
    );
    let (code, _) = http("GET", addr, "/api/v1/events?since=soon", None, "");
    assert_eq!(code, 400);
}

/// Parses Prometheus text format strictly enough to catch malformed output:
/// every sample belongs to a family announced by HELP and TYPE, and its
/// value is a number. Returns (name with labels, value) pairs.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut announced = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            announced.push(rest.split(' ').next().expect("name").to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("name");
            assert!(
                announced.last().is_some_and(|n| n == name),
                "TYPE without HELP: {line}"
            );
            assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
        } else {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line: {line}"));
            let name = series.split('{').next().expect("name");
            assert!(
                announced.iter().any(|n| n == name),
                "sample of an unannounced family: {line}"
            );
            if let Some(labels) = series.strip_prefix(name)
                && !labels.is_empty()
            {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(!v.trim_end_matches('"').contains('"'), "{line}");
                }
            }
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            samples.push((series.to_string(), value));
        }
    }
    samples
}

#[test]
fn metrics_are_prometheus_text_with_every_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _p, _s) = start(dir.path(), None);
    common::a_records(server.addr, "www.example.com.");
    let (code, text) = http("GET", server.http.expect("http"), "/metrics", None, "");
    assert_eq!(code, 200, "{text}");
    let samples = parse_prometheus(&text);
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("geofailover_check_up{site=\"primary\",check=\"health\"}"),
        1.0
    );
    assert_eq!(value("geofailover_site_healthy{site=\"secondary\"}"), 1.0);
    assert_eq!(
        value("geofailover_active_site{site=\"primary\",role=\"primary\"}"),
        1.0
    );
    assert_eq!(value("geofailover_failovers_total"), 0.0);
    assert!(value("geofailover_dns_responses_total{rcode=\"NOERROR\"}") >= 1.0);
    assert_eq!(
        value("geofailover_soa_serial{zone=\"example.com.\"}"),
        2026112101.0
    );
    assert!(value("geofailover_check_latency_seconds{site=\"primary\",check=\"health\"}") > 0.0);
}

#[test]
fn a_webhook_hears_of_the_failover_and_of_ready_for_failback() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary) = start(dir.path(), Some(&hook));
    primary.set_healthy(false);
    assert!(
        hook.heard("\"event\":\"failed_over\""),
        "{:?}\n{}",
        hook.received(),
        server.log()
    );
    assert!(
        hook.heard("\"text\":\"geofailover: failover"),
        "{:?}",
        hook.received()
    );
    primary.set_healthy(true);
    assert!(
        hook.heard("\"event\":\"ready_for_failback\""),
        "{:?}",
        hook.received()
    );
}

use common::cli;

#[test]
fn the_cli_shows_status_switches_over_and_refuses_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _p, _s) = start(dir.path(), None);
    let config = dir.path().join("example.yaml");
    let config = config.to_str().expect("utf-8");
    let url = server.url();

    let (code, out, err) = cli(&["status", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("active: primary (primary), epoch 0"), "{out}");
    assert!(out.contains("www.example.com. 30 A -> 192.0.2.10"), "{out}");
    let (code, out, _) = cli(&["status", "--json", "--config", config, "--url", &url]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("json")["active"],
        "primary"
    );

    let (code, out, err) = cli(&[
        "failover", "--reason", "cli test", "--config", config, "--url", &url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("failover by carol (cli test)"), "{out}");
    assert_eq!(
        common::a_records(server.addr, "www.example.com."),
        ["198.51.100.10"]
    );

    let (code, out, err) = cli(&["failback", "--dry-run", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[pass] primary healthy"), "{out}");
    // No terminal to confirm on: --yes is required.
    let (code, _, err) = cli(&["failback", "--config", config, "--url", &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (code, out, err) = cli(&["failback", "--yes", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fail-back by carol"), "{out}");

    let (code, _, err) = cli(&["pause", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_json(server.http.expect("http"))["paused"], true);
    let (code, _, err) = cli(&["resume", "--config", config, "--url", &url]);
    assert_eq!(code, 0, "{err}");

    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token-not-the-token\n").expect("write");
    let (code, _, err) = cli(&[
        "pause",
        "--config",
        config,
        "--url",
        &url,
        "--token-file",
        wrong.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the token was refused") && err.contains("wrong.token"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-token"),
        "the token was printed: {err}"
    );

    drop(server);
    let (code, _, err) = cli(&["status", "--config", config, "--url", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the controller") && err.contains("geofailover serve"),
        "{err}"
    );
}

/// The router alone, without a socket: the same rules hold.
#[tokio::test]
async fn the_router_refuses_commands_without_the_token() {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = Geofailover::example_config(dir.path(), common::free_port(), common::free_port());
    let config = geofailover::config::Config::load(&path).expect("config");
    let zones = geofailover::zone::load_all(&config).expect("zones");
    let (events, inbox) = tokio::sync::mpsc::channel(64);
    let controller = geofailover::control::Controller::start(&config, zones, events.clone())
        .await
        .expect("controller");
    let (reads, read_inbox) = tokio::sync::mpsc::channel(64);
    tokio::spawn(geofailover::control::run(controller, inbox, read_inbox));
    let state = geofailover::web::WebState {
        control: events,
        reads,
        token: Arc::new(geofailover::config::Secret::new(
            "a-token-of-sixteen-or-more".into(),
        )),
        protect_reads: false,
        demo: None,
        drill_hold: std::time::Duration::from_secs(30),
        reload: None,
    };
    let request = |token: Option<&str>| {
        let mut builder = Request::post("/api/v1/pause");
        if let Some(token) = token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        builder.body(Body::empty()).expect("request")
    };
    let app = geofailover::web::app(state);
    for token in [None, Some("a-token-of-sixteen-or-morf")] {
        let response = app.clone().oneshot(request(token)).await.expect("response");
        assert_eq!(response.status(), 401);
    }
    let status = app
        .clone()
        .oneshot(
            Request::get("/api/v1/status")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let body = status.into_body().collect().await.expect("body").to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status["paused"], false);

    let response = app
        .clone()
        .oneshot(request(Some("a-token-of-sixteen-or-more")))
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let page = app
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let body = page.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("const DEMO = false;"));
}

#[test]
fn protect_reads_puts_the_status_and_metrics_behind_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Geofailover::example_config(dir.path(), common::free_port(), common::free_port());
    let text = std::fs::read_to_string(&config).expect("read");
    let text = text.replace("# protect_reads: false", "protect_reads: true");
    assert!(
        text.contains("  protect_reads: true"),
        "the example lost its protect_reads line"
    );
    std::fs::write(&config, text).expect("write");
    let server = Geofailover::start(&config);
    let addr = server.http.expect("http");
    let token = Geofailover::token(dir.path());
    for path in ["/api/v1/status", "/api/v1/events?since=0", "/metrics"] {
        assert_eq!(http("GET", addr, path, None, "").0, 401, "{path}");
        assert_eq!(
            http("GET", addr, path, Some("nope-nope-nope-nope"), "").0,
            401,
            "{path}"
        );
        assert_eq!(http("GET", addr, path, Some(&token), "").0, 200, "{path}");
    }
    // The page itself loads, and asks for the token.
    let (code, page) = http("GET", addr, "/", None, "");
    assert_eq!(code, 200);
    assert!(page.contains("needs the API token"));
}

#[test]
fn a_state_that_cannot_be_stored_is_told_once_per_decision_and_stored_again_when_it_can() {
    let hook = WebhookSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary) = start(dir.path(), Some(&hook));
    // The state file's place is taken by a folder: every save fails.
    let file = dir.path().join("state/state.json");
    assert!(file.exists(), "no state file after start");
    // A save may come between the removal and the folder: try again.
    let blocker = dir.path().join("blocker");
    std::fs::create_dir_all(blocker.join("blocked")).expect("a folder");
    let placed = (0..50).any(|_| {
        let _ = std::fs::remove_file(&file);
        std::fs::rename(&blocker, &file).is_ok()
    });
    assert!(placed, "could not put a folder in the state file's place");
    primary.set_healthy(false);
    assert!(
        hook.heard("the state could not be stored"),
        "{:?}\n{}",
        hook.received(),
        server.log()
    );
    // The answers still follow the decision.
    assert!(
        wait_until(Duration::from_secs(10), || {
            common::a_records(server.addr, "www.example.com.") == ["198.51.100.10"]
        }),
        "{}",
        server.log()
    );
    // Steps keep coming (a check result every second): each decision
    // (epoch) that cannot be stored is told once only, the failover's too.
    let told = || {
        hook.received()
            .iter()
            .filter(|r| r.contains("could not be stored"))
            .filter_map(|r| {
                r.split("\"epoch\":")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect::<Vec<u64>>()
    };
    let failover_epoch = status_json(server.http.expect("http"))["epoch"]
        .as_u64()
        .expect("epoch");
    assert!(
        wait_until(Duration::from_secs(10), || told().contains(&failover_epoch)),
        "{:?}",
        hook.received()
    );
    let repeated = wait_until(Duration::from_secs(3), || {
        let epochs = told();
        let mut unique = epochs.clone();
        unique.dedup();
        unique.len() != epochs.len()
    });
    assert!(!repeated, "{:?}", hook.received());

    std::fs::remove_dir_all(&file).expect("clear the folder");
    assert!(
        wait_until(Duration::from_secs(10), || file.is_file()),
        "{}",
        server.log()
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(stored["engine"]["active"], "secondary", "{stored}");
    assert!(
        server.wait_for_log("the state is stored again", 1),
        "{}",
        server.log()
    );
    let (_, events) = http(
        "GET",
        server.http.expect("http"),
        "/api/v1/events?since=0",
        None,
        "",
    );
    let events: Vec<serde_json::Value> = serde_json::from_str(&events).expect("json");
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let failed = names.iter().position(|n| *n == "state_not_saved");
    let saved = names.iter().position(|n| *n == "state_saved");
    assert!(
        matches!((failed, saved), (Some(f), Some(s)) if f < s),
        "{names:?}"
    );
}

#[test]
fn a_command_whose_state_cannot_be_stored_answers_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary) = start(dir.path(), None);
    let api = server.http.expect("http");
    let token = Geofailover::token(dir.path());
    let file = dir.path().join("state/state.json");
    // A save may come between the removal and the folder: try again.
    let blocker = dir.path().join("blocker");
    std::fs::create_dir_all(blocker.join("blocked")).expect("a folder");
    let placed = (0..50).any(|_| {
        let _ = std::fs::remove_file(&file);
        std::fs::rename(&blocker, &file).is_ok()
    });
    assert!(placed, "could not put a folder in the state file's place");

    let (code, reply) = http(
        "POST",
        api,
        "/api/v1/pause",
        Some(&token),
        r#"{"operator": "erin"}"#,
    );
    assert_eq!(code, 500, "{reply}");
    assert!(
        reply.contains("not carried out") && reply.contains("could not be stored"),
        "{reply}"
    );
    assert_eq!(status_json(api)["paused"], false);
    let journal = events(&server);
    let failed = journal
        .iter()
        .find(|e| e["event"] == "command_failed")
        .expect("command_failed journalled");
    assert_eq!(failed["actor"], "erin", "{failed}");
    assert!(
        !journal.iter().any(|e| e["event"] == "paused"),
        "{journal:?}"
    );

    // Once the state can be stored again, the same command works.
    std::fs::remove_dir_all(&file).expect("clear the folder");
    let (code, reply) = http(
        "POST",
        api,
        "/api/v1/pause",
        Some(&token),
        r#"{"operator": "erin"}"#,
    );
    assert_eq!(code, 200, "{reply}");
    assert_eq!(status_json(api)["paused"], true);
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(stored["engine"]["paused"], true, "{stored}");
}

/// Secrets are never shown: a webhook's path (the credential of a chat
/// webhook), a check URL's password and query, and the API token appear
/// in no log line, on no page and in no status, even after the webhook
/// was used and the check failed.
#[test]
fn webhook_paths_check_passwords_and_the_token_are_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = common::WebhookSink::start();
    let (server, primary, _secondary, _config) =
        common::start_example(dir.path(), Some(&hook), |text| {
            text.replace("/hook", "/services/T0/B0/WEBHOOKSECRET")
                .replacen(
                    "url: http://127.0.0.1:",
                    "url: http://ops:CHECKPASSWORD@127.0.0.1:",
                    1,
                )
                .replacen("/health", "/health?key=QUERYSECRET", 1)
        });
    let http = server.http.expect("http");
    // The primary fails (the check's error is shown) and the webhook is used.
    primary.set_healthy(false);
    assert!(hook.heard("failover"), "{}", server.log());
    assert!(hook.received().iter().any(|r| r.contains("WEBHOOKSECRET")));
    let token = Geofailover::token(dir.path());
    let status = common::http("GET", http, "/api/v1/status", None, "").1;
    let page = common::http("GET", http, "/", None, "").1;
    let metrics = common::http("GET", http, "/metrics", None, "").1;
    let events = common::http("GET", http, "/api/v1/events", None, "").1;
    assert!(status.contains("127.0.0.1"), "{status}");
    for (what, text) in [
        ("the log", server.log()),
        ("the status", status),
        ("the page", page),
        ("/metrics", metrics),
        ("the events", events),
    ] {
        for secret in [
            "WEBHOOKSECRET",
            "CHECKPASSWORD",
            "QUERYSECRET",
            token.as_str(),
        ] {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
    assert!(
        server.log().contains("http://127.0.0.1:"),
        "{}",
        server.log()
    );
}

/// config/grafana-dashboard.json is importable JSON whose queries name
/// only metrics that /metrics serves (its HELP and TYPE lines are there
/// whatever the configuration), with the labels its legends use.
#[test]
fn the_grafana_dashboard_names_only_served_metrics() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grafana-dashboard.json"),
    )
    .expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["title"], "geofailover");
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary) = start(dir.path(), None);
    // A response, so the rcode series exists.
    assert!(!common::a_records(server.addr, "www.example.com.").is_empty());
    let metrics = http("GET", server.http.expect("http"), "/metrics", None, "").1;
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            let mut rest = expr;
            while let Some(at) = rest.find("geofailover_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
            // Every label a legend names is one the series carry.
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            for label in legend
                .split("{{")
                .skip(1)
                .filter_map(|l| l.split("}}").next())
            {
                assert!(
                    metrics.contains(&format!("{label}=\""))
                        || label == "secondary"
                        || label == "thread",
                    "{expr}: no series carries the label {label}"
                );
            }
        }
    }
    assert!(names.len() > 15, "{names:?}");
    for name in names {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} is not in /metrics:\n{metrics}"
        );
    }
}

/// Status requests are served after probe results: eight clients asking
/// for the status without pause do not delay a failover.
#[test]
fn a_stream_of_status_requests_does_not_delay_a_failover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, primary, _secondary) = start(dir.path(), None);
    let api = server.http.expect("http");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, asked) = (stop.clone(), asked.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if common::try_http("GET", api, "/api/v1/status", None, "").is_ok() {
                        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    primary.set_healthy(false);
    // Three failed checks a second apart, then the switch.
    let moved = wait_until(Duration::from_secs(8), || {
        common::a_records(server.addr, "www.example.com.") == ["198.51.100.10"]
    });
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    assert!(moved, "no failover within 8 s: {}", server.log());
    let asked = asked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        asked > 100,
        "only {asked} status requests were answered meanwhile"
    );
    eprintln!("failover after {took:?} with {asked} status requests answered meanwhile");
}
