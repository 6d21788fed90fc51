//! MySQL and MariaDB: the flavour and version found at connect, and each
//! flavour's SQL for replication status, GTID positions, read-only mode
//! (set, then read back) and the grants that could bypass it. Result
//! columns are read by name, since the two flavours name them differently.

pub mod gtid;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use mysql_async::{Conn, OptsBuilder, Row, prelude::Queryable};

use crate::config::Secret;
use gtid::MariaPosition;

/// Where a database is and who we are there.
#[derive(Debug, Clone, PartialEq)]
pub struct DbTarget {
    pub address: SocketAddr,
    pub user: String,
    pub password: Secret,
}

/// The server's kind and version, which decide the SQL used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb { major: u32, minor: u32 },
    MySql { major: u32, minor: u32, patch: u32 },
}

impl Flavor {
    /// From `SELECT VERSION()`, such as `10.11.6-MariaDB-0+deb12u1-log` or
    /// `8.0.36`.
    pub fn from_version(version: &str) -> Self {
        let numbers: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let n = |i: usize| numbers.get(i).copied().unwrap_or(0);
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb {
                major: n(0),
                minor: n(1),
            }
        } else {
            Flavor::MySql {
                major: n(0),
                minor: n(1),
                patch: n(2),
            }
        }
    }

    /// `SHOW REPLICA STATUS` where the server knows it (MariaDB 10.5+,
    /// MySQL 8.0.22+; 8.4 removed the old form), else `SHOW SLAVE STATUS`.
    pub fn replica_status_sql(&self) -> &'static str {
        match *self {
            Flavor::MariaDb { major, minor } if (major, minor) >= (10, 5) => "SHOW REPLICA STATUS",
            Flavor::MySql {
                major,
                minor,
                patch,
            } if (major, minor, patch) >= (8, 0, 22) => "SHOW REPLICA STATUS",
            Flavor::MariaDb { .. } | Flavor::MySql { .. } => "SHOW SLAVE STATUS",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Flavor::MariaDb { major, minor } => format!("MariaDB {major}.{minor}"),
            Flavor::MySql {
                major,
                minor,
                patch,
            } => format!("MySQL {major}.{minor}.{patch}"),
        }
    }
}

/// A replica's view of its replication, from `SHOW REPLICA STATUS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub io_running: bool,
    pub sql_running: bool,
    /// Seconds behind the source, when the server knows.
    pub lag: Option<u64>,
    pub last_io_error: String,
    pub last_sql_error: String,
}

/// Reads a `SHOW REPLICA STATUS` row (as column name to value) in either
/// flavour's names.
pub fn replica_status_from(row: &BTreeMap<String, Option<String>>) -> ReplicaStatus {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| row.get(*n).cloned().flatten())
            .unwrap_or_default()
    };
    let running = |names: &[&str]| get(names).eq_ignore_ascii_case("yes");
    ReplicaStatus {
        io_running: running(&["Replica_IO_Running", "Slave_IO_Running"]),
        sql_running: running(&["Replica_SQL_Running", "Slave_SQL_Running"]),
        lag: get(&["Seconds_Behind_Source", "Seconds_Behind_Master"])
            .parse()
            .ok(),
        last_io_error: get(&["Last_IO_Error"]),
        last_sql_error: get(&["Last_SQL_Error"]),
    }
}

/// How many transactions a MySQL GTID set holds: `uuid:1-5:7,uuid2:3`.
pub fn count_gtid_set(set: &str) -> u64 {
    set.split(',')
        .flat_map(|source| source.trim().split(':').skip(1))
        .map(|range| match range.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u64::from(range.trim().parse::<u64>().is_ok()),
        })
        .sum()
}

fn row_map(row: Row) -> BTreeMap<String, Option<String>> {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().to_string())
        .collect();
    // Row::unwrap_raw hands over the values (None for one already taken).
    let values = row.unwrap_raw();
    names
        .into_iter()
        .zip(values)
        .map(|(name, value)| {
            let text = match value {
                None | Some(mysql_async::Value::NULL) => None,
                Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).to_string()),
                Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
            };
            (name, text)
        })
        .collect()
}

/// An open connection and what it is connected to.
pub struct Db {
    conn: Conn,
    pub flavor: Flavor,
    address: SocketAddr,
}

fn fail(address: SocketAddr, what: &str, e: impl std::fmt::Display) -> String {
    format!("{what} at {address}: {e}")
}

