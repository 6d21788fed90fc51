//! Promotion's SQL, each flavour's: the primary's semi-synchronous
//! replication read, the old primary fenced (read-only verified, the
//! application's connections killed), the secondary made writable once
//! its relay log is applied, and the old primary rejoined as a replica of
//! the new one when it holds nothing the new one lacks.

use std::{net::SocketAddr, time::Duration};

use super::{Db, Flavor, gtid};
use crate::{
    config::Secret,
    engine::{PromotionFailure, RejoinOutcome, SemiSync},
};

/// Reads `SHOW GLOBAL VARIABLES|STATUS LIKE 'rpl_semi_sync_%'`: MariaDB
/// names the primary's side `master`, MySQL 8.0.26+ `source` (and before
/// that `master`, from the plugin). No rows: semi-sync is not there.
pub fn semi_sync_from(variables: &[(String, String)], status: &[(String, String)]) -> SemiSync {
    let find = |rows: &[(String, String)], suffix: &str| {
        ["master", "source"].iter().find_map(|side| {
            let name = format!("rpl_semi_sync_{side}_{suffix}");
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
        })
    };
    let on = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    SemiSync {
        enabled: on(find(variables, "enabled")),
        wait_point: find(variables, "wait_point").unwrap_or_else(|| "none".into()),
        active: on(find(status, "status")),
        clients: find(status, "clients")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        secondary_acknowledging: None,
    }
}

/// A replica's own semi-sync status from `SHOW GLOBAL STATUS LIKE
/// 'Rpl_semi_sync_%'`: MariaDB `Rpl_semi_sync_slave_status`, MySQL
/// 8.0.26+ `Rpl_semi_sync_replica_status`. No row: not a semi-sync replica.
pub fn replica_acknowledging(status: &[(String, String)]) -> bool {
    ["slave", "replica"].iter().any(|side| {
        let name = format!("rpl_semi_sync_{side}_status");
        status.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(&name) && (v.eq_ignore_ascii_case("ON") || v == "1")
        })
    })
}

/// The SQL of each step, by flavour.
struct Sql {
    stop: &'static str,
    stop_io: &'static str,
    start: &'static str,
    reset: &'static str,
    writable: &'static [&'static str],
}

fn sql(flavor: Flavor) -> Sql {
    let new_words = flavor.replica_status_sql() == "SHOW REPLICA STATUS";
    match (flavor, new_words) {
        (Flavor::MariaDb { .. }, _) => Sql {
            stop: "STOP SLAVE",
            stop_io: "STOP SLAVE IO_THREAD",
            start: "START SLAVE",
            reset: "RESET SLAVE ALL",
            writable: &["SET GLOBAL read_only = OFF"],
        },
        (Flavor::MySql { .. }, true) => Sql {
            stop: "STOP REPLICA",
            stop_io: "STOP REPLICA IO_THREAD",
            start: "START REPLICA",
            reset: "RESET REPLICA ALL",
            writable: &[
                "SET GLOBAL super_read_only = OFF",
                "SET GLOBAL read_only = OFF",
            ],
        },
        (Flavor::MySql { .. }, false) => Sql {
            stop: "STOP SLAVE",
            stop_io: "STOP SLAVE IO_THREAD",
            start: "START SLAVE",
            reset: "RESET SLAVE ALL",
            writable: &[
                "SET GLOBAL super_read_only = OFF",
                "SET GLOBAL read_only = OFF",
            ],
        },
    }
}

