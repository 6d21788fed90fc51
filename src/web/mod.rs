//! The operator surface over HTTP: the status page, the JSON API,
//! Prometheus metrics, and the commands (failover, fail-back, pause,
//! resume), which need the API token. Every request is answered from the
//! controller through its channel, so the page and the API see exactly
//! what the engine sees.

pub mod auth;
pub mod demo;
mod limits;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, info};

use crate::{
    config::Secret,
    control::{ControlEvent, Status},
    engine::{Command, Decision, Event, Precheck},
};

const PAGE: &str = include_str!("page.html");
/// How long a request waits for the controller.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest operator name or reason kept.
const MAX_TEXT: usize = 200;

#[derive(Clone)]
pub struct WebState {
    pub control: mpsc::Sender<ControlEvent>,
    /// Where status and journal requests go (served after probe results).
    pub reads: mpsc::Sender<ControlEvent>,
    pub token: Arc<Secret>,
    /// The reading endpoints need the token too.
    pub protect_reads: bool,
    /// The stand-in sites, in `geofailover demo` only.
    pub demo: Option<Arc<demo::DemoSites>>,
    /// A drill's hold when the request names none.
    pub drill_hold: Duration,
    /// Where a reload is asked for (as SIGHUP does); none where the
    /// config cannot be read again.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
}

/// A reload asked for over HTTP: the changes, or why nothing changed.
pub type ReloadRequest = oneshot::Sender<Result<Vec<String>, String>>;

/// How long a reload may take (reading and compiling a large zone).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// With several nodes, how long a reload's reply waits for this node's
/// new content to be in etcd as the nodes see it, so the reply's nodes
/// show it.
const RELOAD_SETTLE: Duration = Duration::from_secs(5);

/// What `POST /api/v1/reload` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReloadReply {
    pub reloaded: bool,
    pub summary: String,
    pub changes: Vec<String>,
    /// Each zone as this node now serves it.
    pub zones: Vec<crate::control::serials::ZoneServed>,
    /// With several nodes: each node's zones as it last published them
    /// (serial and content digest).
    pub nodes: Vec<NodeZones>,
    /// With several nodes: this node's content after the reload is what
    /// `nodes` shows of it (its view reached etcd within
    /// `RELOAD_SETTLE`).
    #[serde(default = "yes")]
    pub settled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeZones {
    pub name: String,
    pub live: bool,
    pub zones: std::collections::BTreeMap<String, crate::store::shared::ServedContent>,
    /// The zones whose content at this node is not the agreed content
    /// (the digest the agreed serial stands for).
    #[serde(default)]
    pub differs: Vec<String>,
}

/// Whether this node's view, as the nodes see it in etcd, carries the
/// zones it serves now (always, with one controller).
fn published(status: &Status) -> bool {
    let Some(cluster) = &status.cluster else {
        return true;
    };
    let Some(me) = cluster.nodes.iter().find(|n| n.name == cluster.node) else {
        return false;
    };
    me.zones.len() == status.dns.zones.len()
        && status.dns.zones.iter().all(|z| {
            me.zones
                .get(&z.zone)
                .is_some_and(|c| c.serial == z.serial && c.digest == z.digest)
        })
}

/// An error as the API shows it: a status and a sentence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

pub fn app(state: WebState) -> Router {
    let mut router = Router::new()
        .route("/", get(page))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/metrics", get(metrics))
        .route("/api/v1/failover", post(failover))
        .route("/api/v1/failback", post(failback))
        .route("/api/v1/promote", post(promote))
        .route("/api/v1/rejoin/hold", post(rejoin_hold))
        .route("/api/v1/rejoin/release", post(rejoin_release))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/drill", post(drill))
        .route("/api/v1/drill/abort", post(drill_abort))
        .route("/api/v1/drill/last", get(drill_last))
        .route("/api/v1/reload", post(reload));
    if state.demo.is_some() {
        router = router
            .route("/api/v1/demo/site", post(demo::set_site))
            .route("/api/v1/demo/failback", post(demo::failback));
    }
    router.with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(limits::Limited::new(listener), app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn check_token(state: &WebState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = auth::bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    match given {
        Some(given) if auth::matches(&state.token, given) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong API token")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this needs the API token: Authorization: Bearer <token>",
        )),
    }
}

fn check_read(state: &WebState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.protect_reads {
        check_token(state, headers)
    } else {
        Ok(())
    }
}

/// Asks the controller and waits for its answer.
async fn ask<T>(
    state: &WebState,
    make: impl FnOnce(oneshot::Sender<T>) -> ControlEvent,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        error!("the controller did not answer an HTTP request");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is not answering",
        )
    };
    let event = make(reply);
    let queue = if event.is_read() {
        &state.reads
    } else {
        &state.control
    };
    queue.send(event).await.map_err(|_| unavailable())?;
    tokio::time::timeout(CONTROL_TIMEOUT, answer)
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())
}

