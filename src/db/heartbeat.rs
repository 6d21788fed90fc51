//! The fence that does not need the controller (`failover.fence_heartbeat`,
//! MariaDB): the primary site's node writes a heartbeat into its own
//! database every second while it is surely a member of the cluster (its
//! lease's deadline ahead), and an event inside that database sets it
//! read-only when the heartbeat is older than `fence_after`. A node that
//! died, hangs or lost the cluster fences its database all the same.
//! Nothing of it goes to the binary log: the table, the event and every
//! beat are the server's own, with no GTID a replica could lack. Times
//! are UTC (no daylight-saving jump ages a beat), and the event acts only
//! on the server it was installed on (`@@server_id`), so a clone of the
//! primary's data directory does not fence the clone.

use std::time::{Duration, Instant};

use super::{Db, Flavor};

pub const SCHEMA: &str = "geofailover_fence";

/// The statements that install the heartbeat and its event on the server
/// with `server_id`, fencing it once the beat is `after` old; run with
/// the binary log off. The event notes that it fenced before it sets
/// read-only, so the note is written even where read-only would stop it,
/// then kills every session but replication's and the server's own (as
/// the controller's fence does): open transactions end with them.
pub fn install_sql(server_id: u64, after: Duration) -> Vec<String> {
    let micros = after.as_micros();
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.heartbeat (id TINYINT UNSIGNED PRIMARY KEY, beat DATETIME(6) NOT NULL, fenced_at DATETIME(6) NULL) ENGINE=InnoDB"
        ),
        // A first row is a beat; an existing one is left as it is.
        format!("INSERT IGNORE INTO {SCHEMA}.heartbeat (id, beat) VALUES (1, UTC_TIMESTAMP(6))"),
        format!("DROP EVENT IF EXISTS {SCHEMA}.fence"),
        format!(
            "CREATE EVENT {SCHEMA}.fence ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE \
             COMMENT 'geofailover: read-only when the primary site''s node stops beating' DO \
             BEGIN \
               DECLARE done INT DEFAULT 0; \
               DECLARE victim BIGINT UNSIGNED; \
               DECLARE sessions CURSOR FOR SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler') \
                 AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker'); \
               DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1; \
               IF @@GLOBAL.server_id = {server_id} AND @@GLOBAL.read_only = 0 AND (SELECT beat FROM {SCHEMA}.heartbeat WHERE id = 1) < UTC_TIMESTAMP(6) - INTERVAL {micros} MICROSECOND THEN \
                 SET SESSION sql_log_bin = 0; \
                 SET SESSION lock_wait_timeout = 1; \
                 UPDATE {SCHEMA}.heartbeat SET fenced_at = UTC_TIMESTAMP(6) WHERE id = 1; \
                 SET GLOBAL read_only = ON; \
                 OPEN sessions; \
                 kill_them: LOOP \
                   FETCH sessions INTO victim; \
                   IF done THEN LEAVE kill_them; END IF; \
                   BEGIN \
                     DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; \
                     KILL CONNECTION victim; \
                   END; \
                 END LOOP; \
                 CLOSE sessions; \
               END IF; \
             END"
        ),
    ]
}

/// The statement that drops the event (the option turned off).
pub fn remove_sql() -> String {
    format!("DROP EVENT IF EXISTS {SCHEMA}.fence")
}

impl Db {
    /// Installs the heartbeat table and the fencing event (again: the
    /// event is replaced, so a changed `fence_after` takes effect).
    /// MariaDB only: MySQL's `super_read_only` would stop the beats of a
    /// fenced or replica server, and the event's own note.
    pub async fn install_fence_heartbeat(&mut self, after: Duration) -> Result<(), String> {
        if let Flavor::MySql { .. } = self.flavor {
            return Err(format!(
                "fence_heartbeat is for MariaDB; {} is {}",
                self.address,
                self.flavor.describe()
            ));
        }
        let server_id = self
            .value("SELECT @@GLOBAL.server_id")
            .await?
            .and_then(|v| v.parse().ok())
            .ok_or("the server's server_id could not be read")?;
        self.run_unlogged(&install_sql(server_id, after)).await
    }

    /// One beat, sent only if it surely lands before `until` (this node's
    /// membership of the cluster). Returns when the event fenced this
    /// server (the note stays until the fence is lifted).
    pub async fn beat(&mut self, until: Option<Instant>) -> Result<Option<String>, String> {
        let fenced = self
            .value(&format!(
                "SELECT fenced_at FROM {SCHEMA}.heartbeat WHERE id = 1"
            ))
            .await?;
        if until.is_none_or(|u| Instant::now() + self.timeout >= u) {
            return Err("this node is not surely in the cluster: no beat".into());
        }
        self.run_unlogged(&[format!(
            "UPDATE {SCHEMA}.heartbeat SET beat = UTC_TIMESTAMP(6) WHERE id = 1"
        )])
        .await?;
        Ok(fenced)
    }

    /// Before a fence is lifted: a fresh beat and the event's note
    /// cleared, so the event does not fence again at once. Nothing when
    /// there is no heartbeat here.
    pub async fn refresh_beat(&mut self) -> Result<(), String> {
        let there = self
            .value(&format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{SCHEMA}' AND TABLE_NAME = 'heartbeat'"
            ))
            .await?;
        if there.as_deref() != Some("1") {
            return Ok(());
        }
        self.run_unlogged(&[format!(
            "UPDATE {SCHEMA}.heartbeat SET beat = UTC_TIMESTAMP(6), fenced_at = NULL WHERE id = 1"
        )])
        .await
    }

    /// For the readiness checks: whether the event scheduler runs, whether
    /// the fencing event is enabled and ran in the last 5 s, and how old
    /// the last beat is (ms).
    pub async fn fence_heartbeat_state(&mut self) -> Result<(bool, bool, Option<u64>), String> {
        let scheduler = self
            .value("SELECT @@GLOBAL.event_scheduler")
            .await?
            .is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
        let event = self
            .value(&format!(
                "SELECT STATUS = 'ENABLED' AND LAST_EXECUTED >= NOW() - INTERVAL 5 SECOND FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{SCHEMA}' AND EVENT_NAME = 'fence'"
            ))
            .await?
            .is_some_and(|s| s == "1");
        let age = self
            .value(&format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, beat, UTC_TIMESTAMP(6)) DIV 1000 FROM {SCHEMA}.heartbeat WHERE id = 1"
            ))
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok());
        Ok((scheduler, event, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_fences_only_its_own_server_after_the_heartbeat_ages() {
        let sql = install_sql(7, Duration::from_secs(15));
        let event = sql.last().expect("the event");
        assert!(event.contains("@@GLOBAL.server_id = 7"), "{event}");
        assert!(event.contains("INTERVAL 15000000 MICROSECOND"), "{event}");
        assert!(event.contains("UTC_TIMESTAMP(6)"), "{event}");
        assert!(!event.contains("NOW("), "{event}");
        // The note first, then read-only.
        let note = event.find("SET fenced_at").expect("the note");
        let fence = event.find("SET GLOBAL read_only = ON").expect("the fence");
        assert!(note < fence, "{event}");
        assert!(event.contains("KILL CONNECTION victim"), "{event}");
        assert!(
            fence < event.find("OPEN sessions").expect("the kills"),
            "{event}"
        );
        assert!(
            sql.iter().any(|s| s.starts_with("INSERT IGNORE")),
            "{sql:?}"
        );
        let fast = install_sql(7, Duration::from_millis(1500));
        assert!(
            fast.last()
                .expect("event")
                .contains("INTERVAL 1500000 MICROSECOND"),
            "{fast:?}"
        );
    }
}
