//! The commands that talk to a running controller over its HTTP API:
//! `status`, `failover`, `failback`, `pause`, `resume`. The address and the
//! token come from the config (or `--url` and `--token-file`).

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
};

use anyhow::{Context, anyhow};
use serde_json::json;

use super::Failure;
use crate::{config::Config, control::Status, web::CommandReply};

/// Where the controller is and how to prove who we are.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The configuration file (for the HTTP address and the token file).
    #[arg(long, short, default_value = "config/example.yaml")]
    pub config: PathBuf,
    /// The controller's base URL, instead of the config's http.listen.
    #[arg(long)]
    pub url: Option<String>,
    /// The API token's file, instead of the config's http.token_file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// With several nodes: the node to talk to (any node carries out
    /// commands, through the leader).
    #[arg(long)]
    pub node: Option<String>,
}

struct Client {
    base: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    http: reqwest::Client,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?)
}

impl Client {
    fn new(target: &Target) -> Result<Self, Failure> {
        let http_config = if target.url.is_none() || target.token_file.is_none() {
            Config::load_http(&target.config, target.node.as_deref())
                .map_err(|e| Failure::Config(e.to_string()))?
        } else {
            None
        };
        let base = match (&target.url, &http_config) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(http)) => format!("http://{}", http.listen),
            (None, None) => {
                return Err(Failure::Config(format!(
                    "{}: there is no http section, so no API to talk to: add http.listen or pass --url",
                    target.config.display()
                )));
            }
        };
        let token_file = target
            .token_file
            .clone()
            .or_else(|| http_config.map(|h| h.token_file));
        let token = match &token_file {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(text) => Some(text.trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Failure::Other(anyhow!(
                        "cannot read the API token file {}: {e}",
                        file.display()
                    )));
                }
            },
            None => None,
        };
        let http = crate::probe::http_client()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Self {
            base,
            token,
            token_file,
            http,
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> Failure {
        Failure::Other(anyhow!(
            "cannot reach the controller at {}: is `geofailover serve` running? ({e})",
            self.base
        ))
    }

    fn refused_token(&self, message: &str) -> Failure {
        let file = self
            .token_file
            .as_deref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "no token file".into());
        let why = if self.token.is_none() {
            "no token was found"
        } else {
            "the token was refused"
        };
        Failure::Other(anyhow!("{why} ({file}): {message}"))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"error": String::from_utf8_lossy(&body)}));
        if status == 401 {
            let message = value["error"]
                .as_str()
                .unwrap_or("unauthorized")
                .to_string();
            return Err(self.refused_token(&message));
        }
        if status >= 400 && status != 409 {
            let message = value["error"].as_str().unwrap_or("").to_string();
            return Err(Failure::Other(anyhow!(
                "the controller answered HTTP {status}: {message}"
            )));
        }
        Ok((status, value))
    }

    async fn status(&self) -> Result<Status, Failure> {
        let (_, value) = self
            .send(self.http.get(format!("{}/api/v1/status", self.base)))
            .await?;
        Ok(serde_json::from_value(value).context("the controller's status was not understood")?)
    }

    /// POSTs `body` to `/api/v1/{path}` and reads the answer as `T`.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, Failure> {
        let request = self
            .http
            .post(format!("{}/api/v1/{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let (_, value) = self.send(request).await?;
        Ok(serde_json::from_value(value).context("the controller's answer was not understood")?)
    }

    async fn command(&self, path: &str, body: serde_json::Value) -> Result<CommandReply, Failure> {
        self.post(path, body).await
    }

    async fn last_drill(&self) -> Result<crate::control::drill::DrillReport, Failure> {
        let (_, report) = self
            .send(self.http.get(format!("{}/api/v1/drill/last", self.base)))
            .await?;
        Ok(serde_json::from_value(report).context("the drill report was not understood")?)
    }
}

/// Prints pre-checks as `[pass] name: detail` lines.
fn print_prechecks(prechecks: &[crate::engine::Precheck]) {
    for p in prechecks {
        println!(
            "  [{}] {}: {}",
            if p.ok { "pass" } else { "FAIL" },
            p.name,
            p.detail
        );
    }
}

fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".into())
}

pub fn status(target: &Target, as_json: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let status = runtime()?.block_on(client.status())?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("cannot print the status")?
        );
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// The status as a terminal page.
pub fn render(st: &Status) -> String {
    let mut out = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    match (&st.active, st.active_role) {
        (Some(active), Some(role)) => {
            out.push_str(&format!("active: {active} ({role}), epoch {}\n", st.epoch))
        }
        _ => out.push_str("active: no failover configured (DNS only)\n"),
    }
    if st.failover_configured {
        out.push_str(&format!(
            "paused: {}   automatic failover: {}   cooldown until: {}   failovers since start: {}\n",
            yes_no(st.paused),
            if st.auto_failover { "on" } else { "off" },
            st.cooldown_until.as_deref().unwrap_or("-"),
            st.failovers_total
        ));
    }
    if let Some(blocked) = &st.failover_blocked {
        out.push_str(&format!("FAILOVER BLOCKED: {blocked}\n"));
    }
    if let Some(ready) = &st.failover_ready {
        out.push_str(&format!(
            "failover ready: {} (checked {})\n",
            ready.sentence(),
            ready.checked
        ));
    }
    for warning in &st.read_only_warnings {
        out.push_str(&format!("read-only warning: {warning}\n"));
    }
    if let Some(because) = &st.active_because {
        out.push_str(&format!("active because: {because}\n"));
    }
    if let Some(decision) = &st.last_decision {
        out.push_str(&format!("last decision: {decision}\n"));
    }
    if !st.sites.is_empty() {
        out.push_str(&format!(
            "\n{:<12} {:<10} {:<10} {:<6} {:<14} {:<8} LAST RESULT\n",
            "SITE", "ROLE", "HEALTH", "ACTIVE", "CHECK", "STATE"
        ));
        for site in &st.sites {
            for (i, check) in site.checks.iter().enumerate() {
                let (name, role, health, active) = if i == 0 {
                    (
                        site.name.clone(),
                        site.role.to_string(),
                        format!("{:?}", site.health).to_lowercase(),
                        if site.active { "*" } else { "" }.to_string(),
                    )
                } else {
                    Default::default()
                };
                let latency = check
                    .latency_ms
                    .map(|l| format!(" ({l:.1} ms)"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{name:<12} {role:<10} {health:<10} {active:<6} {:<14} {:<8} {}{latency}\n",
                    check.name,
                    format!("{:?}", check.state).to_lowercase(),
                    check.last_detail.as_deref().unwrap_or("-"),
                ));
            }
        }
        out.push_str(&format!(
            "\nfail-back: {}\n",
            if st.ready_for_failback {
                "ready"
            } else {
                "not ready"
            }
        ));
        for p in &st.failback_prechecks {
            out.push_str(&format!(
                "  [{}] {}: {}\n",
                if p.ok { "pass" } else { "FAIL" },
                p.name,
                p.detail
            ));
        }
    }
    if let Some(r) = &st.replication {
        let thread = |b: Option<bool>| match b {
            Some(true) => "running",
            Some(false) => "STOPPED",
            None => "unknown",
        };
        out.push_str(&format!(
            "\nreplication ({}): IO {}, SQL {}, lag {}, {} missing at the secondary, errant: {}\n",
            r.flavor.as_deref().unwrap_or("unknown flavour"),
            thread(r.view.io_running),
            thread(r.view.sql_running),
            r.view.lag_s.map_or("unknown".into(), |l| format!("{l} s")),
            r.view.missing.map_or("unknown".into(), |m| m.to_string()),
            if r.view.errant.is_empty() {
                "none".into()
            } else {
                r.view.errant.join(", ")
            },
        ));
        for (what, error) in [
            ("primary", r.view.primary_error.as_deref()),
            ("secondary", r.view.secondary_error.as_deref()),
            (
                "IO",
                Some(r.view.last_io_error.as_str()).filter(|e| !e.is_empty()),
            ),
            (
                "SQL",
                Some(r.view.last_sql_error.as_str()).filter(|e| !e.is_empty()),
            ),
        ] {
            if let Some(error) = error {
                out.push_str(&format!("  {what} error: {error}\n"));
            }
        }
    }
    out.push_str("\ndns:\n");
    for r in &st.dns.records {
        out.push_str(&format!(
            "  {} {} {} -> {}\n",
            r.name,
            r.ttl,
            r.rtype,
            r.answer.join(", ")
        ));
    }
    for (zone, serial) in &st.dns.serials {
        out.push_str(&format!("  {zone} serial {serial}\n"));
    }
    out
}

