//! Webhook notifications: a JSON event POSTed to each configured URL, with
//! a timeout and a few retries, in the background so the controller never
//! waits on a slow receiver. The `text` field makes it Slack-compatible.

use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::Webhook;

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `failed_over`, `failed_back`, `action_failed`, `ready_for_failback`.
    pub event: String,
    pub epoch: u64,
    /// The active site's name after the event.
    pub active: Option<String>,
    pub summary: String,
    pub time: String,
    /// For Slack and compatible receivers.
    pub text: String,
}

impl Notification {
    /// A notification at `now` (ms), its Slack `text` made from `summary`.
    pub fn new(event: &str, epoch: u64, active: Option<String>, summary: String, now: u64) -> Self {
        Self {
            event: event.to_string(),
            epoch,
            active,
            text: format!("geofailover: {summary}"),
            summary,
            time: crate::engine::utc(now),
        }
    }
}

#[derive(Clone)]
pub struct Notifier {
    hooks: Vec<Webhook>,
    /// `None` when no client could be built: notifications are off.
    client: Option<reqwest::Client>,
    /// With several nodes, only the leader notifies: the others are muted.
    muted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Notifier {
    pub fn new(hooks: Vec<Webhook>) -> Self {
        Self {
            hooks,
            client: crate::probe::http_client()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| {
                    warn!("cannot build the notification client ({e}): notifications are off")
                })
                .ok(),
            muted: std::sync::Arc::default(),
        }
    }

    /// Mutes (a follower) or unmutes (the leader) the notifications.
    pub fn mute(&self, muted: bool) {
        self.muted
            .store(muted, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn send(&self, notification: Notification) {
        let Some(client) = &self.client else {
            return;
        };
        if self.muted.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for hook in &self.hooks {
            let client = client.clone();
            let hook = hook.clone();
            let body = notification.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(500);
                for attempt in 0..=hook.retries {
                    let sent = client
                        .post(&hook.url)
                        .timeout(hook.timeout)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(serde_json::to_vec(&body).unwrap_or_default())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            info!(url = %crate::probe::url_origin(&hook.url), event = %body.event, "notification delivered");
                            return;
                        }
                        Ok(r) => {
                            warn!(url = %crate::probe::url_origin(&hook.url), attempt, "notification answered HTTP {}", r.status())
                        }
                        Err(e) => warn!(
                            url = %crate::probe::url_origin(&hook.url),
                            attempt,
                            "notification failed: {}",
                            crate::probe::describe_reqwest(e)
                        ),
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                warn!(url = %crate::probe::url_origin(&hook.url), event = %body.event, "notification given up after {} retries", hook.retries);
            });
        }
    }
}
