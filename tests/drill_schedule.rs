//! Drills on a schedule, with the example's stand-in sites: a short
//! period runs two drills by itself, a pause makes the next one a
//! journalled skip, and a drill overdue by more than its period is told
//! to the webhook.

mod common;

use std::time::Duration;

use common::{Geofailover, WebhookSink, http, status_json, wait_until};

fn events(server: &Geofailover) -> Vec<serde_json::Value> {
    common::journal(server.http.expect("http"))
}

#[test]
fn a_schedule_runs_drills_by_itself_skips_while_paused_and_tells_an_overdue_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = WebhookSink::start();
    let (server, _primary, _secondary, _) = common::start_example(dir.path(), Some(&hook), |t| {
        let hold = "  hold: 30s                      # time on the secondary (default 30s)\n";
        assert!(t.contains(hold), "the example's drill section changed");
        t.replace("      ttl: 30\n", "      ttl: 5\n").replace(
            hold,
            "  hold: 1s\n  every: 6s\n  window: {days: [mon, tue, wed, thu, fri, sat, sun], utc_offset: \"+01:00\"}\n",
        )
    });
    let addr = server.http.expect("http");
    let history = || {
        status_json(addr)["drill_history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(120), || history().len() >= 2),
        "no two drills: {:?}\n{}",
        history(),
        server.log()
    );
    for drill in history() {
        assert_eq!(drill["operator"], "schedule", "{drill}");
        assert_eq!(drill["result"], "pass", "{drill}");
    }
    // Each report has the drill's timeline, each step with its duration:
    // in the Markdown and in the status the page draws from.
    let steps = &history()[0]["steps"];
    let hold = steps
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "hold"))
        .unwrap_or_else(|| panic!("no hold step: {steps}"));
    assert!(
        hold["ms"]
            .as_u64()
            .is_some_and(|ms| (1000..3000).contains(&ms)),
        "{hold}"
    );
    let reports: Vec<_> = std::fs::read_dir(dir.path().join("state/drills"))
        .expect("the drills folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    let markdown = std::fs::read_to_string(&reports[0]).expect("a report");
    let timeline = &markdown[markdown.find("## Timeline").expect("a timeline section")..];
    let hold_line = timeline
        .lines()
        .find(|l| l.starts_with("hold "))
        .unwrap_or_else(|| panic!("no hold bar:\n{timeline}"));
    assert!(
        hold_line.contains('#') && hold_line.trim_end().ends_with(" s"),
        "{hold_line}"
    );
    let schedule = &status_json(addr)["drill_schedule"];
    assert_eq!(schedule["every"], "6s", "{schedule}");
    assert!(
        schedule["window"]
            .as_str()
            .is_some_and(|w| w == "every day at any hour UTC+01:00"),
        "{schedule}"
    );

    let token = Geofailover::token(dir.path());
    // Paused once no drill runs (a drill holds the controller's pause).
    assert!(
        wait_until(Duration::from_secs(60), || {
            status_json(addr)["drill"].is_null()
                && http(
                    "POST",
                    addr,
                    "/api/v1/pause",
                    Some(&token),
                    r#"{"operator": "fran"}"#,
                )
                .0 == 200
                && status_json(addr)["drill"].is_null()
        }),
        "could not pause between drills"
    );
    let drills_before = history().len();
    let skipped = || {
        events(&server)
            .into_iter()
            .filter(|e| e["event"] == "drill_skipped")
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(30), || !skipped().is_empty()),
        "no skip journalled:\n{}",
        server.log()
    );
    let skip = &skipped()[0];
    assert_eq!(skip["actor"], "schedule", "{skip}");
    assert!(
        skip["summary"]
            .as_str()
            .is_some_and(|s| s.contains("not paused: paused")),
        "{skip}"
    );
    // Twice the period after the last drill began, it is overdue.
    assert!(
        hook.heard("drill_overdue"),
        "no overdue webhook: {:?}",
        hook.received()
    );
    assert!(
        events(&server)
            .iter()
            .any(|e| e["event"] == "drill_overdue"),
        "the overdue drill is not journalled"
    );
    assert!(
        status_json(addr)["drill_schedule"]["overdue_since"].is_string(),
        "{}",
        status_json(addr)["drill_schedule"]
    );
    assert_eq!(history().len(), drills_before, "a drill ran while paused");
    assert_eq!(
        skipped().len(),
        1,
        "a skip is journalled once per due drill"
    );
}