/// `CHANGE MASTER TO` (MariaDB, GTID from the replica's own position) or
/// `CHANGE REPLICATION SOURCE TO` (MySQL 8.0.23+, auto-positioned) for a
/// replica of `source`; the password in it is never shown. With `tls`
/// (the controller reaches that server over TLS, so it has TLS) the
/// replica connects over TLS; without, MySQL 8 fetches the source's RSA
/// key for `caching_sha2_password` (open to a man in the middle on an
/// untrusted network: use TLS there).
pub fn change_source_sql(
    flavor: Flavor,
    source: SocketAddr,
    user: &str,
    password: &str,
    tls: bool,
) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let (host, port, user, password) = (
        quote(&source.ip().to_string()),
        source.port(),
        quote(user),
        quote(password),
    );
    match flavor {
        Flavor::MariaDb { .. } => format!(
            "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER='{user}', MASTER_PASSWORD='{password}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1{}",
            if tls { ", MASTER_SSL=1" } else { "" }
        ),
        Flavor::MySql {
            major,
            minor,
            patch,
        } if (major, minor, patch) >= (8, 0, 23) => format!(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='{host}', SOURCE_PORT={port}, SOURCE_USER='{user}', SOURCE_PASSWORD='{password}', SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, {}",
            if tls {
                "SOURCE_SSL=1"
            } else {
                "GET_SOURCE_PUBLIC_KEY=1"
            }
        ),
        Flavor::MySql { major, .. } => format!(
            "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER='{user}', MASTER_PASSWORD='{password}', MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1{}",
            match (tls, major >= 8) {
                (true, _) => ", MASTER_SSL=1",
                // caching_sha2_password, the default from 8.0 on.
                (false, true) => ", GET_MASTER_PUBLIC_KEY=1",
                (false, false) => "",
            }
        ),
    }
}

impl Db {
    /// Whether this server, as a replica, acknowledges semi-sync.
    pub async fn semi_sync_replica(&mut self) -> Result<bool, String> {
        let rows = self
            .rows("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'")
            .await?;
        let status: Vec<(String, String)> = rows
            .into_iter()
            .map(|row| {
                let get = |column: &str| row.get(column).cloned().flatten().unwrap_or_default();
                (get("Variable_name"), get("Value"))
            })
            .collect();
        Ok(replica_acknowledging(&status))
    }

    /// The semi-synchronous replication of this server as a primary.
    pub async fn semi_sync(&mut self) -> Result<SemiSync, String> {
        let pairs = |rows: Vec<std::collections::BTreeMap<String, Option<String>>>| {
            rows.into_iter()
                .map(|row| {
                    let get = |column: &str| row.get(column).cloned().flatten().unwrap_or_default();
                    (get("Variable_name"), get("Value"))
                })
                .collect::<Vec<_>>()
        };
        let variables = pairs(
            self.rows("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%'")
                .await?,
        );
        let status = pairs(
            self.rows("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'")
                .await?,
        );
        Ok(semi_sync_from(&variables, &status))
    }

    /// Runs a statement whose text holds a secret: errors show `shown`.
    /// The server's own message may quote the statement: `secret` is
    /// taken out of any error.
    async fn execute_secret(
        &mut self,
        statement: &str,
        shown: &str,
        secret: &str,
    ) -> Result<(), String> {
        use mysql_async::prelude::Queryable;
        let (timeout, address) = (self.timeout, self.address);
        Self::bounded(timeout, address, shown, self.conn.query_drop(statement))
            .await
            .map_err(|e| {
                if secret.is_empty() {
                    e
                } else {
                    // As the statement quoted it, then as it is.
                    let quoted = secret.replace('\\', "\\\\").replace('\'', "\\'");
                    e.replace(&quoted, "<redacted>")
                        .replace(secret, "<redacted>")
                }
            })
    }

