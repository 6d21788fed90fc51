//! The engine's promotion rules (`failover.mode: promote`), step by step
//! with no I/O: when an automatic promotion may start (the wait, RPO 0,
//! the fence), what a restart or a new leader resumes, which results are
//! taken, and the switchover back. Then seeded random runs checking the
//! rules after every step. A failing run prints its seed; replay it with
//! `GEOFAILOVER_SIM_SEED=<seed> cargo test --test engine_promotion`.

#[path = "common/rng.rs"]
mod rng;

use geofailover::engine::{
    Action, CheckId, CheckSpec, Command, Decision, DownRule, Engine, EngineSpec, Event, Input,
    Persisted, PromotionFailure, PromotionRules, RejoinOutcome, ReplicationRules, ReplicationView,
    Role, SemiSync, SiteHealth, SiteSpec, Stage,
};
use rng::Rng;

const AFTER: u64 = 60_000;

fn spec(allow_data_loss: bool) -> EngineSpec {
    let site = |name: &str| SiteSpec {
        name: name.into(),
        down_rule: DownRule::All,
        checks: vec![CheckSpec {
            name: "health".into(),
            fall: 1,
            rise: 1,
        }],
    };
    EngineSpec {
        sites: [site("primary"), site("secondary")],
        auto_failover: true,
        cooldown_ms: 3_600_000,
        read_only: true,
        replication: Some(ReplicationRules {
            max_lag_s: 5,
            stale_ms: 5_000,
        }),
        flag_clear_delay_ms: 10_000,
        prepare_timeout_ms: 30_000,
        settle_ms: 5_000,
        promotion: Some(PromotionRules {
            after_ms: AFTER,
            allow_data_loss,
        }),
    }
}

fn check(site: Role, ok: bool) -> Input {
    Input::Check {
        id: CheckId { site, index: 0 },
        ok,
        detail: (!ok).then(|| "HTTP 503".to_string()),
    }
}

fn command(command: Command) -> Input {
    Input::Command {
        command,
        actor: "alice".into(),
    }
}

fn semi(zero: bool) -> SemiSync {
    SemiSync {
        enabled: true,
        wait_point: if zero { "AFTER_SYNC" } else { "AFTER_COMMIT" }.into(),
        active: true,
        clients: 1,
        secondary_acknowledging: Some(true),
    }
}

/// A replication round: the primary read (with its semi-sync) or not.
fn view(primary_reachable: bool, zero: bool, swapped: bool) -> ReplicationView {
    ReplicationView {
        primary_error: (!primary_reachable).then(|| "connection refused".to_string()),
        secondary_error: None,
        io_running: Some(true),
        sql_running: Some(true),
        lag_s: Some(0),
        missing: Some(0),
        semi_sync: primary_reachable.then(|| semi(zero)),
        swapped,
        ..ReplicationView::default()
    }
}

fn replication(primary_reachable: bool, zero: bool, at: u64) -> Input {
    Input::Replication {
        view: view(primary_reachable, zero, false),
        at,
    }
}

fn promotes(d: &Decision) -> Option<(u64, bool)> {
    d.actions.iter().find_map(|a| match a {
        Action::Promote {
            attempt,
            fence_required,
            ..
        } => Some((*attempt, *fence_required)),
        _ => None,
    })
}

/// Both sites healthy, RPO 0 (or not) seen, then the primary down and
/// read-only mode verified: traffic on the secondary, read-only.
fn failed_over(allow_data_loss: bool, zero: bool) -> (Engine, u64) {
    let mut engine = Engine::new(spec(allow_data_loss), Persisted::default());
    let mut now = 1_000;
    engine.step(check(Role::Primary, true), now);
    engine.step(check(Role::Secondary, true), now);
    engine.step(replication(true, zero, now), now);
    now += 1_000;
    let d = engine.step(check(Role::Primary, false), now);
    assert_eq!(d.event, Event::FailoverStarted { automatic: true }, "{d:?}");
    let attempt = engine.pending().expect("pending").attempt;
    let d = engine.step(
        Input::ReadOnly {
            attempt,
            result: Ok("verified".into()),
        },
        now,
    );
    assert_eq!(d.event, Event::FailedOver { automatic: true }, "{d:?}");
    (engine, now)
}

