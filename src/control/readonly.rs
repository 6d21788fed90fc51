//! Read-only mode at a site, step by step, each idempotent, with a timeout,
//! and verified by reading back what it set: first the database
//! (`read_only`, plus an audit of the application accounts' grants), then
//! the application's flag (a file, SQL statements, an HTTP call). The first
//! step that cannot be verified stops the rest.

use std::time::Duration;

use crate::{
    config::{Database, FlagHttp, FlagSql, Site},
    db::Db,
    engine::utc,
    store::write_atomically,
};

/// One step's outcome, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub at: u64,
    pub step: String,
    pub ok: bool,
    pub detail: String,
}

struct Steps {
    done: Vec<StepOutcome>,
}

impl Steps {
    /// Records a step; what it verified joins `kept`, a failure comes back.
    fn keep(
        &mut self,
        step: &str,
        result: Result<String, String>,
        kept: &mut Vec<String>,
    ) -> Result<(), String> {
        self.record(step, &result);
        kept.push(result?);
        Ok(())
    }

    fn record(&mut self, step: &str, result: &Result<String, String>) {
        self.done.push(StepOutcome {
            at: super::now_ms(),
            step: step.to_string(),
            ok: result.is_ok(),
            detail: match result {
                Ok(d) | Err(d) => d.clone(),
            },
        });
    }
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        format!(
            "{what} timed out after {}",
            crate::config::duration::show(timeout)
        )
    })?
}

/// Puts `site` into read-only mode and verifies it. The result names what
/// was verified, or the step that failed and why.
pub async fn prepare(site: &Site, timeout: Duration) -> (Result<String, String>, Vec<StepOutcome>) {
    let mut steps = Steps { done: Vec::new() };
    let mut verified = Vec::new();
    if let Some(database) = &site.database {
        let result = within(timeout, "database read-only", async {
            let mut db = Db::connect(&database.target, timeout).await?;
            let set = db.set_read_only().await;
            let audit = match &set {
                Ok(_) => db.bypassing_accounts(&database.app_accounts).await,
                Err(_) => Ok(Vec::new()),
            };
            db.close().await;
            Ok::<_, String>((set?, audit?))
        })
        .await;
        let (read_only, bypassing) = match result {
            Ok(pair) => pair,
            Err(e) => {
                let result = Err(e);
                steps.record("database read_only", &result);
                return (result, steps.done);
            }
        };
        let result = Ok(read_only.clone());
        steps.record("database read_only", &result);
        verified.push(read_only);
        if !bypassing.is_empty() {
            let list = bypassing.join(", ");
            if database.strict_grants {
                let result = Err(format!(
                    "application accounts could still write despite read_only: {list} (strict_grants)"
                ));
                steps.record("grant audit", &result);
                return (result, steps.done);
            }
            let warning = Ok(format!(
                "warning: application accounts could still write despite read_only: {list}"
            ));
            steps.record("grant audit", &warning);
        } else if !database.app_accounts.is_empty() {
            steps.record(
                "grant audit",
                &Ok("no application account can bypass read_only".into()),
            );
        }
    }
    if let Some(file) = &site.read_only.file {
        let result = async {
            write_atomically(&file.path, file.content.as_bytes())
                .map_err(|e| format!("cannot write the flag file {}: {e}", file.path.display()))?;
            match std::fs::read_to_string(&file.path) {
                Ok(text) if text == file.content => Ok(format!(
                    "flag file {} written and read back",
                    file.path.display()
                )),
                Ok(_) => Err(format!(
                    "the flag file {} reads back different content",
                    file.path.display()
                )),
                Err(e) => Err(format!(
                    "cannot read back the flag file {}: {e}",
                    file.path.display()
                )),
            }
        }
        .await;
        if let Err(e) = steps.keep("flag file", result, &mut verified) {
            return (Err(e), steps.done);
        }
    }
    if let (Some(sql), Some(database)) = (&site.read_only.sql, &site.database) {
        let result = within(timeout, "flag SQL", flag_sql(database, sql, true, timeout)).await;
        if let Err(e) = steps.keep("flag SQL", result, &mut verified) {
            return (Err(e), steps.done);
        }
    }
    if let Some(http) = &site.read_only.http {
        let result = within(timeout, "flag HTTP call", call_and_check(http, timeout)).await;
        if let Err(e) = steps.keep("flag HTTP call", result, &mut verified) {
            return (Err(e), steps.done);
        }
    }
    if verified.is_empty() {
        verified.push("nothing to set".into());
    }
    (Ok(verified.join("; ")), steps.done)
}