fn report(reply: &CommandReply) -> Result<(), Failure> {
    if reply.accepted {
        println!("{}", reply.summary);
        Ok(())
    } else {
        Err(Failure::Other(anyhow!("{}", reply.summary)))
    }
}

pub fn failover(target: &Target, reason: &str, force: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let body = json!({"reason": reason, "operator": operator(), "force": force});
    let reply = runtime()?.block_on(client.command("failover", body))?;
    report(&reply)
}

pub fn failback(target: &Target, dry_run: bool, yes: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let rt = runtime()?;
    let plan =
        rt.block_on(client.command("failback", json!({"dry_run": true, "operator": operator()})))?;
    println!("fail-back pre-checks:");
    print_prechecks(&plan.prechecks);
    if !plan.accepted {
        return Err(Failure::Other(anyhow!("{}", plan.summary)));
    }
    if dry_run {
        println!("{}", plan.summary);
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Config(
                "fail-back needs confirmation: add --yes".into(),
            ));
        }
        print!("Move traffic back to the primary? [y/N] ");
        std::io::stdout()
            .flush()
            .context("cannot write to the terminal")?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not failing back");
            return Ok(());
        }
    }
    let reply = rt.block_on(client.command("failback", json!({"operator": operator()})))?;
    report(&reply)
}

pub fn promote(target: &Target, primary_is_down: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let body = json!({"operator": operator(), "primary_is_down": primary_is_down});
    let reply = runtime()?.block_on(client.command("promote", body))?;
    report(&reply)
}

pub fn rejoin(target: &Target, hold: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let path = if hold {
        "rejoin/hold"
    } else {
        "rejoin/release"
    };
    let reply = runtime()?.block_on(client.command(path, json!({"operator": operator()})))?;
    report(&reply)
}

pub fn pause(target: &Target, resume: bool) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let path = if resume { "resume" } else { "pause" };
    let reply = runtime()?.block_on(client.command(path, json!({"operator": operator()})))?;
    report(&reply)
}

/// `geofailover reload`: the server reads its config and zones again, as
/// on SIGHUP; prints what changed and which node serves which content.
pub fn reload(target: &Target) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let reply: crate::web::ReloadReply = runtime()?.block_on(async {
        // Reading and compiling a large zone takes a while.
        let request = client
            .http
            .post(format!("{}/api/v1/reload", client.base))
            .timeout(std::time::Duration::from_secs(600));
        let (_, value) = client.send(request).await?;
        Ok::<_, Failure>(
            serde_json::from_value(value).context("the controller's answer was not understood")?,
        )
    })?;
    println!("{}", reply.summary);
    for change in &reply.changes {
        println!("  changed: {change}");
    }
    for zone in &reply.zones {
        let content = crate::control::serials::short(&zone.digest);
        if zone.agreed {
            println!("  {} serial {} content {content}", zone.zone, zone.serial);
        } else {
            println!(
                "  {} serial {} content {content}: DIFFERS from the agreed content {} (not transferred from this node)",
                zone.zone,
                zone.serial,
                zone.agreed_digest
                    .as_deref()
                    .map_or("(none)", crate::control::serials::short)
            );
        }
    }
    if !reply.nodes.is_empty() {
        print_nodes(&reply);
    }
    if reply.reloaded {
        Ok(())
    } else {
        Err(Failure::Other(anyhow!("{}", reply.summary)))
    }
}