/// A replication round at `at` with the primary read or not; its
/// decision (the rules run on it).
fn round(engine: &mut Engine, reachable: bool, zero: bool, at: u64) -> Decision {
    engine.step(replication(reachable, zero, at), at)
}

#[test]
fn an_automatic_promotion_waits_promote_after_and_fences_a_reachable_primary() {
    let (mut engine, now) = failed_over(false, true);
    // The old primary's database still answers (its web site is down).
    let d = round(&mut engine, true, true, now + AFTER / 2);
    assert!(promotes(&d).is_none(), "{d:?}");
    assert!(
        engine
            .promotion_blocked()
            .is_some_and(|b| b.contains("waiting")),
        "{:?}",
        engine.promotion_blocked()
    );
    let d = round(&mut engine, true, true, now + AFTER + 1);
    assert_eq!(
        d.event,
        Event::PromotionStarted { automatic: true },
        "{d:?}"
    );
    assert_eq!(promotes(&d).map(|(_, fence)| fence), Some(true));
    assert_eq!(engine.promotion().map(|p| p.stage), Some(Stage::Promoting));
    // Nothing more is ordered while it runs.
    let d = round(&mut engine, true, true, now + AFTER + 2);
    assert!(promotes(&d).is_none(), "{d:?}");
}

#[test]
fn without_rpo_zero_an_automatic_promotion_is_refused_unless_data_loss_is_allowed() {
    let (mut engine, now) = failed_over(false, false);
    let d = round(&mut engine, true, false, now + AFTER + 1);
    assert!(promotes(&d).is_none(), "{d:?}");
    let blocked = engine.promotion_blocked().unwrap_or_default().to_string();
    assert!(blocked.contains("needs RPO 0"), "{blocked}");
    assert!(blocked.contains("AFTER_COMMIT"), "{blocked}");

    let (mut engine, now) = failed_over(true, false);
    let d = round(&mut engine, true, false, now + AFTER + 1);
    assert_eq!(
        d.event,
        Event::PromotionStarted { automatic: true },
        "{d:?}"
    );
}

#[test]
fn an_unreachable_old_primary_blocks_an_automatic_promotion_until_its_node_is_known_fenced() {
    let (mut engine, now) = failed_over(false, true);
    engine.step(replication(false, true, now), now);
    let d = engine.step(Input::Tick, now + AFTER + 1);
    assert!(promotes(&d).is_none(), "{d:?}");
    assert!(
        engine
            .promotion_blocked()
            .is_some_and(|b| b.contains("could not be verified fenced")),
        "{:?}",
        engine.promotion_blocked()
    );
    // With several nodes: its node gone longer than lease + fence_after.
    engine.set_primary_node_fenced(Some("ns1 gone for 20 s".into()));
    let d = engine.step(Input::Tick, now + AFTER + 2);
    assert_eq!(promotes(&d).map(|(_, fence)| fence), Some(false), "{d:?}");
    assert_eq!(
        engine.promotion().and_then(|p| p.fence_basis.clone()),
        Some("ns1 gone for 20 s".into())
    );
}

#[test]
fn the_operators_word_promotes_without_a_fence_and_without_rpo_zero() {
    let (mut engine, now) = failed_over(false, false);
    engine.step(replication(false, false, now), now);
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: true,
        }),
        now + 1,
    );
    assert_eq!(
        d.event,
        Event::PromotionStarted { automatic: false },
        "{d:?}"
    );
    assert_eq!(promotes(&d).map(|(_, fence)| fence), Some(false));
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("RPO: semi-sync with wait point AFTER_COMMIT")),
        "{:?}",
        d.reasons
    );
    // A second one is refused while it runs.
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: true,
        }),
        now + 2,
    );
    assert_eq!(d.event, Event::Refused, "{d:?}");
}

