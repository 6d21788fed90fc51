//! Drills: a switchover to the secondary and a fail-back, through the same
//! commands an operator uses, with every step verified from the outside
//! (all authoritative nameservers, the secondary's database and flag, the
//! checks) and timed. A failed verification, a secondary that turns
//! unhealthy during the hold, or an abort fails back at once. The report is
//! kept as JSON and Markdown in the state directory.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hickory_net::{
    client::{Client, ClientHandle},
    runtime::TokioRuntimeProvider,
    udp::UdpClientStream,
};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

mod control;
pub mod schedule;
pub mod writer;

use super::{ControlEvent, Status, now_ms};
use crate::{
    config::{FailoverRecord, Site},
    engine::{Command, Event, utc},
    store::{DrillProgress, write_atomically},
};

/// What an operator asks of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRequest {
    pub hold: Duration,
    /// Lower the failover records' TTL to this (seconds) first.
    pub lower_ttl: Option<u32>,
    pub operator: String,
    /// In `failover.mode: promote`: rehearse read-only mode only, without
    /// the promotion and the switchover back.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillStep {
    pub name: String,
    pub started: String,
    pub ended: String,
    /// The same instants in milliseconds since 1970 (0 in reports kept
    /// before they were recorded).
    #[serde(default)]
    pub started_at: u64,
    #[serde(default)]
    pub ended_at: u64,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// From the failover command to our own answer naming the secondary.
    pub decision_to_answer_ms: Option<u64>,
    /// From that answer to every nameserver answering the same.
    pub answer_to_consistent_ms: Option<u64>,
    /// From the fail-back command to every nameserver answering the primary.
    pub failback_to_consistent_ms: Option<u64>,
    /// The wait for caches to drop the secondary's answer.
    pub ttl_drain_ms: Option<u64>,
    /// From the promote command to the secondary verified writable.
    #[serde(default)]
    pub promotion_ms: Option<u64>,
    pub total_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    pub id: String,
    pub operator: String,
    pub started: String,
    /// The same instant, in milliseconds since 1970 (0 in reports kept
    /// before it was recorded).
    #[serde(default)]
    pub started_at: u64,
    pub finished: String,
    /// `pass`, `fail` or `aborted`.
    pub result: String,
    pub reason: Option<String>,
    pub resumed_after_restart: bool,
    pub steps: Vec<DrillStep>,
    pub timings: Timings,
    pub replication_lag_at_switch_s: Option<u64>,
    pub missing_transactions_at_switch: Option<u64>,
    pub nameservers: Vec<String>,
    /// The drill promoted the secondary and switched back.
    #[serde(default)]
    pub promoted: bool,
    /// What the drill's writer saw (promotion drills with `drill.writer`).
    #[serde(default)]
    pub writes: Option<writer::WriteReport>,
}