    /// Kills every connection but this one, the server's own threads and
    /// replication's: the application's open transactions end with them.
    /// Needs PROCESS (to see them) and CONNECTION ADMIN (to kill them).
    pub async fn kill_application_connections(&mut self) -> Result<usize, String> {
        let ids = self
            .rows(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND USER NOT IN ('system user', 'event_scheduler') \
                 AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')",
            )
            .await?;
        let mut killed = 0;
        for id in ids
            .into_iter()
            .filter_map(|r| r.into_values().next().flatten())
        {
            let Ok(id) = id.parse::<u64>() else { continue };
            match self.execute(&format!("KILL CONNECTION {id}")).await {
                Ok(()) => killed += 1,
                // Gone meanwhile.
                Err(e) if e.contains("Unknown thread id") || e.contains("1094") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    /// Fences this server: read-only set and read back, the application's
    /// connections killed, read-only read back again.
    pub async fn fence(&mut self) -> Result<String, String> {
        // Killed first too: an open transaction holding locks would hold
        // up `read_only` until the step's timeout.
        let mut killed = self.kill_application_connections().await?;
        self.set_read_only().await?;
        killed += self.kill_application_connections().await?;
        let verified = self.read_only().await?;
        Ok(format!("{verified}, {killed} connection(s) killed"))
    }

    /// Makes this replica the primary: its IO thread stopped (the relay
    /// log is then final), everything received applied, replication
    /// stopped and reset, read-only off and read back. Returns what was
    /// verified with the GTID position it starts from.
    pub async fn promote(
        &mut self,
        wait: Duration,
        source_final: Option<&str>,
    ) -> Result<String, PromotionFailure> {
        let unchanged = |why: String| PromotionFailure {
            why,
            changed: false,
        };
        let changed = |why: String| PromotionFailure { why, changed: true };
        let sql = sql(self.flavor);
        let status = self.replica_status().await.map_err(unchanged)?;
        let mut applied_note = "it was no replica".to_string();
        if let Some(status) = status {
            if !status.sql_running && !status.last_sql_error.is_empty() {
                return Err(unchanged(format!(
                    "the secondary's SQL thread stopped with an error, so what it received cannot be applied: {}",
                    status.last_sql_error
                )));
            }
            // The fenced old primary's last position, when it was read:
            // everything it wrote is received before the IO thread stops.
            if let Some(last) = source_final
                && status.io_running
            {
                self.wait_received(last, wait).await.map_err(unchanged)?;
            }
            self.execute(sql.stop_io).await.map_err(unchanged)?;
            if !status.sql_running {
                // Stopped by hand, with no error: it must apply the rest.
                let start_sql = match self.flavor {
                    Flavor::MySql { .. } if sql.start == "START REPLICA" => {
                        "START REPLICA SQL_THREAD"
                    }
                    _ => "START SLAVE SQL_THREAD",
                };
                self.execute(start_sql).await.map_err(unchanged)?;
            }
            let applied = async {
                let received = self.received().await?;
                match self.wait_applied(&received, wait).await? {
                    true => Ok(received),
                    false => Err(format!(
                        "the secondary did not apply everything it received ({received}) within {}",
                        crate::config::duration::show(wait)
                    )),
                }
            }
            .await;
            let received = match applied {
                Ok(received) => received,
                Err(why) => {
                    // Nothing changed but the stopped IO thread: it runs
                    // again, so replication goes on as before.
                    let _ = self.execute(sql.start).await;
                    return Err(unchanged(why));
                }
            };
            applied_note = format!("relay log applied up to {received}");
            self.execute(sql.stop).await.map_err(changed)?;
            self.execute(sql.reset).await.map_err(changed)?;
        }
        self.set_writable().await.map_err(changed)?;
        let position = self.binlog_position().await.map_err(changed)?;
        Ok(format!(
            "{applied_note}; replication reset; read_only reads 0; GTID position {position}"
        ))
    }

    /// Turns read-only off (MySQL: `super_read_only` too) and reads it
    /// back.
    pub async fn set_writable(&mut self) -> Result<String, String> {
        for statement in sql(self.flavor).writable {
            self.execute(statement).await?;
        }
        match self.read_only_state().await? {
            (true, detail) => Err(format!("still read-only: {detail}")),
            (false, _) => Ok(format!("{} reads read_only 0", self.address)),
        }
    }

    /// The GTID position this server has written: what a replica must
    /// reach to have everything.
    pub async fn written_position(&mut self) -> Result<String, String> {
        self.binlog_position().await
    }

    /// Waits up to `wait` until this replica has applied `position` (a
    /// source's `written_position`).
    pub async fn wait_position(&mut self, position: &str, wait: Duration) -> Result<bool, String> {
        self.wait_applied(position, wait).await
    }

    /// Waits up to `wait` until this replica has received `position` (its
    /// source's last written position).
    async fn wait_received(&mut self, position: &str, wait: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = self.received().await?;
            let done = match self.flavor {
                Flavor::MariaDb { .. } => {
                    gtid::MariaPosition::parse(position)?
                        .missing_at(&gtid::MariaPosition::parse(&received)?)
                        == 0
                }
                // Retrieved_Gtid_Set holds only what this IO thread
                // fetched, not all the replica has: not compared.
                Flavor::MySql { .. } => true,
            };
            if done {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the secondary did not receive the old primary's last position {position} within {} (it has {received})",
                    crate::config::duration::show(wait)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What this replica received from its source: MariaDB `Gtid_IO_Pos`,
    /// MySQL `Retrieved_Gtid_Set` with what it executed.
    async fn received(&mut self) -> Result<String, String> {
        let sql = self.flavor.replica_status_sql();
        let rows = self.rows(sql).await?;
        let row = rows.first().cloned().unwrap_or_default();
        let get = |name: &str| row.get(name).cloned().flatten().unwrap_or_default();
        Ok(match self.flavor {
            Flavor::MariaDb { .. } => get("Gtid_IO_Pos").replace('\n', ""),
            Flavor::MySql { .. } => get("Retrieved_Gtid_Set").replace('\n', ""),
        })
    }

    /// Waits up to `wait` until `received` is applied here.
    async fn wait_applied(&mut self, received: &str, wait: Duration) -> Result<bool, String> {
        if received.trim().is_empty() {
            return Ok(true);
        }
        let seconds = wait.as_secs_f64();
        let sql = match self.flavor {
            Flavor::MariaDb { .. } => {
                let position = gtid::MariaPosition::parse(received)?;
                format!("SELECT MASTER_GTID_WAIT('{position}', {seconds:.3})")
            }
            Flavor::MySql { .. } => {
                let set = gtid::GtidSet::parse(received)?;
                format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{set}', {seconds:.3})")
            }
        };
        let (timeout, address) = (
            self.timeout.max(wait + Duration::from_secs(1)),
            self.address,
        );
        use mysql_async::prelude::Queryable;
        let value: Option<mysql_async::Row> =
            Self::bounded(timeout, address, &sql, self.conn.query_first(sql.as_str())).await?;
        let value = value
            .and_then(|r| super::row_map(r).into_values().next().flatten())
            .unwrap_or_default();
        Ok(value == "0")
    }

    /// The GTIDs this server has that `source` lacks: what stops it from
    /// replicating from `source` without losing or doubling anything.
    pub async fn errant_against(&mut self, source: &mut Db) -> Result<Vec<String>, String> {
        // This server's state first: it takes no writes (fenced), so
        // nothing it got from `source` afterwards can be newer.
        let mine = self.binlog_state().await?;
        let theirs = source.binlog_state().await?;
        match self.flavor {
            Flavor::MariaDb { .. } => {
                Ok(gtid::MariaState::parse(&theirs)?.errant_in(&gtid::MariaState::parse(&mine)?))
            }
            Flavor::MySql { .. } => {
                let errant = gtid::GtidSet::parse(&mine)?.minus(&gtid::GtidSet::parse(&theirs)?);
                Ok(if errant.is_empty() {
                    Vec::new()
                } else {
                    vec![errant.to_string()]
                })
            }
        }
    }

    /// Makes this (fenced) server a replica of `source` from its own GTID
    /// position and waits up to `wait` for both threads to run.
    pub async fn replicate_from(
        &mut self,
        source: SocketAddr,
        user: &str,
        password: &Secret,
        tls: bool,
        wait: Duration,
    ) -> Result<String, String> {
        let sql = sql(self.flavor);
        if let Some(status) = self.replica_status().await?
            && (status.io_running || status.sql_running)
        {
            self.execute(sql.stop).await?;
        }
        if let Flavor::MariaDb { .. } = self.flavor {
            // A former primary's own writes are in its binlog, not in
            // gtid_slave_pos: it goes on from what it has.
            self.execute("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
                .await?;
        }
        let change = change_source_sql(self.flavor, source, user, password.expose(), tls);
        let shown = change_source_sql(self.flavor, source, user, "<redacted>", tls);
        self.execute_secret(&change, &shown, password.expose())
            .await?;
        self.execute(sql.start).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = self.replica_status().await?;
            match status {
                Some(s) if s.io_running && s.sql_running => {
                    let position = self.applied_position().await?;
                    return Ok(format!(
                        "replicating from {source}, IO and SQL threads running, applied {position}"
                    ));
                }
                Some(s) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "replication from {source} not running after {}: IO {}, SQL {}{}{}",
                        crate::config::duration::show(wait),
                        s.io_running,
                        s.sql_running,
                        if s.last_io_error.is_empty() {
                            String::new()
                        } else {
                            format!("; IO error: {}", s.last_io_error)
                        },
                        if s.last_sql_error.is_empty() {
                            String::new()
                        } else {
                            format!("; SQL error: {}", s.last_sql_error)
                        },
                    ));
                }
                None if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("no replication configured after {}", sql.start));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The privileges `mode: promote` needs of the controller's account (to
/// fence, promote and rejoin), and those its `SHOW GRANTS` lines lack.
pub fn promotion_privileges(
    flavor: Flavor,
    grants: &[String],
) -> (Vec<&'static str>, Vec<&'static str>) {
    let has = |p: &str| super::grants_hold(grants, p);
    match flavor {
        Flavor::MariaDb { .. } => {
            let needed = vec![
                "PROCESS",
                "CONNECTION ADMIN",
                "RELOAD",
                "REPLICATION SLAVE ADMIN",
            ];
            let missing = needed
                .iter()
                .copied()
                .filter(|p| !(has(p) || (*p == "CONNECTION ADMIN" && has("SUPER"))))
                .collect();
            (needed, missing)
        }
        Flavor::MySql { .. } => {
            let needed = vec![
                "PROCESS",
                "CONNECTION_ADMIN",
                "RELOAD",
                "REPLICATION_SLAVE_ADMIN",
            ];
            // SUPER (deprecated) still covers the dynamic ones, never the
            // static PROCESS and RELOAD.
            let missing = needed
                .iter()
                .copied()
                .filter(|p| !(has(p) || (p.ends_with("_ADMIN") && has("SUPER"))))
                .collect();
            (needed, missing)
        }
    }
}

/// What `mode: promote` needs of a server, each as (ok, sentence): the
/// account's privileges to fence, promote and rejoin; the binary log
/// keeping replicated writes with strict GTIDs; semi-sync AFTER_SYNC in
/// both roles. Changes nothing.
pub async fn promotion_ready(db: &mut Db) -> Result<Vec<(String, bool, String)>, String> {
    let grants = db.grants(None).await?;
    let mut items = Vec::new();
    let (needed, missing) = promotion_privileges(db.flavor, &grants);
    items.push((
        "promotion privileges".to_string(),
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} held", needed.join(", "))
        } else {
            format!(
                "the controller's account lacks {} ON *.* (to fence, promote and rejoin)",
                missing.join(", ")
            )
        },
    ));
    let (updates, strict) = match db.flavor {
        Flavor::MariaDb { .. } => (
            "SELECT @@GLOBAL.log_slave_updates",
            "SELECT @@GLOBAL.gtid_strict_mode",
        ),
        // log_replica_updates from 8.0.26 on; log_slave_updates before.
        Flavor::MySql {
            major,
            minor,
            patch,
        } if (major, minor, patch) >= (8, 0, 26) => (
            "SELECT @@GLOBAL.log_replica_updates",
            "SELECT @@GLOBAL.gtid_mode = 'ON'",
        ),
        Flavor::MySql { .. } => (
            "SELECT @@GLOBAL.log_slave_updates",
            "SELECT @@GLOBAL.gtid_mode = 'ON'",
        ),
    };
    let on = |v: Option<String>| v.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"));
    let updates_on = on(db.value(updates).await?);
    let strict_on = on(db.value(strict).await?);
    items.push((
        "binary log for a rejoin".to_string(),
        updates_on && strict_on,
        match (updates_on, strict_on) {
            (true, true) => "replicated writes kept in the binary log, GTIDs strict".to_string(),
            (false, _) => format!(
                "`{}` is off: a rejoined old primary could not find its position here",
                &updates[7..]
            ),
            (true, false) => format!("`{}` is off: GTIDs are not strict", &strict[7..]),
        },
    ));
    let semi = db.semi_sync().await?;
    let lossless = semi.enabled && semi.wait_point.eq_ignore_ascii_case("AFTER_SYNC");
    items.push((
        "semi-sync AFTER_SYNC".to_string(),
        lossless,
        if lossless {
            "as a primary: semi-sync on, wait point AFTER_SYNC".to_string()
        } else {
            semi.verdict().1
        },
    ));
    Ok(items)
}

/// Rejoins `old` (the old primary) as a replica of `new`: fenced first,
/// then refused if it holds transactions `new` lacks.
pub async fn rejoin(
    old: &mut Db,
    new: &mut Db,
    source: SocketAddr,
    user: &str,
    password: &Secret,
    tls: bool,
    wait: Duration,
) -> RejoinOutcome {
    let fenced = match old.fence().await {
        Ok(fenced) => fenced,
        Err(e) => return RejoinOutcome::Failed(format!("fencing the old primary: {e}")),
    };
    match old.errant_against(new).await {
        Ok(errant) if !errant.is_empty() => return RejoinOutcome::Diverged(errant),
        Ok(_) => {}
        Err(e) => return RejoinOutcome::Failed(format!("comparing GTIDs: {e}")),
    }
    match old.replicate_from(source, user, password, tls, wait).await {
        Ok(detail) => RejoinOutcome::Rejoined(format!("fenced ({fenced}); {detail}")),
        Err(e) => RejoinOutcome::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// As MariaDB 10.11 answers with semi-sync on (recorded here).
    #[test]
    fn mariadb_semi_sync_rows() {
        let semi = semi_sync_from(
            &rows(&[
                ("rpl_semi_sync_master_enabled", "ON"),
                ("rpl_semi_sync_master_timeout", "10000"),
                ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
                ("rpl_semi_sync_slave_enabled", "ON"),
            ]),
            &rows(&[
                ("Rpl_semi_sync_master_clients", "1"),
                ("Rpl_semi_sync_master_status", "ON"),
                ("Rpl_semi_sync_slave_status", "OFF"),
            ]),
        );
        assert_eq!(
            semi,
            SemiSync {
                enabled: true,
                wait_point: "AFTER_SYNC".into(),
                active: true,
                clients: 1,
                secondary_acknowledging: None,
            }
        );
        assert!(!semi.verdict().0, "the secondary's own status not read yet");
        assert!(replica_acknowledging(&rows(&[(
            "Rpl_semi_sync_slave_status",
            "ON"
        )])));
        assert!(replica_acknowledging(&rows(&[(
            "Rpl_semi_sync_replica_status",
            "ON"
        )])));
        assert!(!replica_acknowledging(&rows(&[(
            "Rpl_semi_sync_slave_status",
            "OFF"
        )])));
        assert!(!replica_acknowledging(&[]));
    }

    /// MySQL 8.0.26+ names the primary's side `source` (semisync_source
    /// plugin; recorded from its documentation's output).
    #[test]
    fn mysql_semi_sync_rows() {
        let semi = semi_sync_from(
            &rows(&[
                ("rpl_semi_sync_source_enabled", "ON"),
                ("rpl_semi_sync_source_wait_point", "AFTER_SYNC"),
                ("rpl_semi_sync_source_wait_for_replica_count", "1"),
            ]),
            &rows(&[
                ("Rpl_semi_sync_source_clients", "1"),
                ("Rpl_semi_sync_source_status", "ON"),
            ]),
        );
        let semi = SemiSync {
            secondary_acknowledging: Some(true),
            ..semi
        };
        assert!(semi.verdict().0, "{semi:?}");
        // No plugin: no rows.
        let none = semi_sync_from(&[], &[]);
        assert!(!none.enabled && !none.verdict().0);
    }

    /// `SHOW GRANTS` as MySQL 8.0 and MariaDB 10.11 print them (recorded).
    #[test]
    fn promotion_privileges_from_recorded_grants() {
        let lines = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let mysql = Flavor::from_version("8.0.36");
        // SUPER covers the dynamic privileges, not PROCESS and RELOAD.
        let (_, missing) = promotion_privileges(
            mysql,
            &lines(&["GRANT SUPER, REPLICATION CLIENT ON *.* TO `geofailover`@`%`"]),
        );
        assert_eq!(missing, ["PROCESS", "RELOAD"]);
        let (_, missing) = promotion_privileges(
            mysql,
            &lines(&[
                "GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO `geofailover`@`%`",
                "GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `geofailover`@`%`",
            ]),
        );
        assert!(missing.is_empty(), "{missing:?}");
        let maria = Flavor::from_version("10.11.6-MariaDB");
        let (_, missing) = promotion_privileges(
            maria,
            &lines(&[
                "GRANT RELOAD, PROCESS, SUPER, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN ON *.* TO `geofailover`@`%` IDENTIFIED BY PASSWORD '*00'",
            ]),
        );
        assert!(missing.is_empty(), "{missing:?}");
        let (_, missing) = promotion_privileges(
            maria,
            &lines(&["GRANT READ_ONLY ADMIN ON *.* TO `geofailover`@`%`"]),
        );
        assert_eq!(
            missing,
            [
                "PROCESS",
                "CONNECTION ADMIN",
                "RELOAD",
                "REPLICATION SLAVE ADMIN"
            ]
        );
    }

    #[test]
    fn change_source_statements_by_flavour() {
        let source: SocketAddr = "192.0.2.7:3307".parse().unwrap();
        let maria = change_source_sql(
            Flavor::from_version("10.11.6-MariaDB"),
            source,
            "repl",
            "p'w",
            false,
        );
        assert!(maria.starts_with("CHANGE MASTER TO MASTER_HOST='192.0.2.7', MASTER_PORT=3307"));
        assert!(maria.contains("MASTER_USE_GTID=slave_pos"));
        assert!(maria.contains("MASTER_PASSWORD='p\\'w'"));
        assert!(!maria.contains("SSL"));
        let maria_tls = change_source_sql(
            Flavor::from_version("10.11.6-MariaDB"),
            source,
            "repl",
            "pw",
            true,
        );
        assert!(maria_tls.ends_with(", MASTER_SSL=1"), "{maria_tls}");
        let mysql = change_source_sql(Flavor::from_version("8.0.36"), source, "repl", "pw", false);
        assert!(mysql.starts_with("CHANGE REPLICATION SOURCE TO SOURCE_HOST='192.0.2.7'"));
        assert!(mysql.contains("SOURCE_AUTO_POSITION=1"));
        assert!(mysql.ends_with("GET_SOURCE_PUBLIC_KEY=1"), "{mysql}");
        let mysql_tls =
            change_source_sql(Flavor::from_version("8.0.36"), source, "repl", "pw", true);
        assert!(mysql_tls.ends_with("SOURCE_SSL=1"), "{mysql_tls}");
        assert!(!mysql_tls.contains("PUBLIC_KEY"), "{mysql_tls}");
        let early8 = change_source_sql(Flavor::from_version("8.0.20"), source, "repl", "pw", false);
        assert!(early8.starts_with("CHANGE MASTER TO"), "{early8}");
        assert!(early8.ends_with("GET_MASTER_PUBLIC_KEY=1"), "{early8}");
        let old = change_source_sql(Flavor::from_version("5.7.44"), source, "repl", "pw", false);
        assert!(old.contains("MASTER_AUTO_POSITION=1"));
        assert!(!old.contains("PUBLIC_KEY"), "{old}");
        assert_eq!(
            sql(Flavor::from_version("8.0.36")).reset,
            "RESET REPLICA ALL"
        );
        assert_eq!(
            sql(Flavor::from_version("8.0.36")).writable[0],
            "SET GLOBAL super_read_only = OFF"
        );
        assert_eq!(
            sql(Flavor::from_version("10.11.6-MariaDB")).reset,
            "RESET SLAVE ALL"
        );
    }
}
