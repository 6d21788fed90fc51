//! The fence that does not need the controller (`failover.fence_heartbeat`):
//! the primary site's node writes a heartbeat into its own database every
//! second while it is in the cluster, and an event inside that database
//! sets it read-only when the heartbeat is older than `fence_after`. A
//! node that died, or hangs, or lost the cluster, fences its database all
//! the same. Nothing of it goes to the binary log: the table, the event
//! and every beat are the server's own, with no GTID a replica could
//! lack.

use std::time::Duration;

use super::{Db, Flavor};

pub const SCHEMA: &str = "geofailover_fence";

/// The statements that install the heartbeat and its event, fencing the
/// server once the beat is `after` old; run with the binary log off.
pub fn install_sql(flavor: Flavor, after: Duration) -> Vec<String> {
    let set_read_only = match flavor {
        Flavor::MariaDb { .. } => "SET GLOBAL read_only = ON",
        Flavor::MySql { .. } => "SET GLOBAL super_read_only = ON",
    };
    let micros = after.as_micros();
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.heartbeat (id TINYINT UNSIGNED PRIMARY KEY, beat DATETIME(6) NOT NULL, fenced_at DATETIME(6) NULL) ENGINE=InnoDB"
        ),
        format!(
            "INSERT INTO {SCHEMA}.heartbeat (id, beat) VALUES (1, NOW(6)) ON DUPLICATE KEY UPDATE beat = NOW(6)"
        ),
        format!("DROP EVENT IF EXISTS {SCHEMA}.fence"),
        format!(
            "CREATE EVENT {SCHEMA}.fence ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE \
             COMMENT 'geofailover: read-only when the primary site''s node stops beating' DO \
             BEGIN \
               IF @@GLOBAL.read_only = 0 AND (SELECT beat FROM {SCHEMA}.heartbeat WHERE id = 1) < NOW(6) - INTERVAL {micros} MICROSECOND THEN \
                 {set_read_only}; \
                 SET SESSION sql_log_bin = 0; \
                 UPDATE {SCHEMA}.heartbeat SET fenced_at = NOW(6) WHERE id = 1; \
               END IF; \
             END"
        ),
    ]
}

impl Db {
    /// Installs the heartbeat table and the fencing event (again: the
    /// event is replaced, so a changed `fence_after` takes effect).
    pub async fn install_fence_heartbeat(&mut self, after: Duration) -> Result<(), String> {
        self.run_unlogged(&install_sql(self.flavor, after)).await
    }

    /// One beat. Returns when the event fenced this server since the last
    /// beat (and forgets it: it is told once).
    pub async fn beat(&mut self) -> Result<Option<String>, String> {
        let fenced = self
            .value(&format!(
                "SELECT fenced_at FROM {SCHEMA}.heartbeat WHERE id = 1"
            ))
            .await?;
        let mut statements = vec![format!(
            "UPDATE {SCHEMA}.heartbeat SET beat = NOW(6) WHERE id = 1"
        )];
        if fenced.is_some() {
            statements.push(format!(
                "UPDATE {SCHEMA}.heartbeat SET fenced_at = NULL WHERE id = 1"
            ));
        }
        self.run_unlogged(&statements).await?;
        Ok(fenced)
    }

    /// For the readiness checks: whether the event scheduler runs and the
    /// fencing event is there, and how old the last beat is.
    pub async fn fence_heartbeat_state(&mut self) -> Result<(bool, bool, Option<u64>), String> {
        let scheduler = self
            .value("SELECT @@GLOBAL.event_scheduler")
            .await?
            .is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
        let event = self
            .value(&format!(
                "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{SCHEMA}' AND EVENT_NAME = 'fence'"
            ))
            .await?
            .is_some_and(|s| s.eq_ignore_ascii_case("ENABLED"));
        let age = if event {
            self.value(&format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, beat, NOW(6)) DIV 1000 FROM {SCHEMA}.heartbeat WHERE id = 1"
            ))
            .await?
            .and_then(|v| v.parse().ok())
        } else {
            None
        };
        Ok((scheduler, event, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_fences_with_each_flavours_statement_after_the_heartbeat_ages() {
        let maria = install_sql(
            Flavor::from_version("10.11.6-MariaDB"),
            Duration::from_secs(15),
        );
        let event = maria.last().expect("the event");
        assert!(event.contains("INTERVAL 15000000 MICROSECOND"), "{event}");
        assert!(event.contains("SET GLOBAL read_only = ON;"), "{event}");
        let mysql = install_sql(Flavor::from_version("8.0.36"), Duration::from_millis(1500));
        let event = mysql.last().expect("the event");
        assert!(
            event.contains("SET GLOBAL super_read_only = ON;"),
            "{event}"
        );
        assert!(event.contains("INTERVAL 1500000 MICROSECOND"), "{event}");
    }
}