pub(crate) async fn get_status(state: &WebState) -> Result<Status, ApiError> {
    ask(state, |reply| ControlEvent::Status { reply })
        .await
        .map(|s| *s)
}

async fn page(State(state): State<WebState>) -> Html<String> {
    let demo = if state.demo.is_some() {
        "true"
    } else {
        "false"
    };
    Html(PAGE.replace("__DEMO__", demo))
}

async fn status(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_read(&state, &headers)?;
    Ok(axum::Json(get_status(&state).await?).into_response())
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn events(
    State(state): State<WebState>,
    headers: HeaderMap,
    query: Result<Query<Since>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&state, &headers)?;
    let Query(Since { since }) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("since: {e}: expected a journal sequence number"),
        )
    })?;
    let entries = ask(&state, |reply| ControlEvent::Events { since, reply }).await?;
    Ok(axum::Json(entries).into_response())
}

async fn metrics(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_read(&state, &headers)?;
    let text = get_status(&state).await?.metrics();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// A command's request body; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// Fail over even when read-only mode cannot be verified.
    #[serde(default)]
    force: bool,
    /// Promote without the old primary verified fenced: the operator's
    /// word that it is down.
    #[serde(default)]
    primary_is_down: bool,
}

fn parse_body(body: &Bytes) -> Result<CommandBody, ApiError> {
    parse_json(
        body,
        r#"{"operator": "...", "reason": "...", "dry_run": false}"#,
    )
}

/// A request body as `T`; an empty body is `T::default()`. A bad one is a
/// 400 that shows `example`.
fn parse_json<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
    example: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not the JSON expected ({e}): {example}"),
        )
    })
}

fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect::<String>()
        .trim()
        .to_string()
}

fn operator(body: &CommandBody) -> String {
    body.operator
        .as_deref()
        .map(clean)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "api".into())
}

/// What a command's response says.
#[derive(Debug, Serialize, Deserialize)]
pub struct CommandReply {
    pub accepted: bool,
    pub event: Event,
    pub summary: String,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prechecks: Vec<Precheck>,
}

async fn run_command(
    state: &WebState,
    command: Command,
    actor: String,
    prechecks: Vec<Precheck>,
) -> Result<Response, ApiError> {
    // The span covers this request's own lines only: entered across an
    // await it would also cover whatever else ran on the thread meanwhile.
    let span = tracing::info_span!("operator_request", %actor, ?command);
    let decision: Decision = ask(state, |reply| ControlEvent::Command {
        command,
        actor: actor.clone(),
        reply,
    })
    .instrument(span.clone())
    .await?
    .map_err(|why| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why))?;
    let accepted = decision.event != Event::Refused;
    span.in_scope(|| info!(accepted, "{}", decision.summary));
    let reply = CommandReply {
        accepted,
        event: decision.event,
        summary: decision.summary,
        epoch: decision.epoch,
        prechecks,
    };
    let status = if accepted {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, axum::Json(reply)).into_response())
}

async fn failover(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    let reason = body
        .reason
        .as_deref()
        .map(clean)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "a reason is required: {\"reason\": \"why the switchover\"}",
            )
        })?;
    run_command(
        &state,
        Command::Failover {
            reason,
            force: body.force,
        },
        operator(&body),
        Vec::new(),
    )
    .await
}

async fn failback(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    let status = get_status(&state).await?;
    if body.dry_run {
        let allowed = status.failback_prechecks.iter().all(|p| p.ok);
        let summary = if allowed {
            "fail-back would go ahead: every pre-check passes".to_string()
        } else {
            let failed: Vec<&str> = status
                .failback_prechecks
                .iter()
                .filter(|p| !p.ok)
                .map(|p| p.name.as_str())
                .collect();
            format!("fail-back would be refused: {}", failed.join(", "))
        };
        let reply = CommandReply {
            accepted: allowed,
            event: if allowed {
                Event::Steady
            } else {
                Event::Refused
            },
            summary,
            epoch: status.epoch,
            prechecks: status.failback_prechecks,
        };
        return Ok(axum::Json(reply).into_response());
    }
    run_command(
        &state,
        Command::Failback,
        operator(&body),
        status.failback_prechecks,
    )
    .await
}

async fn promote(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    let command = Command::Promote {
        primary_is_down: body.primary_is_down,
    };
    run_command(&state, command, operator(&body), Vec::new()).await
}

async fn rejoin_hold(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    rejoin(state, headers, body, true).await
}

async fn rejoin_release(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    rejoin(state, headers, body, false).await
}

async fn rejoin(
    state: WebState,
    headers: HeaderMap,
    body: Bytes,
    hold: bool,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    let command = Command::HoldRejoin { hold };
    run_command(&state, command, operator(&body), Vec::new()).await
}

