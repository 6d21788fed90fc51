//! Deterministic simulation of the engine: seeded random runs of check
//! results, time steps, restarts and operator commands, with DESIGN.md's
//! invariants checked after every step against an independent model of
//! check health. A failing run prints its seed; replay it with
//! `GEOFAILOVER_SIM_SEED=<seed> cargo test --test engine_sim`.
//! `GEOFAILOVER_SIM_SEEDS=<n>` runs more seeds.
//!
//! Then named scenarios, each a story an operator would recognise.

#[path = "common/rng.rs"]
mod rng;

use geofailover::engine::{
    Action, CheckId, CheckSpec, Command, Decision, DownRule, Engine, EngineSpec, Event, Input,
    Persisted, READ_ONLY_RETRY_MS, ReplicationRules, ReplicationView, Role, SiteHealth, SiteSpec,
};
use rng::Rng;

fn random_spec(rng: &mut Rng) -> EngineSpec {
    let site = |rng: &mut Rng, name: &str| {
        let n = 1 + rng.below(3) as usize;
        let checks = (0..n)
            .map(|i| CheckSpec {
                name: format!("c{i}"),
                fall: 1 + rng.below(4) as u32,
                rise: 1 + rng.below(4) as u32,
            })
            .collect();
        let down_rule = match rng.below(3) {
            0 => DownRule::All,
            1 => DownRule::Any,
            _ => DownRule::AtLeast(1 + rng.below(n as u64) as u32),
        };
        SiteSpec {
            name: name.into(),
            down_rule,
            checks,
        }
    };
    EngineSpec {
        sites: [site(rng, "primary"), site(rng, "secondary")],
        auto_failover: rng.chance(85),
        cooldown_ms: rng.below(120_000),
        read_only: rng.chance(60),
        replication: rng.chance(50).then(|| ReplicationRules {
            max_lag_s: rng.below(10),
            stale_ms: 1000 + rng.below(20_000),
        }),
        flag_clear_delay_ms: rng.below(60_000),
        prepare_timeout_ms: 5_000 + rng.below(60_000),
        settle_ms: 1_000 + rng.below(20_000),
        promotion: None,
    }
}

/// The model: check health by the plain definition, written apart from
/// the engine's.
#[derive(Clone)]
struct ModelCheck {
    up: Option<bool>,
    run_ok: bool,
    run: u32,
}

struct Model {
    checks: [Vec<ModelCheck>; 2],
}

impl Model {
    fn new(spec: &EngineSpec) -> Self {
        let fresh = |n: usize| {
            vec![
                ModelCheck {
                    up: None,
                    run_ok: false,
                    run: 0
                };
                n
            ]
        };
        Self {
            checks: [
                fresh(spec.sites[0].checks.len()),
                fresh(spec.sites[1].checks.len()),
            ],
        }
    }

    fn record(&mut self, spec: &EngineSpec, site: usize, index: usize, ok: bool) {
        let c = &mut self.checks[site][index];
        if c.run > 0 && c.run_ok == ok {
            c.run += 1;
        } else {
            c.run_ok = ok;
            c.run = 1;
        }
        let check = &spec.sites[site].checks[index];
        if ok && c.run >= check.rise {
            c.up = Some(true);
        }
        if !ok && c.run >= check.fall {
            c.up = Some(false);
        }
    }

    fn down_count(&self, site: usize) -> u32 {
        self.checks[site]
            .iter()
            .filter(|c| c.up == Some(false))
            .count() as u32
    }

    fn down(&self, spec: &EngineSpec, site: usize) -> bool {
        let down = self.down_count(site);
        match spec.sites[site].down_rule {
            DownRule::All => down == self.checks[site].len() as u32,
            DownRule::Any => down > 0,
            DownRule::AtLeast(n) => down >= n,
        }
    }

    fn healthy(&self, spec: &EngineSpec, site: usize) -> bool {
        !self.down(spec, site) && self.checks[site].iter().all(|c| c.up == Some(true))
    }
}

/// A failover being prepared, as the invariants follow it.
#[derive(Debug, Clone, Copy)]
struct Awaiting {
    epoch: u64,
    attempt: u64,
    automatic: bool,
    force: bool,
    /// The engine asked for read-only mode in this run (not before a
    /// restart): a result may come.
    live: bool,
    /// When it is given up if no result came.
    deadline: u64,
}

/// Everything the invariants need to remember between steps.
#[derive(Default)]
struct Watch {
    last_auto_failover: Option<u64>,
    awaiting: Option<Awaiting>,
    /// The last failover attempt's id: each new one must be higher.
    last_attempt: u64,
    /// When the engine last restarted.
    restarted_at: Option<u64>,
    /// When read-only mode last could not be verified.
    last_abort: Option<u64>,
    /// The last replication view the engine was given, and when.
    replication: Option<(u64, ReplicationView)>,
}

/// One step as the invariants see it.
struct Step<'a> {
    input: &'a Input,
    decision: &'a Decision,
    before: &'a Persisted,
    after: &'a Persisted,
    now: u64,
}

