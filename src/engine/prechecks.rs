//! What fail-back needs, each condition with how it stands: traffic on
//! the secondary, the primary healthy, and (with databases) replication
//! running, caught up and free of errant transactions, by a fresh
//! observation.

use super::{Engine, Precheck, ReplicationRules, ReplicationView, Role, SiteHealth};

impl Engine {
    /// The conditions a fail-back needs at `now`, each with how it stands.
    pub fn failback_prechecks(&self, now: u64) -> Vec<Precheck> {
        let on_secondary = self.state.active == Role::Secondary;
        let primary = self.site_health(Role::Primary);
        let mut checks = vec![
            Precheck {
                name: "traffic on the secondary".into(),
                ok: on_secondary,
                detail: format!(
                    "answers point at {}",
                    self.spec.sites[self.state.active.index()].name
                ),
            },
            Precheck {
                name: "primary healthy".into(),
                ok: primary == SiteHealth::Healthy,
                detail: self.describe_site(Role::Primary),
            },
        ];
        let promotion = self.promotion();
        if let Some(promotion) = promotion {
            checks.push(Precheck {
                name: "old primary rejoined".into(),
                ok: promotion.stage == super::Stage::Rejoined && promotion.rejoin_held.is_none(),
                detail: format!(
                    "{} is the primary ({}); fail-back after a promotion is a planned switchover, once {} replicates from it{}",
                    self.spec.sites[1].name,
                    promotion.stage.word(),
                    self.spec.sites[0].name,
                    match (&promotion.rejoin_held, promotion.stage) {
                        (Some(held), _) => format!(
                            "; its rejoin is held {held} (`geofailover rejoin --release` when it is rebuilt)"
                        ),
                        (None, super::Stage::Diverged) => format!(
                            "; it diverged ({}): rebuild it from {} (`geofailover rejoin --hold` keeps geofailover off it meanwhile)",
                            promotion.errant.join(", "),
                            self.spec.sites[1].name
                        ),
                        _ => String::new(),
                    }
                ),
            });
        }
        if let Some(rules) = self.spec.replication {
            let mut replication = replication_prechecks(rules, self.replication.as_ref(), now);
            // After a promotion the roles are the other way round.
            if promotion.is_some() {
                let swapped = self.replication.as_ref().is_some_and(|(_, v)| v.swapped);
                for check in &mut replication {
                    check.name = match check.name.as_str() {
                        "primary database reachable" => "new primary's database reachable",
                        "replication running" => "old primary replicating from the new",
                        "replication caught up" => "old primary caught up",
                        _ => "no errant transaction at the old primary",
                    }
                    .into();
                    if !swapped {
                        check.ok = false;
                        check.detail = "replication not yet watched from the new primary".into();
                    }
                }
            }
            checks.extend(replication);
        }
        checks
    }
}

/// The replication conditions of fail-back.
fn replication_prechecks(
    rules: ReplicationRules,
    seen: Option<&(u64, ReplicationView)>,
    now: u64,
) -> Vec<Precheck> {
    let fresh = seen.filter(|(at, _)| now.saturating_sub(*at) <= rules.stale_ms);
    let Some((_, view)) = fresh else {
        let detail = format!(
            "no replication observation in the last {} s",
            rules.stale_ms / 1000
        );
        return [
            "primary database reachable",
            "replication running",
            "replication caught up",
            "no errant transaction at the secondary",
        ]
        .into_iter()
        .map(|name| Precheck {
            name: name.into(),
            ok: false,
            detail: detail.clone(),
        })
        .collect();
    };
    let running = view.io_running == Some(true) && view.sql_running == Some(true);
    let mut errors: Vec<String> = Vec::new();
    if !view.last_io_error.is_empty() {
        errors.push(format!("IO: {}", view.last_io_error));
    }
    if !view.last_sql_error.is_empty() {
        errors.push(format!("SQL: {}", view.last_sql_error));
    }
    let caught_up =
        running && view.lag_s.is_some_and(|lag| lag <= rules.max_lag_s) && view.missing == Some(0);
    vec![
        Precheck {
            name: "primary database reachable".into(),
            ok: view.primary_error.is_none(),
            detail: view
                .primary_error
                .clone()
                .unwrap_or_else(|| "connected".into()),
        },
        Precheck {
            name: "replication running".into(),
            ok: running && view.secondary_error.is_none(),
            detail: match (&view.secondary_error, view.io_running, view.sql_running) {
                (Some(e), _, _) => e.clone(),
                (None, None, _) | (None, _, None) => "the secondary is not a replica".into(),
                (None, Some(io), Some(sql)) => {
                    let word = |b: bool| if b { "running" } else { "stopped" };
                    let mut text = format!("IO thread {}, SQL thread {}", word(io), word(sql));
                    if !errors.is_empty() {
                        text.push_str(&format!(": {}", errors.join("; ")));
                    }
                    text
                }
            },
        },
        Precheck {
            name: "replication caught up".into(),
            ok: caught_up,
            detail: format!(
                "lag {} (at most {} s), {} transaction(s) missing at the secondary",
                view.lag_s
                    .map_or("unknown".to_string(), |l| format!("{l} s")),
                rules.max_lag_s,
                view.missing
                    .map_or("unknown".to_string(), |m| m.to_string())
            ),
        },
        Precheck {
            name: "no errant transaction at the secondary".into(),
            ok: view.errant.is_empty() && view.secondary_error.is_none(),
            detail: if view.errant.is_empty() {
                "none".into()
            } else {
                format!(
                    "errant GTID {} at the secondary: it did not come from the primary",
                    view.errant.join(", ")
                )
            },
        },
    ]
}
