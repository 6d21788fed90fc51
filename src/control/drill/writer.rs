//! The drill's own writer in `failover.mode: promote`: an application-like
//! account inserting a row every 10 ms into `geofailover_drill.writes`
//! at the primary, and, once the drill has verified the secondary
//! read-only, at whichever database takes writes (as an application that
//! follows the writable database would). It turns to the other database
//! only when the one it writes to refuses as read-only, never on another
//! error (a timeout, a killed connection), so it never writes into a
//! replica. Each write it sees acknowledged is kept with its time and
//! site; at the end the writable database is read back, so the report
//! says how long writes stopped at the promotion and at the switchover
//! back, and whether any acknowledged write was lost.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use super::super::now_ms;
use crate::db::{Db, DbTarget};

/// The drill writer's table (and its schema, created when missing).
pub const SCHEMA: &str = "geofailover_drill";
pub const TABLE: &str = "geofailover_drill.writes";

/// What the writer saw, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// The writer's account.
    pub account: String,
    /// Writes acknowledged, per site (primary, secondary).
    pub acknowledged: u64,
    pub at_primary: u64,
    pub at_secondary: u64,
    /// Writes whose outcome is unknown (an error other than a read-only
    /// refusal: they may or may not have committed); not counted as lost.
    #[serde(default)]
    pub unknown: u64,
    /// Acknowledged writes missing from the writable database at the end.
    pub lost: u64,
    /// The first of them (the writer's sequence numbers).
    pub lost_examples: Vec<u64>,
    /// From the last write acknowledged at the primary to the first at the
    /// secondary: the promotion as the application sees it.
    pub promotion_gap_ms: Option<u64>,
    /// From the last write acknowledged at the secondary to the first back
    /// at the primary: the switchover back.
    pub switchover_gap_ms: Option<u64>,
    /// The longest time without an acknowledged write.
    pub longest_gap_ms: Option<u64>,
    /// Acknowledged writes the writable database has and the other (its
    /// replica) still lacked after the drill's timeout.
    pub missing_at_replica: Option<u64>,
    /// What could not be read back, when something could not.
    pub note: Option<String>,
}

impl WriteReport {
    pub fn markdown(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        let mut out = format!(
            "\n## Writes\n\nThe drill's writer ({}) wrote every 10 ms to whichever database took writes.\n\n| what | value |\n|---|---|\n| acknowledged | {} ({} at the primary, {} at the secondary) |\n| acknowledged but lost | {} |\n| failed with an unknown outcome | {} |\n| writes stopped at the promotion | {} |\n| writes stopped at the switchover back | {} |\n| longest time without a write | {} |\n| missing at the replica at the end | {} |\n",
            self.account,
            self.acknowledged,
            self.at_primary,
            self.at_secondary,
            self.lost,
            self.unknown,
            ms(self.promotion_gap_ms),
            ms(self.switchover_gap_ms),
            ms(self.longest_gap_ms),
            self.missing_at_replica
                .map_or("unknown".into(), |m| m.to_string()),
        );
        if !self.lost_examples.is_empty() {
            out.push_str(&format!(
                "\nLost (sequence numbers): {:?}\n",
                self.lost_examples
            ));
        }
        if let Some(note) = &self.note {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
    /// When the acknowledgement came, in milliseconds since 1970.
    pub at: u64,
    /// The same on a monotonic clock: milliseconds since the writer began.
    pub mono: u64,
    /// 0: the primary site's database, 1: the secondary's.
    pub site: usize,
}

/// The gaps the report shows, from the acknowledgements in order.
fn gaps(acks: &[Ack]) -> (Option<u64>, Option<u64>, Option<u64>) {
    let mut promotion = None;
    let mut switchover = None;
    let mut longest = None;
    for pair in acks.windows(2) {
        let gap = pair[1].mono.saturating_sub(pair[0].mono);
        longest = longest.max(Some(gap));
        match (pair[0].site, pair[1].site) {
            (0, 1) => promotion = promotion.max(Some(gap)),
            (1, 0) => switchover = switchover.max(Some(gap)),
            _ => {}
        }
    }
    (promotion, switchover, longest)
}

/// A server's refusal because it is read-only (MariaDB and MySQL: 1290;
/// MySQL's super_read_only: 1836).
fn refused_as_read_only(error: &str) -> bool {
    error.contains("1290") || error.contains("1836") || error.contains("read-only")
}

/// The drill's id as it goes into SQL: letters, digits, `-`, `:` and `.`
/// only (an id is a UTC time such as 2026-12-03T18:00:00.123Z).
fn tag(drill: &str) -> String {
    drill
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.'))
        .take(64)
        .collect()
}

/// What the writing task shares with the drill.
#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Writes at the other database are allowed (the secondary verified
    /// read-only first).
    follow: AtomicBool,
    unknown: AtomicU64,
}

pub struct Writer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
    drill: String,
    /// The primary site's database, then the secondary's, as the writer.
    targets: [DbTarget; 2],
    timeout: Duration,
}