impl Db {
    /// Connects and finds the flavour, within `timeout`.
    pub async fn connect(target: &DbTarget, timeout: Duration) -> Result<Self, String> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(target.address.ip().to_string())
            .tcp_port(target.address.port())
            .user(Some(target.user.clone()))
            .pass(Some(target.password.expose().to_string()))
            .prefer_socket(false);
        let connect = async {
            let mut conn = Conn::new(opts)
                .await
                .map_err(|e| fail(target.address, "connect", e))?;
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .map_err(|e| fail(target.address, "SELECT VERSION()", e))?;
            Ok::<_, String>((conn, version.unwrap_or_default()))
        };
        let (conn, version) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| format!("connect to {} timed out", target.address))??;
        Ok(Self {
            conn,
            flavor: Flavor::from_version(&version),
            address: target.address,
        })
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    /// One value of the first row, as text.
    pub async fn value(&mut self, query: &str) -> Result<Option<String>, String> {
        let row: Option<Row> = self
            .conn
            .query_first(query)
            .await
            .map_err(|e| fail(self.address, query, e))?;
        Ok(row.and_then(|r| row_map(r).into_values().next().flatten()))
    }

    pub async fn execute(&mut self, statement: &str) -> Result<(), String> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| fail(self.address, statement, e))
    }

    /// The replica status, or `None` on a server that is no replica.
    pub async fn replica_status(&mut self) -> Result<Option<ReplicaStatus>, String> {
        let sql = self.flavor.replica_status_sql();
        let row: Option<Row> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|e| fail(self.address, sql, e))?;
        Ok(row.map(|r| replica_status_from(&row_map(r))))
    }

    /// Sets the server read-only and reads it back: MariaDB `read_only`,
    /// MySQL `super_read_only` (which implies `read_only`). Idempotent.
    pub async fn set_read_only(&mut self) -> Result<String, String> {
        let (set, check) = match self.flavor {
            Flavor::MariaDb { .. } => ("SET GLOBAL read_only = ON", "SELECT @@GLOBAL.read_only"),
            Flavor::MySql { .. } => (
                "SET GLOBAL super_read_only = ON",
                "SELECT @@GLOBAL.super_read_only",
            ),
        };
        self.execute(set).await?;
        match self.value(check).await?.as_deref() {
            Some("1") => Ok(format!("{} reads back {}", self.address, &check[7..])),
            other => Err(format!(
                "{} still reads {} = {} after {set}",
                self.address,
                &check[7..],
                other.unwrap_or("NULL")
            )),
        }
    }

    /// The accounts among `accounts` (`user@host`) whose grants let them
    /// write despite read-only: SUPER, READ ONLY ADMIN, or ALL PRIVILEGES
    /// on *.*. Each as `account: privilege`.
    pub async fn bypassing_accounts(&mut self, accounts: &[String]) -> Result<Vec<String>, String> {
        let mut found = Vec::new();
        for account in accounts {
            let (user, host) = account.split_once('@').unwrap_or((account.as_str(), "%"));
            let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
            let sql = format!("SHOW GRANTS FOR '{}'@'{}'", quote(user), quote(host));
            let rows: Vec<Row> = self
                .conn
                .query(&sql)
                .await
                .map_err(|e| fail(self.address, &sql, e))?;
            for row in rows {
                let grant = row_map(row)
                    .into_values()
                    .next()
                    .flatten()
                    .unwrap_or_default();
                let upper = grant.to_ascii_uppercase();
                let on_everything = upper.contains(" ON *.* ");
                for privilege in ["SUPER", "READ ONLY ADMIN", "READ_ONLY ADMIN"] {
                    if on_everything && upper.contains(privilege) {
                        found.push(format!("{account}: {privilege}"));
                    }
                }
                if on_everything && upper.contains("ALL PRIVILEGES") {
                    found.push(format!("{account}: ALL PRIVILEGES"));
                }
            }
        }
        found.dedup();
        Ok(found)
    }

    /// Runs statements without writing them to the binary log, so a flag
    /// kept in the secondary's database makes no GTID of its own there.
    pub async fn run_unlogged(&mut self, statements: &[String]) -> Result<(), String> {
        self.execute("SET SESSION sql_log_bin = 0").await?;
        for statement in statements {
            self.execute(statement).await?;
        }
        self.execute("SET SESSION sql_log_bin = 1").await
    }

    /// The GTID position this server has written to its binary log.
    pub async fn binlog_position(&mut self) -> Result<String, String> {
        let sql = match self.flavor {
            Flavor::MariaDb { .. } => "SELECT @@GLOBAL.gtid_binlog_pos",
            Flavor::MySql { .. } => "SELECT @@GLOBAL.gtid_executed",
        };
        Ok(self.value(sql).await?.unwrap_or_default())
    }
}

/// What the replication watcher saw of both databases in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub primary_error: Option<String>,
    pub secondary_error: Option<String>,
    pub flavor: Option<String>,
    pub replica: Option<ReplicaStatus>,
    pub primary_position: Option<String>,
    pub secondary_position: Option<String>,
    /// Transactions the primary has that the secondary has not applied.
    pub missing: Option<u64>,
    /// GTIDs at the secondary that did not come from the primary.
    pub errant: Vec<String>,
}

