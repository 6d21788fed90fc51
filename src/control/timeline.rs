//! What the status page draws: each site's health and the active site over
//! the last hour (or since the start), the journal's decisions and
//! commands as markers, and each check's recent latencies. Kept in memory,
//! bounded: transitions older than the window go (but for the one that
//! says what held at its start), and at most `MAX_CHANGES` per series.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{
    engine::{Role, SiteHealth},
    store::journal::JournalEntry,
};

/// How far back the page looks.
pub const WINDOW_MS: u64 = 60 * 60 * 1000;
/// Changes kept per series, however fast a check flaps.
const MAX_CHANGES: usize = 2048;
/// Probe results kept per check for its sparkline.
pub const SAMPLES: usize = 60;
/// Journal entries drawn as markers, the newest.
const MAX_MARKERS: usize = 200;

/// A series of (time, value) changes.
#[derive(Debug, Clone)]
struct Changes<T> {
    changes: VecDeque<(u64, T)>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Self {
            changes: VecDeque::new(),
        }
    }
}

impl<T: PartialEq + Copy> Changes<T> {
    fn observe(&mut self, at: u64, value: T) {
        if self.changes.back().is_some_and(|(_, v)| *v == value) {
            return;
        }
        self.changes.push_back((at, value));
        // The change before the window's start says what held at it.
        let start = at.saturating_sub(WINDOW_MS);
        while self.changes.len() > MAX_CHANGES
            || (self.changes.len() >= 2 && self.changes[1].0 <= start)
        {
            self.changes.pop_front();
        }
    }

    /// The spans within `from..to`, each with its value; none before the
    /// first change.
    fn spans(&self, from: u64, to: u64) -> Vec<(u64, u64, T)> {
        let mut spans = Vec::new();
        for (i, &(at, value)) in self.changes.iter().enumerate() {
            let end = self.changes.get(i + 1).map_or(to, |(next, _)| *next);
            let (start, end) = (at.max(from), end.min(to));
            if start < end {
                spans.push((start, end, value));
            }
        }
        spans
    }
}

/// The sites' health and the active site as they changed.
#[derive(Debug, Clone)]
pub struct Timeline {
    started: u64,
    health: [Changes<SiteHealth>; 2],
    active: Changes<Role>,
}

impl Timeline {
    pub fn new(started: u64) -> Self {
        Self {
            started,
            health: Default::default(),
            active: Changes::default(),
        }
    }

    /// What the engine sees after each of its steps.
    pub fn observe(&mut self, at: u64, health: [SiteHealth; 2], active: Role) {
        for (series, value) in self.health.iter_mut().zip(health) {
            series.observe(at, value);
        }
        self.active.observe(at, active);
    }

    /// The window ending at `now`, for sites named `names` (primary,
    /// secondary), with the journal's `entries` (any order) as markers.
    pub fn view<'a>(
        &self,
        now: u64,
        names: [&str; 2],
        entries: impl Iterator<Item = &'a JournalEntry>,
    ) -> TimelineView {
        let from = self.started.max(now.saturating_sub(WINDOW_MS)).min(now);
        let mut markers: Vec<Marker> = entries
            .filter(|e| e.at >= from && e.at <= now && is_marked(e))
            .map(|e| Marker {
                at: e.at,
                seq: e.seq,
                kind: e.kind.clone(),
                event: e.event.clone(),
                actor: e.actor.clone(),
                summary: e.summary.clone(),
                time: e.time.clone(),
            })
            .collect();
        markers.sort_by_key(|m| m.seq);
        if markers.len() > MAX_MARKERS {
            markers.drain(..markers.len() - MAX_MARKERS);
        }
        TimelineView {
            from,
            to: now,
            sites: self
                .health
                .iter()
                .zip(names)
                .map(|(series, name)| SiteBands {
                    name: name.to_string(),
                    bands: series
                        .spans(from, now)
                        .into_iter()
                        .map(|(from, to, health)| HealthBand { from, to, health })
                        .collect(),
                })
                .collect(),
            active: self
                .active
                .spans(from, now)
                .into_iter()
                .map(|(from, to, role)| ActiveBand {
                    from,
                    to,
                    site: names[usize::from(role == Role::Secondary)].to_string(),
                    role,
                })
                .collect(),
            markers,
        }
    }
}

