//! `geofailover demo` tried as a newcomer would, following what it prints:
//! fail the primary, watch the failover, restore it, fail back; all within
//! a minute, all visible in the API. The demo uses its fixed ports
//! (5353, 8053, 18081, 18082), so this is the only test that runs it.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Process, a_records, http, status_json, wait_until};

#[test]
fn the_demo_fails_over_and_back_within_a_minute() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
    }
    let _demo = Process::new(child, "geofailover demo");
    let log = || lines.lock().expect("lock").join("\n");
    assert!(
        wait_until(Duration::from_secs(20), || log()
            .contains("status page on http://127.0.0.1:8053/")),
        "the demo did not start:\n{}",
        log()
    );
    let printed = log();
    assert!(
        printed.contains("dig @127.0.0.1 -p 5353 www.example.com +short"),
        "{printed}"
    );
    assert!(printed.contains("failback --yes --config"), "{printed}");

    let api: SocketAddr = "127.0.0.1:8053".parse().expect("addr");
    let dns: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
    let healthy = |st: &serde_json::Value| {
        st["sites"][0]["health"] == "healthy" && st["sites"][1]["health"] == "healthy"
    };
    assert!(
        wait_until(Duration::from_secs(15), || healthy(&status_json(api))),
        "{}",
        log()
    );
    assert_eq!(a_records(dns, "www.example.com."), ["192.0.2.10"]);

    let start = Instant::now();
    let (code, reply) = http(
        "POST",
        api,
        "/api/v1/demo/site",
        None,
        r#"{"site": "primary", "healthy": false}"#,
    );
    assert_eq!(code, 200, "{reply}");
    assert!(
        wait_until(Duration::from_secs(20), || status_json(api)["active_role"]
            == "secondary"),
        "no failover:\n{}",
        log()
    );
    assert_eq!(a_records(dns, "www.example.com."), ["198.51.100.10"]);

    let (code, _) = http(
        "POST",
        api,
        "/api/v1/demo/site",
        None,
        r#"{"site": "primary", "healthy": true}"#,
    );
    assert_eq!(code, 200);
    assert!(wait_until(
        Duration::from_secs(20),
        || status_json(api)["ready_for_failback"] == true
    ));
    let (code, reply) = http("POST", api, "/api/v1/demo/failback", None, "");
    assert_eq!(code, 200, "{reply}");
    assert_eq!(status_json(api)["active_role"], "primary");
    assert_eq!(a_records(dns, "www.example.com."), ["192.0.2.10"]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "failover and fail-back took {took:?}"
    );
    eprintln!("demo: failover and fail-back in {took:?}");
}