#[test]
fn promotion_is_refused_in_read_only_mode_and_before_a_failover() {
    let mut read_only = spec(false);
    read_only.promotion = None;
    let mut engine = Engine::new(read_only, Persisted::default());
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: true,
        }),
        1,
    );
    assert_eq!(d.event, Event::Refused);
    assert!(d.summary.contains("mode is read_only"), "{}", d.summary);

    let mut engine = Engine::new(spec(false), Persisted::default());
    engine.step(check(Role::Primary, true), 1);
    engine.step(check(Role::Secondary, true), 1);
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: false,
        }),
        2,
    );
    assert_eq!(d.event, Event::Refused);
    assert!(d.summary.contains("fail over first"), "{}", d.summary);
}

#[test]
fn a_restart_or_a_new_leader_resumes_the_same_promotion_attempt_and_ignores_other_results() {
    let (mut engine, now) = failed_over(false, true);
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: false,
        }),
        now,
    );
    let (attempt, _) = promotes(&d).expect("promote");
    let stored = engine.persisted().clone();

    let mut restarted = Engine::new(spec(false), stored.clone());
    let d = restarted.step(Input::Tick, now + 10);
    assert_eq!(promotes(&d), Some((attempt, true)), "{d:?}");
    let d = restarted.step(Input::Tick, now + 11);
    assert!(promotes(&d).is_none(), "ordered twice: {d:?}");
    // A follower that comes to lead adopts the state and does the same.
    let mut follower = Engine::new(spec(false), Persisted::default());
    follower.set_deciding(false);
    follower.adopt(stored);
    let d = follower.step(Input::Tick, now + 10);
    assert!(
        promotes(&d).is_none(),
        "a follower ordered a promotion: {d:?}"
    );
    follower.set_deciding(true);
    let d = follower.step(Input::Tick, now + 11);
    assert_eq!(promotes(&d), Some((attempt, true)), "{d:?}");

    // A result of another attempt is not this one's.
    let d = restarted.step(
        Input::Promoted {
            attempt: attempt + 7,
            result: Ok("GTID position 0-2-9".into()),
        },
        now + 12,
    );
    assert_eq!(d.event, Event::Steady);
    assert_eq!(
        restarted.promotion().map(|p| p.stage),
        Some(Stage::Promoting)
    );
    let d = restarted.step(
        Input::Promoted {
            attempt,
            result: Ok("relay log applied; GTID position 0-1-42".into()),
        },
        now + 13,
    );
    assert_eq!(d.event, Event::Promoted);
    let promotion = restarted.promotion().expect("promotion");
    assert_eq!(promotion.stage, Stage::Promoted);
    assert_eq!(promotion.position.as_deref(), Some("0-1-42"));
}

#[test]
fn a_stop_before_the_secondary_changed_drops_the_promotion_and_one_after_goes_on() {
    let (mut engine, now) = failed_over(false, true);
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: false,
        }),
        now,
    );
    let (attempt, _) = promotes(&d).expect("promote");
    let d = engine.step(
        Input::Promoted {
            attempt,
            result: Err(PromotionFailure {
                why: "the old primary could not be verified fenced".into(),
                changed: false,
            }),
        },
        now + 1,
    );
    assert_eq!(d.event, Event::PromotionAborted);
    assert!(engine.promotion().is_none());

    let d = engine.step(
        command(Command::Promote {
            primary_is_down: true,
        }),
        now + 2,
    );
    let (attempt, _) = promotes(&d).expect("promote");
    engine.step(
        Input::Promoted {
            attempt,
            result: Err(PromotionFailure {
                why: "RESET SLAVE ALL: access denied".into(),
                changed: true,
            }),
        },
        now + 3,
    );
    assert_eq!(engine.promotion().map(|p| p.stage), Some(Stage::Promoting));
    // Retried, the same attempt, after the wait.
    let d = engine.step(Input::Tick, now + 3 + 31_000);
    assert_eq!(promotes(&d), Some((attempt, false)), "{d:?}");
}