/// The automatic-failover conditions, by the model.
fn automatic_allowed(
    spec: &EngineSpec,
    model: &Model,
    watch: &Watch,
    paused: bool,
    now: u64,
) -> Result<(), String> {
    if !model.healthy(spec, 1) {
        return Err("automatic failover to an unhealthy secondary".into());
    }
    if !model.down(spec, 0) {
        return Err("automatic failover while the primary is not down".into());
    }
    if paused || !spec.auto_failover {
        return Err("automatic failover while paused or with auto-failover off".into());
    }
    if let Some(last) = watch.last_auto_failover
        && now < last + spec.cooldown_ms
    {
        return Err(format!(
            "automatic failover {} ms after the last, cooldown {} ms",
            now - last,
            spec.cooldown_ms
        ));
    }
    if let Some(abort) = watch.last_abort
        && now < abort + READ_ONLY_RETRY_MS
    {
        return Err("automatic failover retried too soon after read-only failed".into());
    }
    Ok(())
}

/// Fail-back's replication conditions, by the model.
fn replication_allows_failback(spec: &EngineSpec, watch: &Watch, now: u64) -> bool {
    let Some(rules) = spec.replication else {
        return true;
    };
    match &watch.replication {
        Some((at, v)) if now - at <= rules.stale_ms => {
            v.primary_error.is_none()
                && v.secondary_error.is_none()
                && v.io_running == Some(true)
                && v.sql_running == Some(true)
                && v.lag_s.is_some_and(|l| l <= rules.max_lag_s)
                && v.missing == Some(0)
                && v.errant.is_empty()
        }
        _ => false,
    }
}