/// With several nodes: per zone, which nodes serve which content (the
/// agreed content first), each node whose content is not the agreed one
/// flagged; the nodes gone from etcd last.
fn print_nodes(reply: &crate::web::ReloadReply) {
    use crate::control::serials::short;
    if !reply.settled {
        println!(
            "note: this node's new content was not yet in etcd: the nodes below may show it as it was before the reload"
        );
    }
    for zone in &reply.zones {
        let agreed = zone.agreed_digest.as_deref();
        println!(
            "{}: agreed serial {} content {}",
            zone.zone,
            zone.serial,
            agreed.map_or("(none)", short)
        );
        // (serial, digest) -> the nodes serving it, the agreed first.
        let mut groups: Vec<((u32, &str), Vec<&str>)> = Vec::new();
        for node in reply.nodes.iter().filter(|n| n.live) {
            let Some(served) = node.zones.get(&zone.zone) else {
                continue;
            };
            let key = (served.serial, served.digest.as_str());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, names)) => names.push(&node.name),
                None => groups.push((key, vec![&node.name])),
            }
        }
        groups.sort_by_key(|((_, digest), _)| Some(*digest) != agreed);
        for ((serial, digest), names) in groups {
            let flag = if Some(digest) == agreed {
                String::new()
            } else {
                format!(
                    ": DIFFERS from the agreed content (not transferred from {})",
                    if names.len() == 1 { "it" } else { "them" }
                )
            };
            println!(
                "  {}: serial {serial} content {}{flag}",
                names.join(", "),
                short(digest)
            );
        }
    }
    let gone: Vec<&str> = reply
        .nodes
        .iter()
        .filter(|n| !n.live)
        .map(|n| n.name.as_str())
        .collect();
    if !gone.is_empty() {
        println!("gone (no view in etcd): {}", gone.join(", "));
    }
}

/// `geofailover drill`: starts a drill and follows it to its report;
/// ctrl-c aborts it (the controller fails back at once).
pub fn drill(
    target: &Target,
    hold: Option<String>,
    lower_ttl: Option<String>,
    dry_run: bool,
    read_only: bool,
    last: bool,
) -> Result<(), Failure> {
    let client = Client::new(target)?;
    let rt = runtime()?;
    if last {
        print!("{}", rt.block_on(client.last_drill())?.markdown());
        return Ok(());
    }
    let body = json!({
        "hold": hold,
        "lower_ttl": lower_ttl,
        "dry_run": dry_run,
        "read_only": read_only,
        "operator": operator(),
    });
    // Watched before the drill starts, so no ctrl-c goes unanswered.
    let mut interrupt = rt
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        })
        .context("cannot watch ctrl-c")?;
    let reply: crate::control::DrillStartReply = rt.block_on(client.post("drill", body))?;
    println!("pre-checks:");
    print_prechecks(&reply.prechecks);
    println!("plan:");
    for (i, step) in reply.plan.iter().enumerate() {
        println!(
            "  {}. {} ({}); verified: {}",
            i + 1,
            step.action,
            step.target,
            step.verified
        );
    }
    if let Some(refused) = reply.refused {
        return Err(Failure::Other(anyhow!("{refused}")));
    }
    let Some(id) = reply.id else {
        return Ok(());
    };
    println!("drill {id} started; ctrl-c aborts it and fails back");
    let report = rt.block_on(async {
        let mut aborted = false;
        loop {
            tokio::select! {
                _ = interrupt.recv(), if !aborted => {
                    aborted = true;
                    eprintln!("aborting the drill: the controller fails back");
                    let abort = json!({"operator": operator()});
                    let _ = client.post::<serde_json::Value>("drill/abort", abort).await;
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    let status = client.status().await?;
                    let ended = status.last_drill.is_some_and(|l| l.id == id);
                    if status.drill.is_none() && ended {
                        return client.last_drill().await;
                    }
                }
            }
        }
    })?;
    print!("{}", report.markdown());
    if report.result == "pass" {
        Ok(())
    } else {
        Err(Failure::Other(anyhow!(
            "drill {}: {}",
            report.result,
            report.reason.unwrap_or_default()
        )))
    }
}