/// Promoted, then the old primary read as a replica by the watcher.
fn promoted() -> (Engine, u64) {
    let (mut engine, now) = failed_over(false, true);
    let d = engine.step(
        command(Command::Promote {
            primary_is_down: false,
        }),
        now,
    );
    let (attempt, _) = promotes(&d).expect("promote");
    engine.step(
        Input::Promoted {
            attempt,
            result: Ok("GTID position 0-1-42".into()),
        },
        now + 1,
    );
    (engine, now + 1)
}

fn rejoins(d: &Decision) -> bool {
    d.actions.iter().any(|a| matches!(a, Action::Rejoin { .. }))
}

#[test]
fn the_old_primary_is_rejoined_only_once_read_as_a_replica_and_a_diverged_one_blocks_fail_back() {
    let (mut engine, now) = promoted();
    // A view from before the promotion does not count.
    let d = engine.step(replication(true, true, now), now);
    assert!(!rejoins(&d), "{d:?}");
    let d = engine.step(
        Input::Replication {
            view: view(true, true, true),
            at: now + 1,
        },
        now + 1,
    );
    assert!(rejoins(&d), "{d:?}");
    let attempt = engine.promotion().expect("promotion").attempt;
    let d = engine.step(
        Input::Rejoined {
            attempt,
            outcome: RejoinOutcome::Diverged(vec!["0-1-45".into()]),
        },
        now + 2,
    );
    assert_eq!(d.event, Event::Diverged);
    engine.step(check(Role::Primary, true), now + 3);
    let d = engine.step(command(Command::Failback), now + 3);
    assert_eq!(d.event, Event::Refused);
    assert!(d.summary.contains("diverged (0-1-45)"), "{}", d.summary);
    assert!(!engine.ready_for_failback());

    // Rebuilt: the next try rejoins it.
    let d = engine.step(
        Input::Replication {
            view: view(true, true, true),
            at: now + 40_000,
        },
        now + 40_000,
    );
    assert!(rejoins(&d), "{d:?}");
    let d = engine.step(
        Input::Rejoined {
            attempt,
            outcome: RejoinOutcome::Rejoined("replicating".into()),
        },
        now + 40_001,
    );
    assert_eq!(d.event, Event::Rejoined);
    assert_eq!(engine.promotion().map(|p| p.stage), Some(Stage::Rejoined));
}