fn check_step(
    spec: &EngineSpec,
    model: &Model,
    watch: &mut Watch,
    step: Step<'_>,
) -> Result<(), String> {
    let Step {
        input,
        decision,
        before,
        after,
        now,
    } = step;
    if decision.summary.is_empty() {
        return Err("a decision without a sentence".into());
    }
    if after.epoch < before.epoch {
        return Err(format!(
            "epoch went down: {} -> {}",
            before.epoch, after.epoch
        ));
    }
    if let Input::Replication { view, at } = input {
        watch.replication = Some((*at, view.clone()));
    }
    let moved = before.active != after.active;
    if moved && after.epoch != before.epoch + 1 {
        return Err("a change of active site must grow the epoch by exactly one".into());
    }
    if !moved && after.epoch != before.epoch {
        return Err("the epoch grew without a change of active site".into());
    }
    let secondary_healthy = model.healthy(spec, 1);
    let prepare = decision.actions.iter().find_map(|a| match a {
        Action::PrepareReadOnly {
            site,
            epoch,
            attempt,
        } => Some((*site, *epoch, *attempt)),
        _ => None,
    });
    let command = match input {
        Input::Command { command, .. } => Some(command),
        _ => None,
    };

    // Starting a failover that first prepares read-only mode, or resuming
    // one a restart interrupted.
    if let Some((site, epoch, attempt)) = prepare {
        if !spec.read_only || site != Role::Secondary || moved || decision.actions.len() != 1 {
            return Err(format!("unexpected preparation {:?}", decision.actions));
        }
        if decision.event == Event::FailoverResumed {
            let Some(awaiting) = watch
                .awaiting
                .as_mut()
                .filter(|a| !a.live && a.epoch == epoch && a.attempt == attempt)
            else {
                return Err(format!(
                    "resumed epoch {epoch} while {:?} is awaited",
                    watch.awaiting
                ));
            };
            let primary_down = model.down(spec, 0) && !after.paused;
            if awaiting.automatic && !primary_down {
                return Err(
                    "resumed an automatic failover while the primary is not down, or paused".into(),
                );
            }
            let forced_to_a_live_site = awaiting.force && !model.down(spec, 1);
            if !(secondary_healthy || forced_to_a_live_site) {
                return Err("resumed a failover towards an unhealthy secondary".into());
            }
            awaiting.live = true;
            awaiting.deadline = now + spec.prepare_timeout_ms;
            return Ok(());
        }
        if epoch != before.epoch + 1 || watch.awaiting.is_some() {
            return Err(format!(
                "preparation for epoch {epoch} while {:?} is awaited",
                watch.awaiting
            ));
        }
        if attempt <= watch.last_attempt {
            return Err(format!(
                "attempt {attempt} after attempt {}: attempts must not repeat",
                watch.last_attempt
            ));
        }
        watch.last_attempt = attempt;
        let (automatic, force) = match command {
            Some(Command::Failover { force, .. }) => {
                if !secondary_healthy {
                    return Err("manual failover started towards an unhealthy secondary".into());
                }
                (false, *force)
            }
            Some(_) | None => {
                automatic_allowed(spec, model, watch, after.paused, now)?;
                (true, false)
            }
        };
        watch.awaiting = Some(Awaiting {
            epoch,
            attempt,
            automatic,
            force,
            live: true,
            deadline: now + spec.prepare_timeout_ms,
        });
        return Ok(());
    }
    let undo = |attempt: u64| {
        vec![Action::UndoReadOnly {
            site: Role::Secondary,
            attempt,
        }]
    };
    if decision.event == Event::FailoverRolledBack {
        let Some(awaiting) = watch.awaiting.take().filter(|a| !a.live) else {
            return Err("a roll-back of a failover that was not interrupted".into());
        };
        let settled = watch
            .restarted_at
            .is_some_and(|at| now >= at + spec.settle_ms);
        let allowed = model.down(spec, 1)
            || (awaiting.automatic && (model.healthy(spec, 0) || after.paused))
            || settled;
        if !allowed {
            return Err("rolled back a failover whose conditions may still hold".into());
        }
        if decision.actions != undo(awaiting.attempt) || moved {
            return Err(format!("roll-back with actions {:?}", decision.actions));
        }
        return Ok(());
    }
    if decision.event == Event::FailoverAborted {
        let stopped = match (input, watch.awaiting.take()) {
            (Input::ReadOnly { attempt, result }, Some(awaiting))
                if *attempt == awaiting.attempt && awaiting.live =>
            {
                if result.is_ok() && secondary_healthy || awaiting.force {
                    return Err("a verified (or forced) failover was stopped".into());
                }
                awaiting.attempt
            }
            (_, Some(awaiting)) if awaiting.live && now >= awaiting.deadline => awaiting.attempt,
            other => {
                return Err(format!(
                    "an abort without its read-only result or deadline: {other:?}"
                ));
            }
        };
        watch.last_abort = Some(now);
        if decision.actions != undo(stopped) || moved {
            return Err(format!("abort with actions {:?}", decision.actions));
        }
        return Ok(());
    }

    let expected_actions = match (moved, after.active) {
        (false, _) => Vec::new(),
        (true, Role::Secondary) => vec![Action::Activate {
            site: Role::Secondary,
            epoch: after.epoch,
        }],
        (true, Role::Primary) => {
            let mut actions = vec![Action::Activate {
                site: Role::Primary,
                epoch: after.epoch,
            }];
            if spec.read_only {
                actions.push(Action::ClearAppFlag {
                    site: Role::Secondary,
                    epoch: after.epoch,
                    not_before: now + spec.flag_clear_delay_ms,
                });
            }
            actions
        }
    };
    if decision.actions != expected_actions {
        return Err(format!(
            "actions {:?} for a step that moved={moved}",
            decision.actions
        ));
    }
    if moved {
        match (after.active, input) {
            (Role::Secondary, Input::ReadOnly { attempt, result }) => {
                let Some(Awaiting {
                    epoch: awaited,
                    attempt: awaited_attempt,
                    automatic,
                    force,
                    live: true,
                    ..
                }) = watch.awaiting.take()
                else {
                    return Err("DNS moved on a read-only result nobody waited for".into());
                };
                if *attempt != awaited_attempt || awaited != after.epoch {
                    return Err(format!(
                        "moved for attempt {attempt}, awaited {awaited_attempt} (epoch {awaited})"
                    ));
                }
                if !force && (result.is_err() || !secondary_healthy) {
                    return Err("DNS moved to a secondary whose read-only mode is not verified, or that is unhealthy".into());
                }
                if automatic {
                    if let Some(last) = watch.last_auto_failover
                        && now < last + spec.cooldown_ms
                    {
                        return Err("a second automatic failover within the cooldown".into());
                    }
                    watch.last_auto_failover = Some(now);
                }
            }
            (Role::Secondary, _) if spec.read_only => {
                return Err("DNS moved to the secondary without preparing read-only mode".into());
            }
            (
                Role::Secondary,
                Input::Command {
                    command: Command::Failover { .. },
                    ..
                },
            ) => {
                if !secondary_healthy {
                    return Err("manual failover to an unhealthy secondary".into());
                }
            }
            (Role::Secondary, _) => {
                automatic_allowed(spec, model, watch, after.paused, now)?;
                if decision.event != (Event::FailedOver { automatic: true }) {
                    return Err(format!(
                        "automatic failover reported as {:?}",
                        decision.event
                    ));
                }
                watch.last_auto_failover = Some(now);
            }
            (
                Role::Primary,
                Input::Command {
                    command: Command::Failback,
                    ..
                },
            ) => {
                if !model.healthy(spec, 0) {
                    return Err("fail-back to an unhealthy primary".into());
                }
                if !replication_allows_failback(spec, watch, now) {
                    return Err(format!(
                        "fail-back while replication does not allow it: {:?}",
                        watch.replication
                    ));
                }
                // An operator's fail-back ends the cooldown and the wait
                // after a failed read-only attempt.
                watch.last_auto_failover = None;
                watch.last_abort = None;
            }
            (Role::Primary, _) => return Err("fail-back without the operator's command".into()),
        }
    } else if after.active == Role::Primary
        && watch.awaiting.is_none()
        && automatic_allowed(spec, model, watch, after.paused, now).is_ok()
    {
        return Err("the primary is down and nothing blocks a failover, yet none started".into());
    }
    Ok(())
}

fn random_view(rng: &mut Rng) -> ReplicationView {
    let error = |rng: &mut Rng, text: &str| rng.chance(5).then(|| text.to_string());
    ReplicationView {
        primary_error: error(rng, "connect refused"),
        secondary_error: error(rng, "connect refused"),
        io_running: Some(rng.chance(90)),
        sql_running: Some(rng.chance(90)),
        lag_s: rng.chance(95).then(|| rng.below(10)),
        last_io_error: String::new(),
        last_sql_error: if rng.chance(5) {
            "Duplicate entry".into()
        } else {
            String::new()
        },
        missing: rng
            .chance(95)
            .then(|| if rng.chance(70) { 0 } else { rng.below(5) }),
        errant: if rng.chance(5) {
            vec!["0-2-7".into()]
        } else {
            Vec::new()
        },
        semi_sync: None,
        swapped: false,
    }
}