/// Operators' commands, drills and the decisions that did something (the
/// health changes the bands show already).
fn is_marked(entry: &JournalEntry) -> bool {
    match entry.kind.as_str() {
        "command" => true,
        "decision" => !matches!(entry.event.as_str(), "steady" | "health_changed"),
        _ => entry.event.starts_with("drill"),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineView {
    /// Milliseconds since 1970: the window drawn.
    pub from: u64,
    pub to: u64,
    /// Primary first.
    pub sites: Vec<SiteBands>,
    pub active: Vec<ActiveBand>,
    pub markers: Vec<Marker>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteBands {
    pub name: String,
    pub bands: Vec<HealthBand>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthBand {
    pub from: u64,
    pub to: u64,
    pub health: SiteHealth,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveBand {
    pub from: u64,
    pub to: u64,
    pub site: String,
    pub role: Role,
}

/// A journal entry on the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub at: u64,
    pub seq: u64,
    pub kind: String,
    pub event: String,
    pub actor: String,
    pub summary: String,
    pub time: String,
}

/// One probe's outcome, for a check's sparkline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: u64,
    pub ms: f64,
    pub ok: bool,
}

/// A check's latest probe results, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Samples(VecDeque<Sample>);

impl Samples {
    pub fn push(&mut self, sample: Sample) {
        if self.0.len() == SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back(sample);
    }

    pub fn last(&self) -> Option<&Sample> {
        self.0.back()
    }

    pub fn to_vec(&self) -> Vec<Sample> {
        self.0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn spans_follow_the_changes_and_the_window_drops_what_is_older() {
        let mut timeline = Timeline::new(0);
        let healthy = [SiteHealth::Healthy, SiteHealth::Healthy];
        timeline.observe(MIN, healthy, Role::Primary);
        timeline.observe(
            2 * MIN,
            [SiteHealth::Down, SiteHealth::Healthy],
            Role::Primary,
        );
        timeline.observe(
            2 * MIN + 5_000,
            [SiteHealth::Down, SiteHealth::Healthy],
            Role::Secondary,
        );
        timeline.observe(10 * MIN, healthy, Role::Secondary);
        let view = timeline.view(20 * MIN, ["a", "b"], [].iter());
        assert_eq!(view.from, 0);
        let primary: Vec<_> = view.sites[0]
            .bands
            .iter()
            .map(|b| (b.from, b.to, b.health))
            .collect();
        assert_eq!(
            primary,
            [
                (MIN, 2 * MIN, SiteHealth::Healthy),
                (2 * MIN, 10 * MIN, SiteHealth::Down),
                (10 * MIN, 20 * MIN, SiteHealth::Healthy)
            ]
        );
        let active: Vec<_> = view
            .active
            .iter()
            .map(|b| (b.from, b.to, b.site.as_str()))
            .collect();
        assert_eq!(
            active,
            [
                (MIN, 2 * MIN + 5_000, "a"),
                (2 * MIN + 5_000, 20 * MIN, "b")
            ]
        );

        // Two hours on: only the window, starting with what held at its start.
        timeline.observe(
            130 * MIN,
            [SiteHealth::Degraded, SiteHealth::Healthy],
            Role::Secondary,
        );
        let view = timeline.view(130 * MIN, ["a", "b"], [].iter());
        assert_eq!(view.from, 70 * MIN);
        assert_eq!(
            view.sites[0].bands.first().map(|b| (b.from, b.health)),
            Some((70 * MIN, SiteHealth::Healthy))
        );
        assert_eq!(timeline.health[0].changes.len(), 2);
    }

    #[test]
    fn samples_keep_the_latest() {
        let mut samples = Samples::default();
        for i in 0..(SAMPLES as u64 + 5) {
            samples.push(Sample {
                at: i,
                ms: i as f64,
                ok: true,
            });
        }
        let kept = samples.to_vec();
        assert_eq!(kept.len(), SAMPLES);
        assert_eq!(kept[0].at, 5);
        assert_eq!(samples.last().map(|s| s.at), Some(SAMPLES as u64 + 4));
    }
}