/// Looks at both databases once.
pub async fn observe(primary: &DbTarget, secondary: &DbTarget, timeout: Duration) -> Observed {
    let mut seen = Observed::default();
    let mut primary_db = match Db::connect(primary, timeout).await {
        Ok(db) => Some(db),
        Err(e) => {
            seen.primary_error = Some(e);
            None
        }
    };
    if let Some(db) = &mut primary_db {
        seen.flavor = Some(db.flavor.describe());
        match db.binlog_position().await {
            Ok(p) => seen.primary_position = Some(p),
            Err(e) => seen.primary_error = Some(e),
        }
    }
    match Db::connect(secondary, timeout).await {
        Ok(mut db) => {
            let result: Result<(), String> = async {
                seen.replica = db.replica_status().await?;
                let flavor = db.flavor;
                let own = db.binlog_position().await?;
                seen.secondary_position = Some(own.clone());
                if let Some(primary_pos) = &seen.primary_position {
                    match flavor {
                        Flavor::MariaDb { .. } => {
                            let p = MariaPosition::parse(primary_pos)?;
                            let applied = db
                                .value("SELECT @@GLOBAL.gtid_slave_pos")
                                .await?
                                .unwrap_or_default();
                            seen.missing = Some(p.missing_at(&MariaPosition::parse(&applied)?));
                            seen.errant = p.errant_in(&MariaPosition::parse(&own)?);
                        }
                        Flavor::MySql { .. } => {
                            let quoted = primary_pos.replace('\'', "");
                            let missing = db
                                .value(&format!(
                                    "SELECT GTID_SUBTRACT('{quoted}', @@GLOBAL.gtid_executed)"
                                ))
                                .await?
                                .unwrap_or_default();
                            seen.missing = Some(count_gtid_set(&missing));
                            let errant = db
                                .value(&format!(
                                    "SELECT GTID_SUBTRACT(@@GLOBAL.gtid_executed, '{quoted}')"
                                ))
                                .await?
                                .unwrap_or_default();
                            if !errant.trim().is_empty() {
                                seen.errant = vec![errant.trim().replace('\n', "")];
                            }
                        }
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                seen.secondary_error = Some(e);
            }
            db.close().await;
        }
        Err(e) => seen.secondary_error = Some(e),
    }
    if let Some(db) = primary_db {
        db.close().await;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn flavours_from_version_strings() {
        assert_eq!(
            Flavor::from_version("10.11.19-MariaDB-0+deb12u1-log"),
            Flavor::MariaDb {
                major: 10,
                minor: 11
            }
        );
        assert_eq!(
            Flavor::from_version("8.0.36"),
            Flavor::MySql {
                major: 8,
                minor: 0,
                patch: 36
            }
        );
        assert_eq!(
            Flavor::from_version("8.0.21").replica_status_sql(),
            "SHOW SLAVE STATUS"
        );
        assert_eq!(
            Flavor::from_version("8.4.0").replica_status_sql(),
            "SHOW REPLICA STATUS"
        );
        assert_eq!(
            Flavor::from_version("10.4.1-MariaDB").replica_status_sql(),
            "SHOW SLAVE STATUS"
        );
    }

    /// A row as MySQL 8.0.36 returns it (recorded, trimmed to the columns read).
    #[test]
    fn mysql_8_replica_status_row() {
        let status = replica_status_from(&row(&[
            ("Replica_IO_Running", "Yes"),
            ("Replica_SQL_Running", "No"),
            ("Seconds_Behind_Source", ""),
            ("Last_IO_Error", ""),
            (
                "Last_SQL_Error",
                "Could not execute Write_rows event on table app.orders; Duplicate entry '7' for key 'PRIMARY'",
            ),
            (
                "Retrieved_Gtid_Set",
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57",
            ),
            (
                "Executed_Gtid_Set",
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-55",
            ),
        ]));
        assert!(status.io_running);
        assert!(!status.sql_running);
        assert_eq!(status.lag, None);
        assert!(status.last_sql_error.contains("Duplicate entry"));
    }

    /// A row as MariaDB 10.11 returns it.
    #[test]
    fn mariadb_replica_status_row() {
        let status = replica_status_from(&row(&[
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Seconds_Behind_Master", "3"),
            ("Last_IO_Error", ""),
            ("Last_SQL_Error", ""),
            ("Gtid_IO_Pos", "0-1-42"),
        ]));
        assert_eq!(
            status,
            ReplicaStatus {
                io_running: true,
                sql_running: true,
                lag: Some(3),
                last_io_error: String::new(),
                last_sql_error: String::new(),
            }
        );
    }

    #[test]
    fn mysql_gtid_sets_are_counted() {
        assert_eq!(count_gtid_set(""), 0);
        assert_eq!(
            count_gtid_set("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"),
            6
        );
        assert_eq!(count_gtid_set("a:1-3,\nb:10-10"), 4);
    }
}