#[test]
fn a_held_rejoin_leaves_the_old_primary_alone_until_released() {
    let (mut engine, now) = promoted();
    let answers = |at: u64| Input::Replication {
        view: view(true, true, true),
        at,
    };
    let d = engine.step(command(Command::HoldRejoin { hold: true }), now);
    assert_eq!(d.event, Event::RejoinHeld, "{d:?}");
    assert!(
        engine
            .promotion()
            .and_then(|p| p.rejoin_held.clone())
            .is_some_and(|h| h.starts_with("by alice since ")),
        "{:?}",
        engine.promotion()
    );
    let d = engine.step(command(Command::HoldRejoin { hold: true }), now);
    assert_eq!(d.event, Event::Steady, "{d:?}");
    // The old primary answers, long after any retry time: left alone.
    let mut last = String::new();
    for at in [now + 1, now + 40_000, now + 100_000] {
        let d = engine.step(answers(at), at);
        assert!(!rejoins(&d), "{d:?}");
        last = d.summary;
    }
    assert!(last.contains("rejoin is held by alice"), "{last}");
    // Fail-back says why it cannot go.
    engine.step(check(Role::Primary, true), now + 100_001);
    let d = engine.step(command(Command::Failback), now + 100_001);
    assert_eq!(d.event, Event::Refused);
    assert!(d.summary.contains("rejoin is held"), "{}", d.summary);

    // A hold asked while a rejoin runs is refused: it would not stop it.
    let d = engine.step(command(Command::HoldRejoin { hold: false }), now + 100_002);
    assert_eq!(d.event, Event::RejoinReleased, "{d:?}");
    let d = engine.step(answers(now + 100_003), now + 100_003);
    assert!(rejoins(&d), "{d:?}");
    let d = engine.step(command(Command::HoldRejoin { hold: true }), now + 100_003);
    assert_eq!(d.event, Event::Refused, "{d:?}");
    assert!(d.summary.contains("under way"), "{}", d.summary);
    let attempt = engine.promotion().expect("promotion").attempt;
    engine.step(
        Input::Rejoined {
            attempt,
            outcome: RejoinOutcome::Failed("down".into()),
        },
        now + 100_004,
    );
    let d = engine.step(command(Command::HoldRejoin { hold: true }), now + 100_004);
    assert_eq!(d.event, Event::RejoinHeld, "{d:?}");

    // Released: the next round rejoins it, without waiting for a retry.
    let d = engine.step(command(Command::HoldRejoin { hold: false }), now + 100_012);
    assert_eq!(d.event, Event::RejoinReleased, "{d:?}");
    let d = engine.step(answers(now + 100_013), now + 100_013);
    assert!(rejoins(&d), "{d:?}");
    let attempt = engine.promotion().expect("promotion").attempt;
    engine.step(
        Input::Rejoined {
            attempt,
            outcome: RejoinOutcome::Rejoined("replicating".into()),
        },
        now + 100_014,
    );
    let d = engine.step(command(Command::HoldRejoin { hold: true }), now + 100_015);
    assert_eq!(d.event, Event::Refused, "{d:?}");
    assert!(d.summary.contains("rejoined"), "{}", d.summary);
}

#[test]
fn fail_back_after_a_promotion_is_one_switchover_and_moves_dns_only_when_it_is_done() {
    let (mut engine, now) = promoted();
    let attempt = engine.promotion().expect("promotion").attempt;
    engine.step(
        Input::Replication {
            view: view(true, true, true),
            at: now,
        },
        now,
    );
    engine.step(
        Input::Rejoined {
            attempt,
            outcome: RejoinOutcome::Rejoined("replicating".into()),
        },
        now,
    );
    engine.step(check(Role::Primary, true), now + 1);
    engine.step(
        Input::Replication {
            view: view(true, true, true),
            at: now + 1,
        },
        now + 1,
    );
    let d = engine.step(command(Command::Failback), now + 2);
    assert_eq!(d.event, Event::SwitchbackStarted, "{d:?}");
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Activate { .. })),
        "DNS moved before the switchover: {d:?}"
    );
    let switch = d
        .actions
        .iter()
        .find_map(|a| match a {
            Action::SwitchBack { attempt } => Some(*attempt),
            _ => None,
        })
        .expect("switch back");
    // A second fail-back while it runs changes nothing.
    let d = engine.step(command(Command::Failback), now + 3);
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::SwitchBack { .. })),
        "{d:?}"
    );
    // Stopped before the primary changed: the secondary stays the primary.
    let d = engine.step(
        Input::SwitchedBack {
            attempt: switch,
            result: Err(PromotionFailure {
                why: "the primary did not catch up".into(),
                changed: false,
            }),
        },
        now + 4,
    );
    assert_eq!(d.event, Event::SwitchbackAborted);
    assert_eq!(engine.promotion().map(|p| p.stage), Some(Stage::Rejoined));
    assert_eq!(engine.persisted().active, Role::Secondary);

    let d = engine.step(command(Command::Failback), now + 5);
    let switch = d
        .actions
        .iter()
        .find_map(|a| match a {
            Action::SwitchBack { attempt } => Some(*attempt),
            _ => None,
        })
        .expect("switch back");
    let epoch = engine.persisted().epoch;
    let d = engine.step(
        Input::SwitchedBack {
            attempt: switch,
            result: Ok("writes stopped for 15 ms".into()),
        },
        now + 6,
    );
    assert_eq!(d.event, Event::FailedBack);
    assert!(d.actions.contains(&Action::Activate {
        site: Role::Primary,
        epoch: epoch + 1
    }));
    assert!(engine.promotion().is_none());
    assert_eq!(engine.persisted().active, Role::Primary);
}

