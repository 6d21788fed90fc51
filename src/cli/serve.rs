//! `geofailover serve`: restore the stored state, answer DNS for the
//! configured zones, run the health checks and let the engine move the
//! failover records, until SIGTERM or ctrl-c. SIGHUP reloads the config and
//! zones, keeping the old ones when the new have any error.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
};
use tracing::{error, info, warn};

use super::Failure;
use crate::{
    config::Config,
    control::{self, ControlEvent, Controller},
    dns::{self, DnsServer},
    web::{self, WebState, auth, demo::DemoSites},
    zone::{self, AnswerTable, Zone},
};

/// Probe results and reloads waiting for the controller.
const CONTROL_QUEUE: usize = 4096;
/// How often the parents of zones in a KSK or CSK rollover are asked for
/// the new DS.
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_secs(600);
/// How soon signing a zone again is retried after it failed.
const RESIGN_RETRY: std::time::Duration = std::time::Duration::from_secs(600);

pub fn run(path: &Path, node: Option<&str>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(path, node, None))
}

/// Reads the config (as `node`, with several nodes) and every zone it
/// names, all checked.
fn load(path: &Path, node: Option<&str>) -> Result<(Config, Vec<Zone>), String> {
    let config = Config::load_as(path, node).map_err(|e| e.to_string())?;
    let zones = zone::load_all(&config).map_err(|e| e.to_string())?;
    let now_s = crate::control::clock::now_ms() / 1000;
    let zones = crate::dnssec::sign_all(&config, zones, now_s, true)?;
    Ok((config, zones))
}

/// Raises the limit on open files to what the system allows (TCP
/// connections and probes each hold one).
fn raise_open_files_limit() {
    use nix::libc;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the rlimit passed,
    // which lives across both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            info!(
                "open files limit raised from {} to {}",
                limit.rlim_cur, limit.rlim_max
            );
        }
    }
}