async fn pause(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    run_command(&state, Command::Pause, operator(&body), Vec::new()).await
}

async fn resume(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    run_command(&state, Command::Resume, operator(&body), Vec::new()).await
}

/// Reads the config and the zones again, as SIGHUP does; the reply says
/// what changed and, with several nodes, which node serves which content.
async fn reload(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let Some(requests) = &state.reload else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server cannot reload its configuration",
        ));
    };
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server did not finish the reload",
        )
    };
    requests.send(reply).await.map_err(|_| unavailable())?;
    let outcome = tokio::time::timeout(RELOAD_TIMEOUT, answer)
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())?;
    // With several nodes, the answer shows every node's content once
    // this node's new content is in etcd (each node publishes its own;
    // reloading one node reloads no other).
    let settle_by = tokio::time::Instant::now() + RELOAD_SETTLE;
    let mut status = get_status(&state).await?;
    while !published(&status) && tokio::time::Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = get_status(&state).await?;
    }
    let settled = published(&status);
    let agreed: std::collections::BTreeMap<String, Option<String>> = status
        .dns
        .zones
        .iter()
        .map(|z| (z.zone.clone(), z.agreed_digest.clone()))
        .collect();
    let nodes = status
        .cluster
        .map(|c| {
            c.nodes
                .into_iter()
                .map(|n| NodeZones {
                    differs: n
                        .zones
                        .iter()
                        .filter(|(zone, served)| {
                            agreed
                                .get(*zone)
                                .is_some_and(|a| a.as_deref() != Some(served.digest.as_str()))
                        })
                        .map(|(zone, _)| zone.clone())
                        .collect(),
                    name: n.name,
                    live: n.live,
                    zones: n.zones,
                })
                .collect()
        })
        .unwrap_or_default();
    let (reloaded, summary, changes) = match outcome {
        Ok(changes) => (true, "reloaded".to_string(), changes),
        Err(why) => (
            false,
            format!("reload refused, still serving the previous configuration: {why}"),
            Vec::new(),
        ),
    };
    let code = if reloaded {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    let reply = ReloadReply {
        reloaded,
        summary,
        changes,
        zones: status.dns.zones,
        nodes,
        settled,
    };
    Ok((code, axum::Json(reply)).into_response())
}

/// A drill request's body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillBody {
    #[serde(default)]
    operator: Option<String>,
    /// How long to stay on the secondary, such as "30s".
    #[serde(default)]
    hold: Option<String>,
    /// Lower the records' TTL to this first, such as "5s".
    #[serde(default)]
    lower_ttl: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// In `failover.mode: promote`: rehearse read-only mode only.
    #[serde(default)]
    read_only: bool,
}

async fn drill(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body: DrillBody = parse_json(
        &body,
        r#"{"hold": "30s", "lower_ttl": "5s", "dry_run": false, "read_only": false}"#,
    )?;
    let duration = |field: &str, text: &Option<String>| -> Result<Option<Duration>, ApiError> {
        text.as_deref()
            .map(crate::config::duration::parse)
            .transpose()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {e}")))
    };
    let hold = duration("hold", &body.hold)?;
    let lower_ttl = duration("lower_ttl", &body.lower_ttl)?;
    if let Some(ttl) = lower_ttl
        && ttl.as_secs() < u64::from(crate::config::failover::MIN_TTL)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("lower_ttl: at least {} s", crate::config::failover::MIN_TTL),
        ));
    }
    let request = crate::control::drill::DrillRequest {
        hold: hold.unwrap_or(state.drill_hold),
        lower_ttl: lower_ttl.map(|t| t.as_secs() as u32),
        operator: body
            .operator
            .as_deref()
            .map(clean)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "api".into()),
        read_only: body.read_only,
    };
    let dry_run = body.dry_run;
    let reply = ask(&state, |reply| ControlEvent::DrillStart {
        request,
        dry_run,
        reply,
    })
    .await?;
    let code = if reply.refused.is_some() && !dry_run {
        StatusCode::CONFLICT
    } else if reply.id.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(reply)).into_response())
}

async fn drill_abort(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_token(&state, &headers)?;
    let body = parse_body(&body)?;
    let reason = format!("aborted by {}", operator(&body));
    let running = ask(&state, |reply| ControlEvent::DrillAbort { reason, reply }).await?;
    if running {
        Ok(axum::Json(serde_json::json!({"aborted": true})).into_response())
    } else {
        Err(ApiError::new(StatusCode::CONFLICT, "no drill is running"))
    }
}

async fn drill_last(
    State(state): State<WebState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read(&state, &headers)?;
    match ask(&state, |reply| ControlEvent::LastDrill { reply }).await? {
        Some(report) => Ok(axum::Json(report).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no drill has run yet")),
    }
}