/// splitmix64.
/// One random run; the rules after every step:
/// - an automatic promotion starts only on the secondary, with the
///   primary down for promote_after, RPO 0 last seen (or allowed), and a
///   required fence unless the primary's node is known fenced;
/// - no fence is skipped but on the operator's word or that knowledge;
/// - at most one promotion attempt is under way, and a result is taken
///   only for the attempt ordered;
/// - DNS moves back to the primary only when a switchover reports done;
/// - no rejoin is ordered while an operator holds it.
fn run(seed: u64, steps: usize) -> Result<std::collections::HashSet<String>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut rng = Rng(seed);
    let allow = rng.chance(30);
    let mut engine = Engine::new(spec(allow), Persisted::default());
    let mut now = 1_000u64;
    let mut node_fenced = false;
    let mut ordered: Option<(u64, &'static str)> = None;
    let mut down_since: Option<u64> = None;
    let mut last_zero: Option<bool> = None;
    for step in 0..steps {
        now += 200 + rng.below(15_000);
        let before = engine.persisted().clone();
        let input = match rng.below(14) {
            0..=3 => check(Role::Primary, rng.chance(45)),
            4..=5 => check(Role::Secondary, rng.chance(90)),
            6..=7 => {
                let reachable = rng.chance(50);
                let zero = rng.chance(60);
                let swapped = rng.chance(50);
                if reachable && !swapped {
                    last_zero = Some(zero);
                }
                Input::Replication {
                    view: view(reachable, zero, swapped),
                    at: now,
                }
            }
            8 => {
                node_fenced = rng.chance(40);
                engine.set_primary_node_fenced(node_fenced.then(|| "gone".to_string()));
                Input::Tick
            }
            9 => command(Command::Promote {
                primary_is_down: rng.chance(50),
            }),
            10 if rng.chance(25) => command(Command::HoldRejoin {
                hold: rng.chance(50),
            }),
            10 => command(if rng.chance(70) {
                Command::Failback
            } else {
                Command::Failover {
                    reason: "test".into(),
                    force: false,
                }
            }),
            11 => match (ordered, engine.pending()) {
                (_, Some(p)) => Input::ReadOnly {
                    attempt: p.attempt,
                    result: if rng.chance(80) {
                        Ok("verified".into())
                    } else {
                        Err("no".into())
                    },
                },
                (Some((attempt, "promote")), None) => Input::Promoted {
                    attempt,
                    result: if rng.chance(70) {
                        Ok("GTID position 0-1-5".into())
                    } else {
                        Err(PromotionFailure {
                            why: "failed".into(),
                            changed: rng.chance(50),
                        })
                    },
                },
                (Some((attempt, "rejoin")), None) => Input::Rejoined {
                    attempt,
                    outcome: match rng.below(3) {
                        0 => RejoinOutcome::Rejoined("ok".into()),
                        1 => RejoinOutcome::Diverged(vec!["0-1-9".into()]),
                        _ => RejoinOutcome::Failed("down".into()),
                    },
                },
                (Some((attempt, _)), None) => Input::SwitchedBack {
                    attempt,
                    result: if rng.chance(70) {
                        Ok("writes stopped for 9 ms".into())
                    } else {
                        Err(PromotionFailure {
                            why: "failed".into(),
                            changed: rng.chance(50),
                        })
                    },
                },
                (None, None) => Input::Tick,
            },
            12 if rng.chance(20) => {
                // A restart: the stored state, a fresh engine.
                let stored = engine.persisted().clone();
                engine = Engine::new(spec(allow), stored);
                engine.set_primary_node_fenced(node_fenced.then(|| "gone".to_string()));
                ordered = None;
                Input::Tick
            }
            _ => Input::Tick,
        };
        let result_input = matches!(
            input,
            Input::Promoted { .. } | Input::Rejoined { .. } | Input::SwitchedBack { .. }
        );
        let is_command = matches!(input, Input::Command { .. });
        let primary_is_down = matches!(
            input,
            Input::Command {
                command: Command::Promote {
                    primary_is_down: true
                },
                ..
            }
        );
        let d = engine.step(input, now);
        seen.insert(format!("{:?}", d.event));
        if engine.site_health(Role::Primary) == SiteHealth::Down {
            down_since.get_or_insert(now);
        } else {
            down_since = None;
        }
        let fail = |why: String| Err(format!("seed {seed} step {step}: {why}\n{d:?}"));
        if result_input {
            ordered = None;
        }
        for action in &d.actions {
            match action {
                Action::Promote {
                    attempt,
                    fence_required,
                    ..
                } => {
                    if engine.persisted().active != Role::Secondary {
                        return fail("a promotion with traffic on the primary".into());
                    }
                    if let Some((other, _)) = ordered
                        && other != *attempt
                    {
                        return fail(format!("attempt {attempt} ordered while {other} runs"));
                    }
                    let automatic = matches!(d.event, Event::PromotionStarted { automatic: true });
                    if automatic {
                        if down_since.is_none_or(|s| now - s < AFTER) {
                            return fail("promoted before promote_after".into());
                        }
                        if !allow
                            && last_zero != Some(true)
                            && engine.persisted().rpo.as_ref().is_none_or(|r| !r.zero)
                        {
                            return fail("promoted automatically without RPO 0".into());
                        }
                    }
                    if !fence_required && !node_fenced && !primary_is_down {
                        let resumed = !matches!(d.event, Event::PromotionStarted { .. });
                        let basis = engine.promotion().and_then(|p| p.fence_basis.clone());
                        if !(resumed && basis.is_some()) {
                            return fail("a fence skipped without the operator's word".into());
                        }
                    }
                    ordered = Some((*attempt, "promote"));
                }
                Action::Rejoin { attempt } => {
                    if engine.promotion().is_some_and(|p| p.rejoin_held.is_some()) {
                        return fail("a rejoin ordered while it is held".into());
                    }
                    ordered = Some((*attempt, "rejoin"));
                }
                Action::SwitchBack { attempt } => {
                    if !is_command && !matches!(d.event, Event::Steady | Event::HealthChanged) {
                        return fail("a switchover not asked for".into());
                    }
                    ordered = Some((*attempt, "switch"));
                }
                Action::Activate {
                    site: Role::Primary,
                    ..
                } if before.promotion.as_ref().is_some_and(|p| {
                    p.epoch == before.epoch && before.active == Role::Secondary
                }) && !matches!(d.event, Event::FailedBack) =>
                {
                    return fail("DNS moved back during a promotion".into());
                }
                _ => {}
            }
        }
        if matches!(d.event, Event::FailedBack)
            && before
                .promotion
                .as_ref()
                .is_some_and(|p| p.epoch == before.epoch && before.active == Role::Secondary)
            && engine.promotion().is_some()
        {
            return fail("failed back with a promotion still standing".into());
        }
    }
    Ok(seen)
}

#[test]
fn random_runs_keep_the_promotion_rules() {
    let seeds: u64 = std::env::var("GEOFAILOVER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    if let Some(seed) = std::env::var("GEOFAILOVER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed, 400).unwrap();
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for seed in 0..seeds {
        match run(seed, 400) {
            Ok(events) => seen.extend(events),
            Err(why) => panic!("{why}"),
        }
    }
    // The runs reach every stage, or they prove little.
    for event in [
        "PromotionStarted { automatic: true }",
        "PromotionStarted { automatic: false }",
        "Promoted",
        "PromotionAborted",
        "Rejoined",
        "Diverged",
        "SwitchbackStarted",
        "SwitchbackAborted",
        "FailedBack",
        "RejoinHeld",
        "RejoinReleased",
    ] {
        assert!(seen.contains(event), "no run reached {event}: {seen:?}");
    }
}
