//! `geofailover demo`: the shipped example, run from a temporary folder,
//! with its two sites served by the demo itself on 127.0.0.1:18081 and
//! :18082 so a newcomer can fail the primary and watch.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;

use super::{Failure, serve};
use crate::{
    engine::Role,
    web::demo::{DemoSites, site},
};

const CONFIG: &str = include_str!("../../config/example.yaml");
const ZONES: &[(&str, &str)] = &[
    (
        "example.com.zone",
        include_str!("../../zones/example.com.zone"),
    ),
    (
        "2.0.192.in-addr.arpa.zone",
        include_str!("../../zones/2.0.192.in-addr.arpa.zone"),
    ),
];
const SITES: [(Role, &str); 2] = [
    (Role::Primary, "127.0.0.1:18081"),
    (Role::Secondary, "127.0.0.1:18082"),
];

/// Writes the example's config and zones into a fresh folder.
fn lay_out() -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir().join(format!("geofailover-demo-{}", std::process::id()));
    let write = |path: PathBuf, text: &str| -> Result<(), Failure> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    };
    write(dir.join("config/example.yaml"), CONFIG)?;
    for (file, text) in ZONES {
        write(dir.join("zones").join(file), text)?;
    }
    Ok(dir)
}

pub fn run() -> Result<(), Failure> {
    let dir = lay_out()?;
    let config = dir.join("config/example.yaml");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let sites = Arc::new(DemoSites::default());
        for (role, addr) in SITES {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the demo's {role} site (is another demo running?)"))?;
            let app = site(sites.clone(), role);
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "geofailover".into());
        println!(
            "geofailover demo: the example config, run from {dir}\n\
             \n  status page       http://127.0.0.1:8053/\
             \n  ask the DNS       dig @127.0.0.1 -p 5353 www.example.com +short\
             \n  fail the primary  the page's button, or:\
             \n                    curl -X POST -d '{{\"site\":\"primary\",\"healthy\":false}}' http://127.0.0.1:8053/api/v1/demo/site\
             \n  restore it        the same with \"healthy\":true\
             \n  see the status    {exe} status --config {config}\
             \n  fail back         {exe} failback --yes --config {config}\
             \n  stop              ctrl-c\n",
            dir = dir.display(),
            config = config.display(),
        );
        serve::serve(&config, None, Some(sites)).await
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