impl DrillReport {
    pub fn markdown(&self) -> String {
        let ms =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.3} s", v as f64 / 1000.0));
        let mut out = format!(
            "# Drill {}\n\n**Result: {}**{}\n\n- operator: {}\n- started: {}\n- finished: {}\n- nameservers verified: {}\n",
            self.id,
            self.result.to_uppercase(),
            self.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.operator,
            self.started,
            self.finished,
            self.nameservers.join(", ")
        );
        if self.resumed_after_restart {
            out.push_str("- finished by a restarted controller\n");
        }
        out.push_str(&format!(
            "- replication at the switch: lag {}, {} transaction(s) missing at the secondary\n",
            self.replication_lag_at_switch_s
                .map_or("unknown".into(), |l| format!("{l} s")),
            self.missing_transactions_at_switch
                .map_or("unknown".into(), |m| m.to_string())
        ));
        if self.promoted {
            out.push_str("- the secondary was promoted, then switched back over\n");
        }
        out.push_str(&format!(
            "\n## Timings\n\n| what | time |\n|---|---|\n| decision to answer change | {} |\n| answer change to all nameservers consistent | {} |\n",
            ms(self.timings.decision_to_answer_ms),
            ms(self.timings.answer_to_consistent_ms),
        ));
        if self.promoted {
            out.push_str(&format!(
                "| promote command to the secondary writable | {} |\n",
                ms(self.timings.promotion_ms)
            ));
        }
        out.push_str(&format!(
            "| fail-back to all nameservers consistent | {} |\n| TTL drain | {} |\n| total | {} |\n",
            ms(self.timings.failback_to_consistent_ms),
            ms(self.timings.ttl_drain_ms),
            ms(Some(self.timings.total_ms)),
        ));
        if let Some(writes) = &self.writes {
            out.push_str(&writes.markdown());
        }
        out.push_str(
            "\n## Steps\n\n| step | start | end | result | detail |\n|---|---|---|---|---|\n",
        );
        for s in &self.steps {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                s.name,
                s.started,
                s.ended,
                if s.ok { "ok" } else { "FAILED" },
                s.detail.replace('|', "\\|").replace('\n', " ")
            ));
        }
        out.push_str(&self.markdown_timeline());
        out
    }

    /// Each step as a bar from the drill's start, in a fixed-width block.
    fn markdown_timeline(&self) -> String {
        const WIDTH: u64 = 48;
        let spans = self.spans();
        let Some(total) = spans
            .iter()
            .map(|s| s.from_ms + s.ms)
            .max()
            .filter(|t| *t > 0)
        else {
            return String::new();
        };
        let name_width = spans.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let mut out = format!(
            "\n## Timeline\n\nEach step from the drill's start ({:.1} s across):\n\n```\n",
            total as f64 / 1000.0
        );
        for s in &spans {
            let from = s.from_ms * WIDTH / total;
            let length = (s.ms * WIDTH / total).max(1);
            out.push_str(&format!(
                "{:<name_width$} |{}{}{}| {:>7.3} s{}\n",
                s.name,
                " ".repeat(from as usize),
                if s.ok { "#" } else { "x" }.repeat(length as usize),
                " ".repeat(WIDTH.saturating_sub(from + length) as usize),
                s.ms as f64 / 1000.0,
                if s.ok { "" } else { "  FAILED" },
            ));
        }
        out.push_str("```\n");
        out
    }

    /// The steps as spans from the drill's start, for the timelines.
    pub fn spans(&self) -> Vec<StepSpan> {
        let start = self
            .steps
            .iter()
            .map(|s| s.started_at)
            .filter(|t| *t > 0)
            .min()
            .unwrap_or(self.started_at);
        self.steps
            .iter()
            .filter(|s| s.started_at > 0 && s.ended_at >= s.started_at)
            .map(|s| StepSpan {
                name: s.name.clone(),
                from_ms: s.started_at.saturating_sub(start),
                ms: s.ended_at - s.started_at,
                ok: s.ok,
            })
            .collect()
    }
}

/// A drill step on a timeline: from the drill's start, how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpan {
    pub name: String,
    pub from_ms: u64,
    pub ms: u64,
    pub ok: bool,
}

/// One line of a dry run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub action: String,
    pub target: String,
    pub verified: String,
}

/// What a drill needs of the controller's world.
pub struct DrillContext {
    pub outbox: mpsc::Sender<ControlEvent>,
    pub nameservers: Vec<SocketAddr>,
    /// Our own DNS address, the first to change.
    pub own_dns: SocketAddr,
    pub records: Vec<FailoverRecord>,
    /// Per record: the primary's and the secondary's addresses.
    pub primary_addresses: Vec<Vec<IpAddr>>,
    pub secondary_addresses: Vec<Vec<IpAddr>>,
    pub primary: Site,
    pub secondary: Site,
    pub timeout: Duration,
    pub abort: watch::Receiver<Option<String>>,
    /// `failover.mode: promote`: drills promote unless asked not to.
    pub promote: bool,
    /// The drill's writer at the primary's and the secondary's database.
    pub writer: Option<[crate::db::DbTarget; 2]>,
}

impl DrillContext {
    /// Whether this drill promotes the secondary and switches back.
    pub fn promotes(&self, request: &DrillRequest) -> bool {
        self.promote && !request.read_only
    }
}