fn describe(table: &AnswerTable) -> String {
    table
        .summary()
        .iter()
        .map(|(origin, serial)| format!("{origin} serial {serial}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the controller, DNS and HTTP until SIGTERM or ctrl-c; `demo` adds
/// the demo's stand-in controls to the HTTP side.
pub async fn serve(
    path: &Path,
    node: Option<&str>,
    demo: Option<Arc<DemoSites>>,
) -> Result<(), Failure> {
    let (mut config, zones) = load(path, node).map_err(Failure::Config)?;
    // The zones served, as the next reload compares them.
    let mut served = zones.clone();
    let (events, inbox) = mpsc::channel(CONTROL_QUEUE);
    // The stored state comes back before anything is answered.
    let mut controller = Controller::start(&config, zones, events.clone())
        .await
        .map_err(|e| Failure::Other(e.into()))?;
    let table = controller.table();
    info!(config = %path.display(), "starting: serving {}", describe(&table.load().table));

    raise_open_files_limit();
    let bound = dns::bind(&config.dns.listen)
        .await
        .context("cannot open the DNS sockets")?;
    let mut addresses = Vec::new();
    for (configured, b) in config.dns.listen.iter().zip(&bound) {
        addresses.push((
            *configured,
            b.local_addr().context("cannot read a bound address")?,
        ));
    }
    controller.set_dns_addresses(addresses);
    for b in &bound {
        let addr = b.local_addr().context("cannot read a bound address")?;
        info!("listening on {addr} (udp, tcp)");
    }
    if bound.is_empty() {
        info!("this node serves no DNS (a witness): it checks the sites and votes");
    }
    let server = DnsServer::start(
        table.clone(),
        controller.counters(),
        bound,
        dns::TcpLimits::of(&config.dns),
        config.dns.fast_path,
        config.dns.rrl.clone(),
    )
    .context("cannot start the UDP listeners")?;

    controller.start_tasks().map_err(Failure::Config)?;
    let (reads, read_inbox) = mpsc::channel(CONTROL_QUEUE);
    let control = tokio::spawn(control::run(controller, inbox, read_inbox));

    let (stop_web, web_stopped) = oneshot::channel::<()>();
    let (reloads, mut reload_requests) = mpsc::channel::<web::ReloadRequest>(4);
    let web = match &config.http {
        Some(http) => {
            let (token, created) =
                auth::load_or_create(&http.token_file).map_err(Failure::Config)?;
            if created {
                info!(file = %http.token_file.display(), "created an API token file");
            }
            let listener = tokio::net::TcpListener::bind(http.listen)
                .await
                .with_context(|| format!("cannot listen on {} for HTTP", http.listen))?;
            let addr = listener
                .local_addr()
                .context("cannot read the HTTP address")?;
            info!("status page on http://{addr}/");
            let state = WebState {
                control: events.clone(),
                reads: reads.clone(),
                token: Arc::new(token),
                protect_reads: http.protect_reads,
                demo,
                drill_hold: config.drill.hold,
                reload: Some(reloads.clone()),
            };
            Some(tokio::spawn(web::serve(listener, state, async {
                let _ = web_stopped.await;
            })))
        }
        None => None,
    };

    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    // Signed zones are signed again at the end of their step (`refresh`
    // before the signatures expire); a failed attempt is tried again
    // every RESIGN_RETRY until it succeeds, while the old signatures last.
    let mut resign_retry: Option<tokio::time::Instant> = None;
    let mut parent_tick = tokio::time::interval(PARENT_CHECK);
    loop {
        let resign_at = resign_retry.or_else(|| {
            crate::dnssec::next_due(&config, &served).map(|due| {
                let now = crate::control::clock::now_ms() / 1000;
                tokio::time::Instant::now()
                    + std::time::Duration::from_secs(due.saturating_sub(now))
            })
        });
        let resign = async {
            match resign_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = parent_tick.tick() => {
                if parents_changed(&config, &served).await {
                    let _ = reload(path, node, &events, &mut config, &mut served).await;
                }
            }
            _ = resign => {
                info!("signing the signed zones again: their signatures are due for renewal");
                resign_retry = match reload(path, node, &events, &mut config, &mut served).await {
                    Ok(_) => None,
                    Err(_) => Some(tokio::time::Instant::now() + RESIGN_RETRY),
                };
            }
            _ = hangup.recv() => {
                let _ = reload(path, node, &events, &mut config, &mut served).await;
            }
            Some(reply) = reload_requests.recv() => {
                let _ = reply.send(reload(path, node, &events, &mut config, &mut served).await);
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping");
    finish_drill(&events).await;
    let _ = stop_web.send(());
    if let Some(web) = web {
        let _ = web.await;
    }
    let _ = events.send(ControlEvent::Shutdown).await;
    let _ = control.await;
    server.shutdown().await.context("stopping the DNS server")?;
    Ok(())
}

/// Builds the new config and zones in full, then hands them to the
/// controller, which applies them together or not at all; on any error
/// the old ones keep serving. Settings that need a restart are named and
/// keep their old values.
async fn reload(
    path: &Path,
    node: Option<&str>,
    events: &mpsc::Sender<ControlEvent>,
    config: &mut Config,
    served: &mut Vec<Zone>,
) -> Result<Vec<String>, String> {
    info!(config = %path.display(), "reloading");
    parents_changed(config, served).await;
    // Reading, checking and compiling the zones may take a while for a
    // large zone: off the async runtime, while the old table answers.
    let (file, name) = (path.to_path_buf(), node.map(str::to_string));
    let old = served.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let (config, zones) = load(&file, name.as_deref())?;
        let base = crate::control::answers::base(&config, &zones);
        // What changed, for IXFR: found here, not on the control loop.
        let changes = crate::dns::transfer::static_changes(&old, &zones);
        Ok::<_, String>((config, zones, base, changes))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|loaded| loaded);
    let (mut new_config, zones, base, changes) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            error!("reload failed, still serving the previous configuration: {e}");
            return Err(e);
        }
    };
    let mut restart = Vec::new();
    if new_config.dns != config.dns {
        restart.push("dns (listen addresses, TCP idle timeout, fast path)");
        new_config.dns = config.dns.clone();
    }
    if new_config.http != config.http {
        restart.push("http (listen address, token file, protect_reads)");
        new_config.http = config.http.clone();
    }
    if new_config.state_dir != config.state_dir {
        restart.push("state_dir");
        new_config.state_dir = config.state_dir.clone();
    }
    if new_config.cluster != config.cluster {
        restart.push("store, node, nodes and quorum");
        new_config.cluster = config.cluster.clone();
    }
    if !restart.is_empty() {
        warn!(
            "these settings changed and take effect at the next restart: {}",
            restart.join(", ")
        );
    }
    let (done, applied) = oneshot::channel();
    let event = ControlEvent::Reload {
        config: Box::new(new_config.clone()),
        zones: zones.clone(),
        base: Arc::new(base),
        changes,
        done,
    };
    let stopped = || {
        error!("reload failed: the controller has stopped");
        "the controller has stopped".to_string()
    };
    if events.send(event).await.is_err() {
        return Err(stopped());
    }
    match applied.await {
        Ok(Ok(mut changes)) => {
            info!("reload succeeded");
            *config = new_config;
            *served = zones;
            changes.extend(
                restart
                    .iter()
                    .map(|s| format!("{s}: changed, takes effect at the next restart")),
            );
            Ok(changes)
        }
        Ok(Err(why)) => {
            error!("reload refused, still serving the previous configuration: {why}");
            Err(why)
        }
        Err(_) => Err(stopped()),
    }
}

/// Asks the parents of the signed zones in a KSK or CSK rollover for the
/// new DS (`dnssec::parent::check`), logs what it found; whether a key's
/// times changed (the zones are then to be signed again).
async fn parents_changed(config: &Config, served: &[Zone]) -> bool {
    let watched = config.zones.iter().any(|z| {
        z.dnssec
            .as_ref()
            .is_some_and(|d| !d.parent_nameservers.is_empty())
    });
    if !watched {
        return false;
    }
    let now = crate::control::clock::now_ms() / 1000;
    let (done, failed) = crate::dnssec::parent::check(config, served, now).await;
    for line in &failed {
        warn!("{line}");
    }
    for line in &done {
        info!("{line}");
    }
    !done.is_empty()
}

/// A drill under way is aborted and its fail-back awaited (at most two
/// minutes) before the controller stops, so a stop leaves no drill
/// half-done; a drill cut short anyway is finished after the next start.
async fn finish_drill(events: &mpsc::Sender<ControlEvent>) {
    let (reply, running) = oneshot::channel();
    let abort = ControlEvent::DrillAbort {
        reason: "the controller was asked to stop".into(),
        reply,
    };
    if events.send(abort).await.is_err() || !running.await.unwrap_or(false) {
        return;
    }
    info!("waiting for the drill to fail back before stopping");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        let (reply, answer) = oneshot::channel();
        if events.send(ControlEvent::Status { reply }).await.is_err() {
            return;
        }
        match answer.await {
            Ok(status) if status.drill.is_none() => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            Err(_) => return,
        }
    }
    warn!("the drill did not finish in two minutes: the next start finishes its fail-back");
}