impl Writer {
    /// Prepares the table at the primary, checks that the account cannot
    /// write through read_only, and starts writing; returns once a first
    /// write is acknowledged.
    pub async fn start(
        targets: [DbTarget; 2],
        drill: &str,
        timeout: Duration,
    ) -> Result<(Self, String), String> {
        let account = format!("drill.writer {}", targets[0].user);
        let drill = tag(drill);
        let mut db = Db::connect(&targets[0], timeout).await?;
        let prepared = async {
            let bypass = crate::db::bypass_privileges(&db.grants(None).await?);
            if !bypass.is_empty() {
                return Err(format!(
                    "{account} holds {}: it would write through read_only, so the drill could not tell a fenced database from a writable one; give it an account like the application's (CREATE, INSERT, SELECT, DELETE ON {SCHEMA}.*)",
                    bypass.join(", ")
                ));
            }
            db.execute(&format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"))
                .await?;
            db.execute(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (drill VARCHAR(64) NOT NULL, seq BIGINT UNSIGNED NOT NULL, PRIMARY KEY (drill, seq)) ENGINE=InnoDB"
            ))
            .await?;
            // An earlier drill cut short left its rows.
            db.execute(&format!("DELETE FROM {TABLE} WHERE drill <> '{drill}'"))
                .await
        }
        .await;
        db.close().await;
        prepared?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(write(
            targets.clone(),
            drill.clone(),
            shared.clone(),
            stopped,
            timeout.min(Duration::from_secs(2)),
        ));
        let writer = Self {
            stop,
            task,
            shared,
            drill,
            targets,
            timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !writer.acks().is_empty() {
                return Ok((
                    writer,
                    format!(
                        "{account}: {TABLE} ready, the first write acknowledged at the primary"
                    ),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                writer.halt().await;
                return Err(format!(
                    "{account}: no write acknowledged within {}",
                    crate::config::duration::show(timeout)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn acks(&self) -> Vec<Ack> {
        self.shared
            .acks
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// From now on the writer may turn to the other database when the
    /// one it writes to refuses as read-only: the drill verified the
    /// secondary read-only, so it takes writes only once promoted.
    pub fn follow(&self) {
        self.shared.follow.store(true, Ordering::Relaxed);
    }

    /// Waits until a write is acknowledged at `site` after `since`; the
    /// time it came.
    pub async fn wait_for(&self, site: usize, since: u64, within: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found = self
                .acks()
                .iter()
                .find(|a| a.site == site && a.at >= since)
                .map(|a| a.at);
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn halt(&self) {
        let _ = self.stop.send(true);
        while !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops writing and reads the writable database (where the last write
    /// went) back: what was lost, and whether the other database has
    /// everything too. The drill's rows are deleted afterwards.
    pub async fn finish(self) -> WriteReport {
        self.halt().await;
        let acks = self.acks();
        let (promotion_gap_ms, switchover_gap_ms, longest_gap_ms) = gaps(&acks);
        let mut report = WriteReport {
            account: self.targets[0].user.clone(),
            unknown: self.shared.unknown.load(Ordering::Relaxed),
            acknowledged: acks.len() as u64,
            at_primary: acks.iter().filter(|a| a.site == 0).count() as u64,
            at_secondary: acks.iter().filter(|a| a.site == 1).count() as u64,
            promotion_gap_ms,
            switchover_gap_ms,
            longest_gap_ms,
            ..WriteReport::default()
        };
        let acked: BTreeSet<u64> = acks.iter().map(|a| a.seq).collect();
        let writable = acks.last().map_or(0, |a| a.site);
        let select = format!("SELECT seq FROM {TABLE} WHERE drill = '{}'", self.drill);
        let read = |site: usize| {
            let (target, select, timeout) =
                (self.targets[site].clone(), select.clone(), self.timeout);
            async move {
                let mut db = Db::connect(&target, timeout).await?;
                let found = db.column(&select).await;
                db.close().await;
                Ok::<BTreeSet<u64>, String>(found?.iter().filter_map(|s| s.parse().ok()).collect())
            }
        };
        let kept = match read(writable).await {
            Ok(found) => {
                let lost: Vec<u64> = acked.difference(&found).copied().collect();
                report.lost = lost.len() as u64;
                report.lost_examples = lost.into_iter().take(20).collect();
                Some(
                    acked
                        .intersection(&found)
                        .copied()
                        .collect::<BTreeSet<u64>>(),
                )
            }
            Err(e) => {
                report.note = Some(format!("the writable database could not be read back: {e}"));
                None
            }
        };
        // The replica applies the last writes within moments: it must
        // have every acknowledged write the writable database has.
        let deadline = tokio::time::Instant::now() + self.timeout;
        if let Some(kept) = kept {
            loop {
                match read(1 - writable).await {
                    Ok(found) => {
                        let missing = kept.difference(&found).count() as u64;
                        report.missing_at_replica = Some(missing);
                        if missing == 0 {
                            break;
                        }
                    }
                    Err(e) => report.note = Some(format!("the replica could not be read: {e}")),
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let delete = format!("DELETE FROM {TABLE} WHERE drill = '{}'", self.drill);
        let deleted = async {
            let mut db = Db::connect(&self.targets[writable], self.timeout).await?;
            let done = db.execute(&delete).await;
            db.close().await;
            done
        }
        .await;
        if let Err(e) = deleted {
            let note = format!("the drill's rows were kept: {e}");
            report.note = Some(match report.note.take() {
                Some(before) => format!("{before}; {note}"),
                None => note,
            });
        }
        report
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes until stopped: each write to the database that took the last
/// one, else (refused there as read-only, and following) to the other. A
/// fresh sequence number for every attempt, so a write whose
/// acknowledgement was lost never meets its twin.
async fn write(
    targets: [DbTarget; 2],
    drill: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    timeout: Duration,
) {
    let began = Instant::now();
    let mut conns: [Option<Db>; 2] = [None, None];
    let mut current = 0;
    let mut seq = 0u64;
    while !*stop.borrow() {
        let mut site = current;
        loop {
            seq += 1;
            if conns[site].is_none() {
                conns[site] = Db::connect(&targets[site], timeout).await.ok();
            }
            let Some(db) = conns[site].as_mut() else {
                break;
            };
            let insert = format!("INSERT INTO {TABLE} (drill, seq) VALUES ('{drill}', {seq})");
            match db.execute(&insert).await {
                Ok(()) => {
                    if let Ok(mut acks) = shared.acks.lock() {
                        acks.push(Ack {
                            seq,
                            at: now_ms(),
                            mono: began.elapsed().as_millis() as u64,
                            site,
                        });
                    }
                    current = site;
                    break;
                }
                // Refused as read-only: the other database, once the
                // drill allows it, once per round.
                Err(e) if refused_as_read_only(&e) => {
                    if site != current || !shared.follow.load(Ordering::Relaxed) {
                        break;
                    }
                    site = 1 - current;
                }
                // Unknown: it may have committed. Tried again at the same
                // database, never at the other.
                Err(_) => {
                    shared.unknown.fetch_add(1, Ordering::Relaxed);
                    if let Some(db) = conns[site].take() {
                        db.close().await;
                    }
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = stop.changed() => {}
        }
    }
    for db in conns.into_iter().flatten() {
        db.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, mono: u64, site: usize) -> Ack {
        Ack {
            seq,
            at: 1_700_000_000_000 + mono,
            mono,
            site,
        }
    }

    #[test]
    fn the_gaps_are_measured_where_the_writes_change_site() {
        let acks = [
            ack(1, 1000, 0),
            ack(2, 1010, 0),
            ack(5, 1400, 1),
            ack(6, 1410, 1),
            ack(7, 1900, 1),
            ack(9, 1950, 0),
        ];
        assert_eq!(gaps(&acks), (Some(390), Some(50), Some(490)));
        assert_eq!(gaps(&acks[..2]), (None, None, Some(10)));
        assert_eq!(gaps(&[]), (None, None, None));
    }

    #[test]
    fn a_drill_id_goes_into_sql_with_safe_characters_only() {
        assert_eq!(tag("2026-12-03T18:00:00.123Z"), "2026-12-03T18:00:00.123Z");
        assert_eq!(tag("x'; DROP TABLE t; --"), "xDROPTABLEt--");
    }

    #[test]
    fn a_read_only_refusal_is_told_from_a_broken_connection() {
        assert!(refused_as_read_only(
            "INSERT ... at 127.0.0.1:3306: ERROR 1290 (HY000): The MariaDB server is running with the --read-only option so it cannot execute this statement"
        ));
        assert!(refused_as_read_only(
            "ERROR 1836 (HY000): Running in read-only mode"
        ));
        assert!(!refused_as_read_only(
            "INSERT ... at 127.0.0.1:3306: Input/output error: broken pipe"
        ));
    }
}
