//! `geofailover serve`: answer DNS for the configured zones until SIGTERM or
//! ctrl-c; SIGHUP reloads the config and zones, keeping the old table when
//! the new one has any error.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use super::Failure;
use crate::{
    config::Config,
    dns::{self, DnsServer, Handler, SharedTable},
    zone::{self, AnswerTable},
};

pub fn run(path: &Path) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(path))
}

/// Reads the config and its zones and compiles the answer table.
fn load(path: &Path) -> Result<(Config, AnswerTable), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let zones = zone::load_all(&config).map_err(|e| e.to_string())?;
    Ok((config, AnswerTable::build(zones)))
}

fn describe(table: &AnswerTable) -> String {
    table
        .summary()
        .iter()
        .map(|(origin, serial)| format!("{origin} serial {serial}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn serve(path: &Path) -> Result<(), Failure> {
    let (mut config, table) = load(path).map_err(Failure::Config)?;
    info!(config = %path.display(), "starting: serving {}", describe(&table));
    let shared: SharedTable = Arc::new(ArcSwap::from_pointee(table));

    let bound = dns::bind(&config.dns.listen)
        .await
        .context("cannot open the DNS sockets")?;
    for b in &bound {
        let addr = b.local_addr().context("cannot read a bound address")?;
        info!("listening on {addr} (udp, tcp)");
    }
    let server = DnsServer::start(
        Handler::new(shared.clone()),
        bound,
        config.dns.tcp_idle_timeout,
    );

    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(path, &shared, &mut config),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping");
    server.shutdown().await.context("stopping the DNS server")?;
    Ok(())
}

/// Builds the new table in full, then swaps it in; on any error the old
/// table keeps serving.
fn reload(path: &Path, shared: &SharedTable, config: &mut Config) {
    info!(config = %path.display(), "reloading");
    match load(path) {
        Ok((mut new_config, table)) => {
            if new_config.dns != config.dns {
                warn!("dns listen settings changed: they take effect at the next restart");
                new_config.dns = config.dns.clone();
            }
            info!("reload succeeded: serving {}", describe(&table));
            shared.store(Arc::new(table));
            *config = new_config;
        }
        Err(e) => error!("reload failed, still serving the previous zones: {e}"),
    }
}