/// The steps a drill would take, for `--dry-run`.
pub fn plan(ctx: &DrillContext, request: &DrillRequest) -> Vec<PlannedStep> {
    let step = |action: &str, target: String, verified: &str| PlannedStep {
        action: action.into(),
        target,
        verified: verified.into(),
    };
    let names: Vec<String> = ctx
        .records
        .iter()
        .map(|r| format!("{} {}", r.name, r.rtype))
        .collect();
    let servers: Vec<String> = ctx.nameservers.iter().map(ToString::to_string).collect();
    let max_ttl = ctx.records.iter().map(|r| r.ttl).max().unwrap_or(0);
    let mut plan = Vec::new();
    let promotes = ctx.promotes(request);
    if promotes && ctx.writer.is_some() {
        plan.push(step(
            &format!("start the drill's writer ({})", writer::TABLE),
            "primary".into(),
            "a first write acknowledged; the account cannot bypass read_only",
        ));
    }
    if let Some(ttl) = request.lower_ttl {
        plan.push(step(
            &format!(
                "lower the failover records' TTL to {ttl} s, then wait out the old {max_ttl} s"
            ),
            names.join(", "),
            "served with the lower TTL",
        ));
    }
    plan.push(step(
        "switch to the secondary (a failover command with reason \"drill\")",
        ctx.secondary.name.clone(),
        "read-only mode prepared and verified before the answers move",
    ));
    plan.push(step(
        "verify the answers",
        servers.join(", "),
        "every nameserver answers the secondary's addresses with one SOA serial",
    ));
    let mut verified = Vec::new();
    if ctx.secondary.database.is_some() {
        verified.push("@@read_only reads 1");
    }
    if !ctx.secondary.read_only.is_empty() {
        verified.push("the application flag is set");
    }
    verified.push("the secondary's checks pass");
    plan.push(step(
        "verify the secondary",
        ctx.secondary.name.clone(),
        &verified.join("; "),
    ));
    if promotes {
        plan.push(step(
            "promote the secondary (the promote command): the primary fenced first",
            ctx.secondary.name.clone(),
            "the primary reads read_only 1, the secondary read_only 0; writes acknowledged there",
        ));
        plan.push(step(
            "wait for the old primary to rejoin",
            ctx.primary.name.clone(),
            "it replicates from the secondary",
        ));
    }
    plan.push(step(
        &format!("hold for {}", crate::config::duration::show(request.hold)),
        ctx.secondary.name.clone(),
        "the secondary stays healthy; an abort fails back at once",
    ));
    plan.push(step(
        if promotes {
            "switch back over (the fail-back command: the secondary fenced, the primary caught up and made writable)"
        } else {
            "fail back (the fail-back command, after its pre-checks)"
        },
        "primary".into(),
        "every nameserver answers the primary's addresses",
    ));
    if promotes && ctx.writer.is_some() {
        plan.push(step(
            "stop the writer and read its writes back",
            "both databases".into(),
            "no acknowledged write lost; the replica has them all",
        ));
    }
    plan.push(step(
        &format!("wait the records' TTL ({max_ttl} s) for caches to drain"),
        names.join(", "),
        "the application flag is cleared after the TTL and margin",
    ));
    if request.lower_ttl.is_some() {
        plan.push(step(
            "restore the TTL",
            names.join(", "),
            "served with the configured TTL",
        ));
    }
    plan
}

/// Asks the controller and waits for the answer.
async fn ask<T>(
    outbox: &mpsc::Sender<ControlEvent>,
    make: impl FnOnce(oneshot::Sender<T>) -> ControlEvent,
) -> Result<T, String> {
    let (reply, answer) = oneshot::channel();
    outbox
        .send(make(reply))
        .await
        .map_err(|_| "the controller stopped".to_string())?;
    answer
        .await
        .map_err(|_| "the controller stopped".to_string())
}

async fn status(outbox: &mpsc::Sender<ControlEvent>) -> Result<Status, String> {
    ask(outbox, |reply| ControlEvent::Status { reply })
        .await
        .map(|s| *s)
}

/// The addresses `server` answers for `name` and the SOA serial of `zone`.
async fn look(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    zone: &Name,
) -> Result<(BTreeSet<IpAddr>, u32), String> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let task = tokio::spawn(background);
    let result = async {
        let answer = client
            .query(name.clone(), DNSClass::IN, rtype)
            .await
            .map_err(|e| format!("{server}: {name} {rtype}: {e}"))?;
        let addresses = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        let soa = client
            .query(zone.clone(), DNSClass::IN, RecordType::SOA)
            .await
            .map_err(|e| format!("{server}: {zone} SOA: {e}"))?;
        let serial = soa
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            })
            .ok_or_else(|| format!("{server}: no SOA for {zone}"))?;
        Ok((addresses, serial))
    }
    .await;
    task.abort();
    result
}