/// One seeded run; the kinds of decision it reached.
fn run(seed: u64, steps: usize) -> Result<std::collections::HashSet<String>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut rng = Rng(seed);
    let spec = random_spec(&mut rng);
    let mut engine = Engine::new(spec.clone(), Persisted::default());
    let mut model = Model::new(&spec);
    let mut watch = Watch::default();
    let mut now: u64 = 1_700_000_000_000;
    // Each site's weather: the chance, in percent, that a check succeeds.
    let mut weather = [95u64, 95u64];
    for step in 0..steps {
        now += rng.below(1500);
        if rng.chance(2) {
            let site = rng.below(2) as usize;
            weather[site] = [0, 5, 50, 95, 100][rng.below(5) as usize];
        }
        if rng.chance(1) {
            // A restart: state from the store (a failover being prepared
            // included), every check unknown again.
            let stored = engine.persisted().clone();
            engine = Engine::new(spec.clone(), stored.clone());
            model = Model::new(&spec);
            if let Some(awaiting) = &mut watch.awaiting {
                awaiting.live = false;
            }
            if stored.pending.map(|p| p.attempt) != watch.awaiting.map(|a| a.attempt) {
                return Err(format!(
                    "step {step}: the stored pending failover is not the awaited one"
                ));
            }
            watch.restarted_at = Some(now);
            watch.replication = None;
            watch.last_abort = None;
            if engine.persisted().active != stored.active {
                return Err(format!("step {step}: a restart changed the active site"));
            }
            continue;
        }
        let input = match (watch.awaiting, rng.below(100)) {
            // The shell reports on read-only mode, mostly verified (and
            // never for a preparation the engine has not asked for since
            // its restart).
            (
                Some(Awaiting {
                    attempt,
                    live: true,
                    ..
                }),
                0..=29,
            ) => Input::ReadOnly {
                attempt,
                result: if rng.chance(75) {
                    Ok("read_only = 1".into())
                } else {
                    Err("Access denied".into())
                },
            },
            (_, 0..=74) => {
                let site = rng.below(2) as usize;
                let index = rng.below(spec.sites[site].checks.len() as u64) as usize;
                let ok = rng.below(100) < weather[site];
                model.record(&spec, site, index, ok);
                Input::Check {
                    id: CheckId {
                        site: if site == 0 {
                            Role::Primary
                        } else {
                            Role::Secondary
                        },
                        index,
                    },
                    ok,
                    detail: (!ok).then(|| "connection refused".to_string()),
                }
            }
            (_, 75..=82) => Input::Replication {
                view: random_view(&mut rng),
                // The round began up to a few seconds before it reported.
                at: now.saturating_sub(rng.below(3_000)),
            },
            (_, 83..=89) => {
                now += rng.below(60_000);
                Input::Tick
            }
            (_, n) => Input::Command {
                command: match n % 4 {
                    0 => Command::Failover {
                        reason: "drill".into(),
                        force: rng.chance(20),
                    },
                    1 => Command::Failback,
                    2 => Command::Pause,
                    _ => Command::Resume,
                },
                actor: "sim".into(),
            },
        };
        let before = engine.persisted().clone();
        let decision = engine.step(input.clone(), now);
        seen.insert(format!("{:?}", decision.event));
        let after = engine.persisted().clone();
        let seen = Step {
            input: &input,
            decision: &decision,
            before: &before,
            after: &after,
            now,
        };
        check_step(&spec, &model, &mut watch, seen).map_err(|e| {
            format!(
                "step {step}: {e}\n  input: {input:?}\n  decision: {decision:?}\n  spec: {spec:?}"
            )
        })?;
    }
    Ok(seen)
}