/// Runs the flag's `enable` (or `disable`) statements at the site's
/// database, unlogged, then checks the verify query: it must read the
/// expected value after `enable`, and another after `disable`.
async fn flag_sql(
    database: &Database,
    sql: &FlagSql,
    enable: bool,
    timeout: Duration,
) -> Result<String, String> {
    let statements = if enable { &sql.enable } else { &sql.disable };
    let mut db = Db::connect(&database.target, timeout).await?;
    let ran = db.run_unlogged(statements).await;
    let check = match (&ran, &sql.verify) {
        (Err(e), _) => Err(e.clone()),
        (Ok(()), None) => Ok(format!("flag SQL run ({} statements)", statements.len())),
        (Ok(()), Some((query, expect))) => match db.value(query).await {
            Err(e) => Err(e),
            Ok(value) => {
                let shown = value.as_deref().unwrap_or("no row");
                match (enable, value.as_deref() == Some(expect.as_str())) {
                    (true, true) | (false, false) => {
                        Ok(format!("flag SQL run; `{query}` reads back {shown}"))
                    }
                    (true, false) => Err(format!(
                        "`{query}` reads back {shown} after the flag SQL, expected {expect}"
                    )),
                    (false, true) => {
                        Err(format!("`{query}` still reads {shown} after the undo SQL"))
                    }
                }
            }
        },
    };
    db.close().await;
    check
}

async fn call_and_check(http: &FlagHttp, timeout: Duration) -> Result<String, String> {
    let client = crate::probe::http_client()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let method = reqwest::Method::from_bytes(http.method.as_bytes()).map_err(|e| e.to_string())?;
    let status = client
        .request(method, &http.url)
        .send()
        .await
        .map_err(|e| format!("{} {}: {e}", http.method, http.url))?
        .status()
        .as_u16();
    if !http.expect_status.contains(&status) {
        return Err(format!(
            "{} {} answered HTTP {status}, expected {:?}",
            http.method, http.url, http.expect_status
        ));
    }
    let body = client
        .get(&http.check_url)
        .send()
        .await
        .map_err(|e| format!("GET {}: {e}", http.check_url))?
        .text()
        .await
        .map_err(|e| format!("GET {}: {e}", http.check_url))?;
    if body.contains(&http.check_contains) {
        Ok(format!(
            "{} reports {:?}",
            http.check_url, http.check_contains
        ))
    } else {
        Err(format!(
            "{} does not report {:?} after the call",
            http.check_url, http.check_contains
        ))
    }
}

/// Clears `site`'s application flag after a fail-back, and checks it is
/// gone; the database stays read-only.
pub async fn clear_flag(
    site: &Site,
    timeout: Duration,
) -> (Result<String, String>, Vec<StepOutcome>) {
    let mut steps = Steps { done: Vec::new() };
    let mut cleared = Vec::new();
    if let Some(file) = &site.read_only.file {
        let result = match std::fs::remove_file(&file.path) {
            Ok(()) => Ok(format!("flag file {} removed", file.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("flag file {} already absent", file.path.display()))
            }
            Err(e) => Err(format!(
                "cannot remove the flag file {}: {e}",
                file.path.display()
            )),
        }
        .and_then(|done| {
            if file.path.exists() {
                Err(format!(
                    "the flag file {} is still there",
                    file.path.display()
                ))
            } else {
                Ok(done)
            }
        });
        if let Err(e) = steps.keep("clear flag file", result, &mut cleared) {
            return (Err(e), steps.done);
        }
    }
    if let (Some(sql), Some(database)) = (&site.read_only.sql, &site.database) {
        let result = within(timeout, "undo SQL", flag_sql(database, sql, false, timeout)).await;
        if let Err(e) = steps.keep("clear flag SQL", result, &mut cleared) {
            return (Err(e), steps.done);
        }
    }
    if let Some(http) = &site.read_only.http {
        let result = within(timeout, "undo HTTP call", async {
            let client = crate::probe::http_client()
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let method = reqwest::Method::from_bytes(http.undo_method.as_bytes())
                .map_err(|e| e.to_string())?;
            let status = client
                .request(method, &http.undo_url)
                .send()
                .await
                .map_err(|e| format!("{} {}: {e}", http.undo_method, http.undo_url))?
                .status()
                .as_u16();
            if http.expect_status.contains(&status) {
                Ok(format!(
                    "{} {} answered HTTP {status}",
                    http.undo_method, http.undo_url
                ))
            } else {
                Err(format!(
                    "{} {} answered HTTP {status}",
                    http.undo_method, http.undo_url
                ))
            }
        })
        .await;
        if let Err(e) = steps.keep("clear flag HTTP call", result, &mut cleared) {
            return (Err(e), steps.done);
        }
    }
    if cleared.is_empty() {
        cleared.push(format!(
            "no application flag to clear (as of {})",
            utc(super::now_ms())
        ));
    }
    (Ok(cleared.join("; ")), steps.done)
}