/// Whether every nameserver answers every failover record with `expected`
/// and one SOA serial; the difference otherwise.
async fn consistent(
    ctx: &DrillContext,
    expected: &[Vec<IpAddr>],
    zones: &[(String, Name)],
) -> Result<String, String> {
    let mut serials = BTreeSet::new();
    for server in &ctx.nameservers {
        for (record, want) in ctx.records.iter().zip(expected) {
            let zone = zones
                .iter()
                .filter(|(_, z)| z.zone_of(&record.name))
                .max_by_key(|(_, z)| z.num_labels())
                .map(|(_, z)| z.clone())
                .ok_or_else(|| format!("no zone holds {}", record.name))?;
            let (got, serial) = look(*server, &record.name, record.rtype, &zone).await?;
            let want: BTreeSet<IpAddr> = want.iter().copied().collect();
            if got != want {
                return Err(format!(
                    "{server} answers {} with {got:?}, expected {want:?}",
                    record.name
                ));
            }
            serials.insert(serial);
        }
    }
    if serials.len() > 1 {
        return Err(format!(
            "the nameservers serve different serials: {serials:?}"
        ));
    }
    Ok(format!(
        "{} nameserver(s) answer alike, serial {}",
        ctx.nameservers.len(),
        serials.iter().next().map_or("-".into(), |s| s.to_string())
    ))
}

/// Polls `probe` every 100 ms until it succeeds, the time is up, or an
/// abort arrives; the abort's reason comes back as `Err`.
async fn until<F, Fut>(
    ctx: &mut DrillContext,
    timeout: Duration,
    mut probe: F,
) -> Result<Result<String, String>, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(reason) = ctx.abort.borrow().clone() {
            return Err(reason);
        }
        let last = probe().await;
        if last.is_ok() || Instant::now() >= deadline {
            return Ok(last);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = ctx.abort.changed() => {}
        }
    }
}

struct Recorder {
    steps: Vec<DrillStep>,
}

impl Recorder {
    fn record(&mut self, name: &str, started: u64, result: &Result<String, String>) -> bool {
        let (ok, detail) = match result {
            Ok(d) => (true, d.clone()),
            Err(d) => (false, d.clone()),
        };
        tracing::info!(step = name, ok, "drill: {detail}");
        let ended = now_ms();
        self.steps.push(DrillStep {
            name: name.into(),
            started: utc(started),
            ended: utc(ended),
            started_at: started,
            ended_at: ended,
            ok,
            detail,
        });
        ok
    }
}

/// Reads back each of the secondary's read-only steps from the outside.
async fn verify_secondary(site: &Site, timeout: Duration) -> Result<String, String> {
    let mut seen = Vec::new();
    for step in site.read_only_steps() {
        seen.push(super::steps::verify(step, site, timeout).await?);
    }
    if seen.is_empty() {
        seen.push("no read-only steps configured".into());
    }
    Ok(seen.join("; "))
}