#[test]
fn random_runs_keep_every_invariant() {
    let steps = 10_000;
    if let Ok(seed) = std::env::var("GEOFAILOVER_SIM_SEED") {
        let seed: u64 = seed.parse().expect("GEOFAILOVER_SIM_SEED is a number");
        if let Err(e) = run(seed, steps) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("GEOFAILOVER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let mut seen = std::collections::HashSet::new();
    for seed in 0..seeds {
        match run(seed, steps) {
            Ok(kinds) => seen.extend(kinds),
            Err(e) => panic!("seed {seed} failed (replay: GEOFAILOVER_SIM_SEED={seed}): {e}"),
        }
    }
    // The runs reach restarts in the middle of a failover, and both ways
    // out of one, and deadlines.
    for kind in ["FailoverResumed", "FailoverRolledBack", "FailoverAborted"] {
        assert!(seen.contains(kind), "no {kind} in {seen:?}");
    }
}

/// The runs are not idle: they fail over, fail back, pause and refuse.
#[test]
fn random_runs_reach_every_kind_of_decision() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..16u64 {
        let mut rng = Rng(seed);
        let spec = random_spec(&mut rng);
        let mut engine = Engine::new(spec.clone(), Persisted::default());
        let mut now = 0;
        for _ in 0..5_000 {
            now += 1000;
            let site = if rng.chance(50) {
                Role::Primary
            } else {
                Role::Secondary
            };
            let index = rng.below(
                spec.sites[if site == Role::Primary { 0 } else { 1 }]
                    .checks
                    .len() as u64,
            ) as usize;
            let input = if rng.chance(3) {
                Input::Command {
                    command: [Command::Failback, Command::Pause, Command::Resume]
                        [rng.below(3) as usize]
                        .clone(),
                    actor: "sim".into(),
                }
            } else {
                Input::Check {
                    id: CheckId { site, index },
                    ok: rng.chance(if (now / 60_000) % 2 == 0 { 100 } else { 0 }),
                    detail: None,
                }
            };
            seen.insert(format!("{:?}", engine.step(input, now).event));
        }
    }
    for kind in [
        "FailedOver { automatic: true }",
        "FailedBack",
        "Paused",
        "Resumed",
        "Refused",
        "HealthChanged",
    ] {
        assert!(seen.contains(kind), "no {kind} decision in {seen:?}");
    }
}

// Named scenarios ----------------------------------------------------------

const MIN: u64 = 60_000;

fn one_check_each(fall: u32, rise: u32) -> EngineSpec {
    let site = |name: &str| SiteSpec {
        name: name.into(),
        down_rule: DownRule::All,
        checks: vec![CheckSpec {
            name: "health".into(),
            fall,
            rise,
        }],
    };
    EngineSpec {
        sites: [site("primary"), site("secondary")],
        auto_failover: true,
        cooldown_ms: 60 * MIN,
        read_only: false,
        replication: None,
        flag_clear_delay_ms: 0,
        prepare_timeout_ms: 30_000,
        settle_ms: 10_000,
        promotion: None,
    }
}

fn check(site: Role, ok: bool, detail: &str) -> Input {
    Input::Check {
        id: CheckId { site, index: 0 },
        ok,
        detail: (!detail.is_empty()).then(|| detail.to_string()),
    }
}

fn command(command: Command) -> Input {
    Input::Command {
        command,
        actor: "alice".into(),
    }
}

/// An engine whose two sites have passed `rise` checks.
fn healthy_pair(fall: u32, rise: u32) -> (Engine, u64) {
    let mut engine = Engine::new(one_check_each(fall, rise), Persisted::default());
    let mut now = 0;
    for _ in 0..rise {
        now += 1000;
        engine.step(check(Role::Primary, true, ""), now);
        engine.step(check(Role::Secondary, true, ""), now);
    }
    assert_eq!(engine.site_health(Role::Primary), SiteHealth::Healthy);
    assert_eq!(engine.site_health(Role::Secondary), SiteHealth::Healthy);
    (engine, now)
}

#[test]
fn flapping_primary_below_fall_never_fails_over() {
    let (mut engine, mut now) = healthy_pair(3, 3);
    for i in 0..300 {
        now += 1000;
        // Two failures, then a success: never three in a row.
        let d = engine.step(check(Role::Primary, i % 3 == 2, "HTTP 503"), now);
        assert!(d.actions.is_empty(), "{d:?}");
        engine.step(check(Role::Secondary, true, ""), now);
    }
    assert_eq!(engine.persisted().active, Role::Primary);
}

#[test]
fn primary_timing_out_fails_over_after_fall_checks_and_never_back_by_itself() {
    let (mut engine, mut now) = healthy_pair(3, 3);
    let mut decisions = Vec::new();
    for _ in 0..3 {
        now += 1000;
        decisions.push(engine.step(check(Role::Primary, false, "timed out after 1s"), now));
    }
    let last = decisions.last().expect("a decision");
    assert_eq!(last.event, Event::FailedOver { automatic: true });
    assert_eq!(
        last.actions,
        [Action::Activate {
            site: Role::Secondary,
            epoch: 1
        }]
    );
    assert!(
        last.summary.contains("timed out after 1s"),
        "{}",
        last.summary
    );
    assert!(decisions[..2].iter().all(|d| d.actions.is_empty()));

    // The primary recovers: ready for fail-back, but nothing moves.
    for _ in 0..10 {
        now += 1000;
        let d = engine.step(check(Role::Primary, true, ""), now);
        assert!(d.actions.is_empty());
    }
    assert!(engine.ready_for_failback());
    let d = engine.step(Input::Tick, now + 1);
    assert!(d.summary.contains("ready for fail-back"), "{}", d.summary);
    assert_eq!(engine.persisted().active, Role::Secondary);
}

#[test]
fn both_sites_down_keeps_the_current_answer_and_says_so() {
    let (mut engine, mut now) = healthy_pair(2, 2);
    let mut last = None;
    for _ in 0..2 {
        now += 1000;
        engine.step(check(Role::Secondary, false, "connection refused"), now);
        last = Some(engine.step(check(Role::Primary, false, "connection refused"), now));
    }
    let d = last.take().expect("a decision");
    assert!(d.actions.is_empty());
    assert_eq!(engine.persisted().active, Role::Primary);
    assert!(
        d.summary.contains("keeping the current answer"),
        "{}",
        d.summary
    );

    // The secondary comes back while the primary is still down: now it moves.
    for _ in 0..2 {
        now += 1000;
        last = Some(engine.step(check(Role::Secondary, true, ""), now));
    }
    assert_eq!(
        last.expect("a decision").event,
        Event::FailedOver { automatic: true }
    );
}

#[test]
fn command_failover_works_while_paused_and_automatic_failover_does_not() {
    let (mut engine, mut now) = healthy_pair(2, 2);
    let d = engine.step(command(Command::Pause), now);
    assert_eq!(d.event, Event::Paused);
    for _ in 0..5 {
        now += 1000;
        let d = engine.step(check(Role::Primary, false, "HTTP 500"), now);
        assert!(d.actions.is_empty());
        assert!(d.summary.contains("paused"), "{}", d.summary);
    }
    // The secondary must be healthy for a manual failover too.
    let d = engine.step(
        command(Command::Failover {
            reason: "maintenance".into(),
            force: false,
        }),
        now,
    );
    assert_eq!(d.event, Event::FailedOver { automatic: false });
    assert!(
        d.summary.contains("alice") && d.summary.contains("maintenance"),
        "{}",
        d.summary
    );
    assert!(engine.persisted().paused);
}

#[test]
fn failback_is_refused_while_the_primary_is_unhealthy() {
    let (mut engine, mut now) = healthy_pair(2, 2);
    for _ in 0..2 {
        now += 1000;
        engine.step(check(Role::Primary, false, "HTTP 502"), now);
    }
    assert_eq!(engine.persisted().active, Role::Secondary);
    let d = engine.step(command(Command::Failback), now);
    assert_eq!(d.event, Event::Refused);
    assert!(
        d.summary.contains("primary healthy failed") && d.summary.contains("HTTP 502"),
        "{}",
        d.summary
    );
    assert_eq!(engine.persisted().active, Role::Secondary);

    // One success is not enough: rise is 2.
    engine.step(check(Role::Primary, true, ""), now + 1);
    assert_eq!(
        engine.step(command(Command::Failback), now + 2).event,
        Event::Refused
    );
    engine.step(check(Role::Primary, true, ""), now + 3);
    let d = engine.step(command(Command::Failback), now + 4);
    assert_eq!(d.event, Event::FailedBack);
    assert_eq!(
        d.actions,
        [Action::Activate {
            site: Role::Primary,
            epoch: 2
        }]
    );
}

#[test]
fn an_operators_failback_ends_the_cooldown_so_the_next_outage_fails_over_at_once() {
    let (mut engine, mut now) = healthy_pair(1, 1);
    now += 1000;
    assert_eq!(
        engine.step(check(Role::Primary, false, "down"), now).event,
        Event::FailedOver { automatic: true }
    );
    assert!(engine.in_cooldown(now + 1).is_some());
    engine.step(check(Role::Primary, true, ""), now + 1);
    assert_eq!(
        engine.step(command(Command::Failback), now + 2).event,
        Event::FailedBack
    );
    assert_eq!(engine.in_cooldown(now + 2), None);
    // A new outage within the hour: failed over at once.
    let d = engine.step(check(Role::Primary, false, "down again"), now + 3);
    assert_eq!(
        d.event,
        Event::FailedOver { automatic: true },
        "{}",
        d.summary
    );
}

#[test]
fn a_blocked_failover_says_why_while_the_primary_is_down() {
    let (mut engine, mut now) = healthy_pair(1, 1);
    engine.step(command(Command::Pause), now);
    now += 1000;
    let d = engine.step(check(Role::Primary, false, "HTTP 503"), now);
    assert!(d.actions.is_empty());
    assert_eq!(engine.failover_blocked(), Some("paused"), "{}", d.summary);
    // The primary recovers: nothing is blocked any more.
    engine.step(check(Role::Primary, true, ""), now + 1);
    assert_eq!(engine.failover_blocked(), None);
    // The secondary is down too: blocked, naming it.
    engine.step(command(Command::Resume), now + 2);
    engine.step(check(Role::Secondary, false, "timed out"), now + 3);
    engine.step(check(Role::Primary, false, "HTTP 503"), now + 4);
    let why = engine.failover_blocked().expect("blocked");
    assert!(why.contains("secondary down"), "{why}");
}

fn read_only_pair() -> (Engine, u64) {
    let mut spec = one_check_each(1, 1);
    spec.read_only = true;
    let mut engine = Engine::new(spec, Persisted::default());
    engine.step(check(Role::Primary, true, ""), 1);
    engine.step(check(Role::Secondary, true, ""), 1);
    (engine, 1)
}

#[test]
fn a_failover_interrupted_by_a_restart_is_resumed_when_its_conditions_still_hold() {
    let (mut engine, now) = read_only_pair();
    let d = engine.step(check(Role::Primary, false, "HTTP 500"), now + 1);
    assert_eq!(d.event, Event::FailoverStarted { automatic: true });
    let stored = engine.persisted().clone();
    assert_eq!(stored.pending.as_ref().map(|p| p.epoch), Some(1));

    let mut spec = one_check_each(1, 1);
    spec.read_only = true;
    let mut restarted = Engine::new(spec, stored);
    // Before the checks tell, nothing happens.
    let d = restarted.step(Input::Tick, now + 2);
    assert!(d.actions.is_empty(), "{}", d.summary);
    assert!(
        d.summary.contains("waiting for the checks"),
        "{}",
        d.summary
    );
    // A result for the epoch now is not one the engine asked for.
    let d = restarted.step(
        Input::ReadOnly {
            attempt: 1,
            result: Ok("read_only = 1".into()),
        },
        now + 3,
    );
    assert_eq!(restarted.persisted().active, Role::Primary, "{}", d.summary);
    restarted.step(check(Role::Secondary, true, ""), now + 4);
    let d = restarted.step(check(Role::Primary, false, "HTTP 500"), now + 5);
    assert_eq!(d.event, Event::FailoverResumed, "{}", d.summary);
    assert_eq!(
        d.actions,
        [Action::PrepareReadOnly {
            site: Role::Secondary,
            epoch: 1,
            attempt: 1
        }]
    );
    let d = restarted.step(
        Input::ReadOnly {
            attempt: 1,
            result: Ok("read_only = 1".into()),
        },
        now + 6,
    );
    assert_eq!(d.event, Event::FailedOver { automatic: true });
    assert_eq!(
        restarted.persisted().epoch,
        1,
        "one epoch for the one failover"
    );
    assert_eq!(restarted.persisted().pending, None);
}

#[test]
fn a_failover_interrupted_by_a_restart_is_rolled_back_when_the_primary_recovered() {
    let (mut engine, now) = read_only_pair();
    engine.step(check(Role::Primary, false, "HTTP 500"), now + 1);
    let mut spec = one_check_each(1, 1);
    spec.read_only = true;
    let mut restarted = Engine::new(spec, engine.persisted().clone());
    let d = restarted.step(check(Role::Primary, true, ""), now + 2);
    assert_eq!(d.event, Event::FailoverRolledBack, "{}", d.summary);
    assert_eq!(
        d.actions,
        [Action::UndoReadOnly {
            site: Role::Secondary,
            attempt: 1
        }]
    );
    assert!(d.summary.contains("healthy again"), "{}", d.summary);
    assert_eq!(restarted.persisted().active, Role::Primary);
    assert_eq!(restarted.persisted().pending, None);
}

#[test]
fn a_preparation_past_its_deadline_is_given_up_and_undone() {
    let (mut engine, now) = read_only_pair();
    engine.step(check(Role::Primary, false, "HTTP 500"), now + 1);
    let d = engine.step(Input::Tick, now + 1 + 30_000 - 1);
    assert!(d.actions.is_empty(), "{}", d.summary);
    let d = engine.step(Input::Tick, now + 1 + 30_000);
    assert_eq!(d.event, Event::FailoverAborted, "{}", d.summary);
    assert_eq!(
        d.actions,
        [Action::UndoReadOnly {
            site: Role::Secondary,
            attempt: 1
        }]
    );
    // The late result changes nothing.
    let d = engine.step(
        Input::ReadOnly {
            attempt: 1,
            result: Ok("read_only = 1".into()),
        },
        now + 40_000,
    );
    assert_eq!(engine.persisted().active, Role::Primary, "{}", d.summary);
}

#[test]
fn a_restart_keeps_the_active_site_and_waits_for_fresh_checks() {
    let (mut engine, mut now) = healthy_pair(1, 1);
    now += 1000;
    engine.step(check(Role::Primary, false, "down"), now);
    let stored = engine.persisted().clone();
    assert_eq!(stored.active, Role::Secondary);
    let mut restarted = Engine::new(one_check_each(1, 1), stored);
    assert_eq!(restarted.persisted().active, Role::Secondary);
    assert_eq!(restarted.site_health(Role::Primary), SiteHealth::Degraded);
    let d = restarted.step(Input::Tick, now + 1);
    assert!(d.actions.is_empty());
    assert!(
        d.summary.contains("not ready for fail-back"),
        "{}",
        d.summary
    );
}

#[test]
fn read_only_must_be_verified_before_dns_moves_unless_the_operator_forces_it() {
    let mut spec = one_check_each(1, 1);
    spec.read_only = true;
    spec.flag_clear_delay_ms = 35_000;
    let mut engine = Engine::new(spec, Persisted::default());
    engine.step(check(Role::Primary, true, ""), 1);
    engine.step(check(Role::Secondary, true, ""), 1);
    let d = engine.step(check(Role::Primary, false, "HTTP 500"), 2);
    assert_eq!(d.event, Event::FailoverStarted { automatic: true });
    assert_eq!(
        d.actions,
        [Action::PrepareReadOnly {
            site: Role::Secondary,
            epoch: 1,
            attempt: 1
        }]
    );
    assert_eq!(
        engine.persisted().active,
        Role::Primary,
        "DNS waits for read-only"
    );

    let d = engine.step(
        Input::ReadOnly {
            attempt: 1,
            result: Err("Access denied for user 'geofailover'".into()),
        },
        3,
    );
    assert_eq!(d.event, Event::FailoverAborted);
    assert!(
        d.summary.contains("Access denied") && d.summary.contains("DNS stays on primary"),
        "{}",
        d.summary
    );
    assert_eq!(engine.persisted().active, Role::Primary);
    // No automatic retry for a while; the summary says when.
    let d = engine.step(Input::Tick, 4);
    assert!(
        d.actions.is_empty() && d.summary.contains("next attempt"),
        "{}",
        d.summary
    );

    // The operator forces it.
    let d = engine.step(
        command(Command::Failover {
            reason: "primary gone for good".into(),
            force: true,
        }),
        5,
    );
    assert_eq!(d.event, Event::FailoverStarted { automatic: false });
    // A new attempt, with an id of its own: the first's result would not do.
    let d = engine.step(
        Input::ReadOnly {
            attempt: 1,
            result: Err("Access denied".into()),
        },
        6,
    );
    assert_eq!(d.event, Event::Steady, "{}", d.summary);
    let d = engine.step(
        Input::ReadOnly {
            attempt: 2,
            result: Err("Access denied".into()),
        },
        6,
    );
    assert_eq!(d.event, Event::FailedOver { automatic: false });
    assert!(
        d.summary.contains("NOT verified") && d.summary.contains("forced"),
        "{}",
        d.summary
    );

    // Fail-back clears the flag only after the TTL wait.
    engine.step(check(Role::Primary, true, ""), 7);
    let d = engine.step(command(Command::Failback), 8);
    assert_eq!(
        d.actions,
        [
            Action::Activate {
                site: Role::Primary,
                epoch: 2
            },
            Action::ClearAppFlag {
                site: Role::Secondary,
                epoch: 2,
                not_before: 35_008
            }
        ]
    );
}

// Several vantage points and changes of leader -----------------------------

/// Three nodes, each checking both sites on its own (one check each, so a
/// node's view of a site is that check's state); sometimes a node's own
/// network fails and it sees both sites down. A leader's engine decides
/// on the quorum's verdict; leaders change at random, and a deposed
/// leader's engine keeps stepping, but a decision reaches the agreed
/// state only through a compare-and-swap on the revision its engine was
/// built on, as the etcd store does.
#[test]
fn several_vantage_points_and_leader_changes_keep_one_decision_per_epoch() {
    use geofailover::engine::quorum::{VantageView, agree};
    let seeds: u64 = std::env::var("GEOFAILOVER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let mut failovers = 0;
    let mut refused = 0;
    for seed in 0..seeds {
        let mut rng = Rng(seed ^ 0x5eed);
        let spec = one_check_each(1 + rng.below(3) as u32, 1 + rng.below(3) as u32);
        let quorum = 2;
        // Each node's model of the two checks, and whether it is blind.
        let mut models: Vec<Model> = (0..3).map(|_| Model::new(&spec)).collect();
        let mut blind = [false; 3];
        let mut agreed_state = Persisted::default();
        let mut revision: u64 = 0;
        // (engine, revision it is built on); the leader's is engines[leader].
        let mut leader = 0usize;
        let mut engines: Vec<(Engine, u64)> = (0..3)
            .map(|_| (Engine::new(spec.clone(), agreed_state.clone()), revision))
            .collect();
        let mut epochs_decided = std::collections::BTreeSet::new();
        let mut now = 1_700_000_000_000u64;
        let mut weather = [95u64, 95u64];
        for step in 0..4_000 {
            now += rng.below(1500);
            if rng.chance(2) {
                weather[rng.below(2) as usize] = [0, 50, 100][rng.below(3) as usize];
            }
            if rng.chance(1) {
                let node = rng.below(3) as usize;
                blind[node] = !blind[node];
            }
            // A node probes one site.
            let node = rng.below(3) as usize;
            let site = rng.below(2) as usize;
            let ok = !blind[node] && rng.below(100) < weather[site];
            models[node].record(&spec, site, 0, ok);
            let views: Vec<VantageView> = (0..3)
                .map(|n| {
                    let health = [0, 1].map(|s| {
                        if models[n].down(&spec, s) {
                            SiteHealth::Down
                        } else if models[n].healthy(&spec, s) {
                            SiteHealth::Healthy
                        } else {
                            SiteHealth::Degraded
                        }
                    });
                    VantageView {
                        node: format!("n{n}"),
                        health,
                        detail: [String::new(), String::new()],
                    }
                })
                .collect();
            let verdict = agree(&views, quorum, ["primary", "secondary"]);
            let sees = |s: usize, h: SiteHealth| {
                views
                    .iter()
                    .filter(|v| !v.blind() && v.health[s] == h)
                    .count()
            };
            // Leadership changes now and then; the new leader's engine is
            // built on the agreed state as it stands.
            if rng.chance(3) {
                leader = (leader + 1 + rng.below(2) as usize) % 3;
                engines[leader] = (Engine::new(spec.clone(), agreed_state.clone()), revision);
            }
            // Every engine steps (a deposed one does not know yet).
            for (n, (engine, base)) in engines.iter_mut().enumerate() {
                engine.set_agreed(Some(verdict.clone()));
                let before = engine.persisted().clone();
                let decision = engine.step(Input::Tick, now);
                if engine.persisted() == &before {
                    continue;
                }
                // The compare-and-swap: the leader key held by the writer's
                // lease, and the state at the revision it built on.
                if n != leader || *base != revision {
                    refused += 1;
                    assert_ne!(n, leader, "seed {seed} step {step}: the leader was refused");
                    *engine = Engine::new(spec.clone(), agreed_state.clone());
                    *base = revision;
                    continue;
                }
                let after = engine.persisted().clone();
                if after.active != agreed_state.active {
                    assert_eq!(
                        after.epoch,
                        agreed_state.epoch + 1,
                        "seed {seed} step {step}"
                    );
                    assert!(
                        epochs_decided.insert(after.epoch),
                        "seed {seed} step {step}: epoch {} decided twice",
                        after.epoch
                    );
                    if decision.event == (Event::FailedOver { automatic: true }) {
                        failovers += 1;
                        assert!(
                            sees(0, SiteHealth::Down) >= quorum,
                            "seed {seed} step {step}: a minority view decided: {views:?}"
                        );
                        assert!(sees(1, SiteHealth::Healthy) >= quorum);
                    }
                }
                agreed_state = after;
                revision += 1;
                *base = revision;
            }
        }
    }
    assert!(failovers > 0, "no automatic failover in any run");
    assert!(refused > 0, "no deposed leader ever tried to write");
}
