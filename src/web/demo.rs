//! `geofailover demo`: two stand-in web sites the controller checks, whose
//! health the page's buttons (or `curl`) switch, and a fail-back button that
//! needs no token. Only `demo` mounts these; it listens on loopback only.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use super::{ApiError, WebState};
use crate::engine::{Command, Role};

/// Whether each stand-in site answers its health check with 200.
#[derive(Debug)]
pub struct DemoSites {
    pub primary: AtomicBool,
    pub secondary: AtomicBool,
}

impl Default for DemoSites {
    fn default() -> Self {
        Self {
            primary: AtomicBool::new(true),
            secondary: AtomicBool::new(true),
        }
    }
}

impl DemoSites {
    fn flag(&self, role: Role) -> &AtomicBool {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }
}

/// A stand-in site: `/health` answers 200 while healthy, 503 otherwise.
pub fn site(sites: Arc<DemoSites>, role: Role) -> Router {
    Router::new().route(
        "/health",
        get(move || {
            let healthy = sites.flag(role).load(Ordering::Relaxed);
            async move {
                if healthy {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "down\n")
                }
            }
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSite {
    site: Role,
    healthy: bool,
}

pub(super) async fn set_site(
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(sites) = &state.demo else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not in demo mode"));
    };
    let set: SetSite = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{e}: expected {{\"site\": \"primary\", \"healthy\": false}}"),
        )
    })?;
    sites.flag(set.site).store(set.healthy, Ordering::Relaxed);
    let word = if set.healthy { "healthy" } else { "failing" };
    tracing::info!("demo: the {} stand-in site is now {word}", set.site);
    Ok(axum::Json(serde_json::json!({ "site": set.site, "healthy": set.healthy })).into_response())
}

pub(super) async fn failback(State(state): State<WebState>) -> Result<Response, ApiError> {
    let status = super::get_status(&state).await?;
    super::run_command(
        &state,
        Command::Failback,
        "demo page".into(),
        status.failback_prechecks,
    )
    .await
}