/// Runs a drill (or, with `resume`, finishes one a restart interrupted).
pub async fn run(
    mut ctx: DrillContext,
    request: DrillRequest,
    id: String,
    resume: bool,
    zones: Vec<(String, Name)>,
) -> DrillReport {
    let start = now_ms();
    let clock = Instant::now();
    let mut rec = Recorder { steps: Vec::new() };
    let mut timings = Timings::default();
    let mut reason: Option<String> = None;
    let mut failed = false;
    let mut lag = None;
    let mut missing = None;
    let max_ttl = ctx.records.iter().map(|r| r.ttl).max().unwrap_or(0);
    let outbox = ctx.outbox.clone();
    let phase = |phase: Option<&str>| {
        let progress = phase.map(|p| DrillProgress {
            id: id.clone(),
            started: start,
            phase: p.into(),
        });
        let outbox = outbox.clone();
        async move {
            let _ = ask(&outbox, |reply| ControlEvent::DrillPhase {
                progress,
                reply,
            })
            .await;
        }
    };
    let timeout = ctx.timeout;
    let mut switched = false;
    let promotes = ctx.promotes(&request) && !resume;
    let mut promoted = false;
    let mut writer = None;

    if resume {
        reason = Some("the controller restarted during the drill".into());
        let t = now_ms();
        let active = status(&outbox).await.map(|s| s.active_role);
        switched = matches!(active, Ok(Some(crate::engine::Role::Secondary)));
        rec.record(
            "resume after restart",
            t,
            &Ok(format!(
                "traffic is on the {}",
                if switched { "secondary" } else { "primary" }
            )),
        );
    } else {
        if let Some(ttl) = request.lower_ttl {
            let t = now_ms();
            let set = ask(&outbox, |reply| ControlEvent::SetTtl {
                ttl: Some(ttl),
                reply,
            })
            .await;
            let waited = match set {
                Ok(()) => {
                    let wait = Duration::from_secs(u64::from(max_ttl));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => Ok(format!("TTL {ttl} s served; waited out the old {max_ttl} s")),
                        _ = ctx.abort.changed() => Err(ctx.abort.borrow().clone().unwrap_or_else(|| "aborted".into())),
                    }
                }
                Err(e) => Err(e),
            };
            if !rec.record("lower the TTL", t, &waited) {
                reason = waited.err();
            }
        }
        if promotes
            && reason.is_none()
            && let Some(targets) = ctx.writer.clone()
        {
            let t = now_ms();
            let started = writer::Writer::start(targets, &id, timeout)
                .await
                .map(|(w, detail)| {
                    writer = Some(w);
                    detail
                });
            failed |= !rec.record("start the drill's writer", t, &started);
        }
        if reason.is_none() && !failed {
            phase(Some("preparing")).await;
            let t = now_ms();
            let command = Command::Failover {
                reason: format!("drill {id}"),
                force: false,
            };
            let decision = ask(&outbox, |reply| ControlEvent::Command {
                command,
                actor: request.operator.clone(),
                reply,
            })
            .await
            .and_then(|decided| decided);
            let result = match decision {
                Ok(d) if d.event == Event::Refused => Err(d.summary),
                Ok(d) => Ok(d.summary),
                Err(e) => Err(e),
            };
            let started_ok = result.is_ok();
            let mut outcome = result;
            if started_ok {
                let own = ctx.own_dns;
                let zones2 = zones.clone();
                let records = ctx.records.clone();
                let secondary = ctx.secondary_addresses.clone();
                let watched = until(&mut ctx, timeout, || {
                    let (zones, records, secondary) =
                        (zones2.clone(), records.clone(), secondary.clone());
                    let outbox = outbox.clone();
                    async move {
                        let st = status(&outbox).await?;
                        if st.pending_failover.is_none()
                            && st
                                .last_decision
                                .as_deref()
                                .is_some_and(|d| d.starts_with("failover stopped"))
                        {
                            return Ok(format!(
                                "STOPPED: {}",
                                st.last_decision.unwrap_or_default()
                            ));
                        }
                        for (record, want) in records.iter().zip(&secondary) {
                            let zone = zones
                                .iter()
                                .filter(|(_, z)| z.zone_of(&record.name))
                                .max_by_key(|(_, z)| z.num_labels())
                                .map(|(_, z)| z.clone())
                                .ok_or("no zone")?;
                            let (got, _) = look(own, &record.name, record.rtype, &zone).await?;
                            if got != want.iter().copied().collect() {
                                return Err(format!(
                                    "{own} still answers {} with {got:?}",
                                    record.name
                                ));
                            }
                        }
                        Ok(format!("{own} answers the secondary's addresses"))
                    }
                })
                .await;
                outcome = match watched {
                    Ok(Ok(text)) if text.starts_with("STOPPED: ") => Err(text[9..].to_string()),
                    Ok(Ok(text)) => {
                        timings.decision_to_answer_ms = Some(now_ms().saturating_sub(t));
                        switched = true;
                        Ok(text)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(abort) => {
                        reason = Some(abort.clone());
                        Err(abort)
                    }
                };
            }
            if !rec.record("switch to the secondary", t, &outcome) {
                failed = true;
            }
            // The switch may still complete after a timeout; look again.
            if !switched && let Ok(st) = status(&outbox).await {
                switched = st.active_role == Some(crate::engine::Role::Secondary);
            }
        }
        if switched {
            phase(Some("switched")).await;
            if let Ok(st) = status(&outbox).await
                && let Some(r) = &st.replication
            {
                lag = r.view.lag_s;
                missing = r.view.missing;
            }
        }
        if switched && !failed && reason.is_none() {
            let t = now_ms();
            let expected = ctx.secondary_addresses.clone();
            let zones2 = zones.clone();
            let result = {
                let deadline = Instant::now() + timeout;
                loop {
                    let r = consistent(&ctx, &expected, &zones2).await;
                    if r.is_ok() || Instant::now() >= deadline || ctx.abort.borrow().is_some() {
                        break r;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            if result.is_ok() {
                timings.answer_to_consistent_ms = Some(now_ms().saturating_sub(t));
            }
            failed |= !rec.record("all nameservers answer the secondary", t, &result);
        }
        if switched && !failed && reason.is_none() {
            let t = now_ms();
            let result = verify_secondary(&ctx.secondary, timeout).await;
            if result.is_ok()
                && let Some(w) = &writer
            {
                // Read-only verified: it takes writes only once promoted.
                w.follow();
            }
            failed |= !rec.record("the secondary is read-only", t, &result);
            let t = now_ms();
            let result = match status(&outbox).await {
                Ok(st) => match st
                    .sites
                    .iter()
                    .find(|s| s.role == crate::engine::Role::Secondary)
                {
                    Some(s) if s.health == crate::engine::SiteHealth::Healthy => {
                        Ok(format!("{} healthy ({} checks up)", s.name, s.checks.len()))
                    }
                    Some(s) => Err(format!("{} is {:?}", s.name, s.health)),
                    None => Err("no secondary in the status".into()),
                },
                Err(e) => Err(e),
            };
            failed |= !rec.record("the secondary's checks pass", t, &result);
        }
        if promotes && switched && !failed && reason.is_none() {
            phase(Some("promoting")).await;
            let t = now_ms();
            let outcome = match promote(&mut ctx, &request.operator).await {
                Err(abort) => {
                    reason = Some(abort.clone());
                    Err(abort)
                }
                Ok(result) => result,
            };
            promoted = outcome.is_ok();
            if promoted {
                timings.promotion_ms = Some(now_ms().saturating_sub(t));
            }
            failed |= !rec.record("promote the secondary", t, &outcome);
            if promoted {
                let verified = verify_promoted(&ctx.primary, &ctx.secondary, timeout).await;
                let verified = match (&writer, verified) {
                    (Some(w), Ok(detail)) => match w.wait_for(1, t, timeout).await {
                        Some(at) => Ok(format!(
                            "{detail}; the first write acknowledged at the secondary {} ms after the promote command",
                            at.saturating_sub(t)
                        )),
                        None => Err(format!(
                            "{detail}; but no write was acknowledged at the secondary"
                        )),
                    },
                    (_, verified) => verified,
                };
                failed |= !rec.record("the secondary is writable", t, &verified);
            }
            if promoted && !failed && reason.is_none() {
                let t = now_ms();
                let rejoined =
                    match stage(&mut ctx, &["rejoined"], &["diverged"], timeout, true).await {
                        Err(abort) => {
                            reason = Some(abort.clone());
                            Err(abort)
                        }
                        Ok(result) => result,
                    };
                failed |= !rec.record("the old primary rejoined", t, &rejoined);
            }
        }
        if switched && !failed && reason.is_none() {
            let t = now_ms();
            let hold_until = Instant::now() + request.hold;
            let result = loop {
                if let Some(abort) = ctx.abort.borrow().clone() {
                    reason = Some(abort.clone());
                    break Err(abort);
                }
                if Instant::now() >= hold_until {
                    break Ok(format!(
                        "held {}",
                        crate::config::duration::show(request.hold)
                    ));
                }
                let healthy = status(&outbox).await.map(|st| {
                    st.sites
                        .iter()
                        .find(|s| s.role == crate::engine::Role::Secondary)
                        .map(|s| {
                            (
                                s.health == crate::engine::SiteHealth::Healthy,
                                s.name.clone(),
                            )
                        })
                });
                if let Ok(Some((false, name))) = healthy {
                    let why = format!("{name} became unhealthy during the hold");
                    reason = Some(why.clone());
                    break Err(why);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = ctx.abort.changed() => {}
                }
            };
            rec.record("hold", t, &result);
        }
    }

    // Fail back whenever the switch happened, whatever went before. A
    // promotion (finished by the engine after an abort, or found after a
    // restart) is switched back over once the old primary is rejoined:
    // that wait is not cut short by an abort, and allows for a rejoin
    // tried again after a failure (30 s later).
    if switched {
        let found = status(&outbox)
            .await
            .ok()
            .and_then(|st| st.promotion)
            .map(|p| p.stage)
            .filter(|stage| stage != "read_only");
        if let Some(found) = found {
            promoted = true;
            if found != "rejoined" {
                let t = now_ms();
                let within = timeout + Duration::from_secs(35);
                let rejoined = stage(&mut ctx, &["rejoined"], &["diverged"], within, false)
                    .await
                    .unwrap_or_else(Err);
                failed |= !rec.record("the old primary rejoined", t, &rejoined);
            }
        }
        phase(Some("failing_back")).await;
        let t = now_ms();
        let deadline = Instant::now() + timeout.max(Duration::from_secs(5));
        let result = loop {
            let decision = ask(&outbox, |reply| ControlEvent::Command {
                command: Command::Failback,
                actor: request.operator.clone(),
                reply,
            })
            .await
            .and_then(|decided| decided);
            match decision {
                Ok(d) if d.event != Event::Refused => break Ok(d.summary),
                Ok(d) if Instant::now() >= deadline => break Err(d.summary),
                Err(e) => break Err(e),
                Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let back = rec.record(
            if promoted {
                "switch back over"
            } else {
                "fail back"
            },
            t,
            &result,
        );
        failed |= !back;
        if back {
            let t2 = now_ms();
            let expected = ctx.primary_addresses.clone();
            let deadline = Instant::now() + timeout;
            let result = loop {
                let r = consistent(&ctx, &expected, &zones).await;
                if r.is_ok() || Instant::now() >= deadline {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if result.is_ok() {
                timings.failback_to_consistent_ms = Some(now_ms().saturating_sub(t));
            }
            failed |= !rec.record("all nameservers answer the primary", t2, &result);
            if let Some(w) = &writer
                && promoted
            {
                let t4 = now_ms();
                let result = match w.wait_for(0, t, timeout).await {
                    Some(at) => Ok(format!(
                        "the first write acknowledged at the primary {} ms after the fail-back command",
                        at.saturating_sub(t)
                    )),
                    None => Err("no write was acknowledged at the primary".to_string()),
                };
                failed |= !rec.record("writes at the primary", t4, &result);
            }
            let t3 = now_ms();
            tokio::time::sleep(Duration::from_secs(u64::from(max_ttl))).await;
            timings.ttl_drain_ms = Some(now_ms().saturating_sub(t3));
            rec.record(
                "TTL drain",
                t3,
                &Ok(format!("waited the records' TTL of {max_ttl} s")),
            );
        }
    }
    let mut writes = None;
    if let Some(w) = writer {
        let t = now_ms();
        let report = w.finish().await;
        let result = if report.lost > 0 {
            Err(format!(
                "{} of {} acknowledged write(s) lost: {:?}",
                report.lost, report.acknowledged, report.lost_examples
            ))
        } else if let Some(note) = &report.note {
            Err(note.clone())
        } else if report.missing_at_replica != Some(0) {
            Err(format!(
                "the replica lacks {} acknowledged write(s)",
                report
                    .missing_at_replica
                    .map_or("unknown".into(), |m| m.to_string())
            ))
        } else {
            Ok(format!(
                "{} write(s) acknowledged, none lost, all at both databases; writes stopped {} ms at the promotion, {} ms at the switchover back",
                report.acknowledged,
                report
                    .promotion_gap_ms
                    .map_or("-".into(), |v| v.to_string()),
                report
                    .switchover_gap_ms
                    .map_or("-".into(), |v| v.to_string()),
            ))
        };
        failed |= !rec.record("the drill's writes", t, &result);
        writes = Some(report);
    }
    let restore = request.lower_ttl.is_some() || resume;
    if restore {
        let t = now_ms();
        let result = ask(&outbox, |reply| ControlEvent::SetTtl { ttl: None, reply })
            .await
            .map(|()| "the configured TTL is served again".to_string());
        failed |= !rec.record("restore the TTL", t, &result);
    }
    phase(None).await;
    timings.total_ms = clock.elapsed().as_millis() as u64;
    let result = match (&reason, failed) {
        (Some(_), _) => "aborted",
        (None, true) => "fail",
        (None, false) => "pass",
    };
    DrillReport {
        id,
        operator: request.operator,
        started: utc(start),
        started_at: start,
        finished: utc(now_ms()),
        result: result.into(),
        reason: reason.or_else(|| {
            failed.then(|| {
                rec.steps
                    .iter()
                    .find(|s| !s.ok)
                    .map(|s| format!("{}: {}", s.name, s.detail))
                    .unwrap_or_default()
            })
        }),
        resumed_after_restart: resume,
        steps: rec.steps,
        timings,
        replication_lag_at_switch_s: lag,
        missing_transactions_at_switch: missing,
        nameservers: ctx.nameservers.iter().map(ToString::to_string).collect(),
        promoted,
        writes,
    }
}

/// The promote command, then the wait until the secondary is promoted;
/// `Err` carries an abort's reason.
async fn promote(ctx: &mut DrillContext, operator: &str) -> Result<Result<String, String>, String> {
    let decision = ask(&ctx.outbox, |reply| ControlEvent::Command {
        command: Command::Promote {
            primary_is_down: false,
        },
        actor: operator.to_string(),
        reply,
    })
    .await
    .and_then(|decided| decided);
    match decision {
        Ok(d) if d.event == Event::Refused => Ok(Err(d.summary)),
        Ok(_) => {
            let timeout = ctx.timeout;
            stage(ctx, &["promoted", "rejoined"], &[], timeout, true).await
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Waits (up to `within`) until the promotion's stage is one of `want`;
/// a stage in `fail`, or the promotion gone (stopped), ends the wait as
/// a failure. `Err` carries an abort's reason, when `abortable`.
async fn stage(
    ctx: &mut DrillContext,
    want: &[&str],
    fail: &[&str],
    within: Duration,
    abortable: bool,
) -> Result<Result<String, String>, String> {
    let deadline = Instant::now() + within;
    loop {
        if abortable && let Some(reason) = ctx.abort.borrow().clone() {
            return Err(reason);
        }
        let waiting = match status(&ctx.outbox).await {
            Err(e) => e,
            Ok(st) => match st.promotion {
                None => "the status has no promotion".to_string(),
                Some(p) => {
                    let detail = p.detail.clone().unwrap_or_default();
                    if want.contains(&p.stage.as_str()) {
                        return Ok(Ok(format!("{}: {detail}", p.stage)));
                    }
                    if fail.contains(&p.stage.as_str()) {
                        return Ok(Err(format!("{}: {detail}", p.stage)));
                    }
                    let last = st.last_decision.unwrap_or_default();
                    if p.stage == "read_only" && last.starts_with("promotion stopped") {
                        return Ok(Err(last));
                    }
                    format!("{}: {detail}", p.stage)
                }
            },
        };
        if Instant::now() >= deadline {
            return Ok(Err(format!(
                "still {waiting} after {}",
                crate::config::duration::show(within)
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = ctx.abort.changed(), if abortable => {}
        }
    }
}

/// Reads both databases from the outside after a promotion: the old
/// primary read-only, the secondary writable.
async fn verify_promoted(
    primary: &Site,
    secondary: &Site,
    timeout: Duration,
) -> Result<String, String> {
    let mut seen = Vec::new();
    for (site, want_read_only) in [(primary, true), (secondary, false)] {
        let Some(db) = &site.database else {
            return Err(format!("{} has no database", site.name));
        };
        let mut conn = crate::db::Db::connect(&db.target, timeout).await?;
        let state = conn.read_only_state().await;
        conn.close().await;
        let (read_only, detail) = state?;
        if read_only != want_read_only {
            return Err(format!(
                "{}: expected {}, found {detail}",
                site.name,
                if want_read_only {
                    "read-only"
                } else {
                    "writable"
                }
            ));
        }
        seen.push(format!(
            "{}: {}",
            site.name,
            if read_only {
                detail
            } else {
                "read_only reads 0".to_string()
            }
        ));
    }
    Ok(seen.join("; "))
}

/// Keeps a report: `drills/<id>.json`, `drills/<id>.md`, `drills/last.json`.
pub fn save(dir: &Path, report: &DrillReport) -> Result<PathBuf, String> {
    let drills = dir.join("drills");
    std::fs::create_dir_all(&drills)
        .map_err(|e| format!("cannot create {}: {e}", drills.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let file = |name: String| drills.join(name);
    let safe = report.id.replace([':', '/'], "-");
    for (path, text) in [
        (file(format!("{safe}.json")), json.as_str()),
        (file(format!("{safe}.md")), report.markdown().as_str()),
        (file("last.json".into()), json.as_str()),
    ] {
        write_atomically(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(file(format!("{safe}.md")))
}

/// The newest `n` reports kept in `dir`, newest first.
pub fn history(dir: &Path, n: usize) -> Vec<DrillReport> {
    let Ok(entries) = std::fs::read_dir(dir.join("drills")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "last.json")
        })
        .collect();
    // Named by their start time: the names sort as the drills ran.
    files.sort();
    files
        .iter()
        .rev()
        .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
        .take(n)
        .collect()
}

/// The last report kept in `dir`, if any.
pub fn last(dir: &Path) -> Option<DrillReport> {
    let text = std::fs::read_to_string(dir.join("drills/last.json")).ok()?;
    serde_json::from_str(&text).ok()
}
