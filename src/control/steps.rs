//! The parts of a site's read-only mode, one step type for every use:
//! `set` (run it, then read back what it set), `verify` (read back only,
//! for a step a stopped controller finished), `undo` (for a failover that
//! stopped half-way, and for the application flag after fail-back) and
//! `ready` (whether it could run now, changing nothing). Each is bounded
//! by a timeout. The database stays read-only on undo: it is a replica.

use std::time::Duration;

use crate::{
    config::{Database, FlagFile, FlagHttp, FlagSql, ReadOnlyStep, Site},
    db::Db,
    engine::Precheck,
    store::write_atomically,
};

/// One journal line of a step: what it did or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub at: u64,
    pub step: String,
    pub ok: bool,
    pub detail: String,
}

/// What `set` did: the verified result, its journal lines, and warnings
/// that do not stop the failover (an audit that could not run, or found
/// accounts able to bypass read-only, without `strict_grants`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub result: Result<String, String>,
    pub journal: Vec<StepOutcome>,
    pub warnings: Vec<String>,
}

impl StepReport {
    fn of(step: &str, result: Result<String, String>) -> Self {
        Self {
            journal: vec![outcome(step, &result)],
            result,
            warnings: Vec::new(),
        }
    }
}

fn outcome(step: &str, result: &Result<String, String>) -> StepOutcome {
    StepOutcome {
        at: super::now_ms(),
        step: step.to_string(),
        ok: result.is_ok(),
        detail: match result {
            Ok(d) | Err(d) => d.clone(),
        },
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

/// Runs file work (which a hung file system could block for ever) on a
/// blocking thread, bounded by `timeout`.
async fn blocking(
    timeout: Duration,
    what: &str,
    work: impl FnOnce() -> Result<String, String> + Send + 'static,
) -> Result<String, String> {
    within(timeout, what, async {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| format!("{what}: {e}"))?
    })
    .await
}

/// Runs `step` at `site` and verifies it by reading back.
pub async fn set(step: ReadOnlyStep, site: &Site, timeout: Duration) -> StepReport {
    let name = step.name();
    match (step, &site.database, &site.read_only) {
        (ReadOnlyStep::Database, Some(database), _) => set_database(database, timeout).await,
        (ReadOnlyStep::FlagFile, _, flags) if flags.file.is_some() => {
            let result = match flags.file.clone() {
                Some(file) => blocking(timeout, name, move || set_file(&file)).await,
                None => Err(missing(step)),
            };
            StepReport::of(name, result)
        }
        (ReadOnlyStep::FlagSql, Some(database), flags) if flags.sql.is_some() => {
            let result = match &flags.sql {
                Some(sql) => within(timeout, name, flag_sql(database, sql, true, timeout)).await,
                None => Err(missing(step)),
            };
            StepReport::of(name, result)
        }
        (ReadOnlyStep::FlagHttp, _, flags) if flags.http.is_some() => {
            let result = match &flags.http {
                Some(http) => within(timeout, name, set_http(http, timeout)).await,
                None => Err(missing(step)),
            };
            StepReport::of(name, result)
        }
        _ => StepReport::of(name, Err(missing(step))),
    }
}

fn missing(step: ReadOnlyStep) -> String {
    format!("the site has no {} configured", step.name())
}

/// What reading a step back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// What the step sets is in place.
    Set,
    /// It is not: the flag file absent, the flag reads otherwise, the
    /// database writable.
    Clear,
    /// Neither: a flag file with other content.
    Other,
}

impl Seen {
    pub fn word(self) -> &'static str {
        match self {
            Seen::Set => "set",
            Seen::Clear => "clear",
            Seen::Other => "neither set nor clear",
        }
    }

    /// Set or clear.
    pub fn of(set: bool) -> Self {
        if set { Seen::Set } else { Seen::Clear }
    }
}

/// Reads back what `step` sets, changing nothing.
pub async fn verify(step: ReadOnlyStep, site: &Site, timeout: Duration) -> Result<String, String> {
    match observe(step, site, timeout).await? {
        (Seen::Set, detail) => Ok(detail),
        (Seen::Clear | Seen::Other, detail) => Err(detail),
    }
}

/// Whether what `step` sets is in place now, and what was read; an
/// error when it cannot be read. Changes nothing.
pub async fn observe(
    step: ReadOnlyStep,
    site: &Site,
    timeout: Duration,
) -> Result<(Seen, String), String> {
    let name = step.name();
    match (step, &site.database) {
        (ReadOnlyStep::Database, Some(database)) => {
            within(timeout, name, async {
                let mut db = Db::connect(&database.target, timeout).await?;
                let read = db.read_only_state().await;
                db.close().await;
                read.map(|(set, detail)| (Seen::of(set), detail))
            })
            .await
        }
        (ReadOnlyStep::FlagFile, _) => match site.read_only.file.clone() {
            Some(file) => {
                within(timeout, name, async {
                    tokio::task::spawn_blocking(move || read_back_file(&file))
                        .await
                        .map_err(|e| format!("{name}: {e}"))?
                })
                .await
            }
            None => Err(missing(step)),
        },
        (ReadOnlyStep::FlagSql, Some(database)) => match &site.read_only.sql {
            Some(FlagSql {
                verify: Some((query, expect)),
                ..
            }) => {
                within(timeout, name, async {
                    let mut db = Db::connect(&database.target, timeout).await?;
                    let value = db.value(query).await;
                    db.close().await;
                    Ok(match value?.as_deref() {
                        Some(v) if v == expect => (Seen::Set, format!("`{query}` reads {v}")),
                        other => (
                            Seen::Clear,
                            format!(
                                "`{query}` reads {}, expected {expect}",
                                other.unwrap_or("no row")
                            ),
                        ),
                    })
                })
                .await
            }
            Some(_) => Err("the flag SQL has no verify query to read back".into()),
            None => Err(missing(step)),
        },
        (ReadOnlyStep::FlagHttp, _) => match &site.read_only.http {
            Some(http) => within(timeout, name, check_http(http, timeout))
                .await
                .map(|(set, detail)| (Seen::of(set), detail)),
            None => Err(missing(step)),
        },
        (ReadOnlyStep::Database | ReadOnlyStep::FlagSql, None) => Err(missing(step)),
    }
}

/// Undoes `step`: removes the flag file, runs the flag's undo SQL or HTTP
/// call. The database's `read_only` stays: the secondary is a replica.
pub async fn undo(step: ReadOnlyStep, site: &Site, timeout: Duration) -> Result<String, String> {
    let name = format!("undo {}", step.name());
    match step {
        ReadOnlyStep::Database => {
            Ok("the database stays read-only: the secondary is a replica".into())
        }
        ReadOnlyStep::FlagFile => match site.read_only.file.clone() {
            Some(file) => blocking(timeout, &name, move || remove_file(&file)).await,
            None => Err(missing(step)),
        },
        ReadOnlyStep::FlagSql => match (&site.read_only.sql, &site.database) {
            (Some(sql), Some(database)) => {
                within(timeout, &name, flag_sql(database, sql, false, timeout)).await
            }
            _ => Err(missing(step)),
        },
        ReadOnlyStep::FlagHttp => match &site.read_only.http {
            Some(http) => within(timeout, &name, undo_http(http, timeout)).await,
            None => Err(missing(step)),
        },
    }
}

/// Whether `step` could run now at `site`, without changing anything:
/// the account's privileges, the flag file's folder, the flag SQL's
/// tables, the flag URLs.
pub async fn ready(step: ReadOnlyStep, site: &Site, timeout: Duration) -> Precheck {
    let name = step.name();
    let result = match step {
        ReadOnlyStep::Database => match &site.database {
            Some(database) => database_ready(database, timeout).await,
            None => Err(missing(step)),
        },
        ReadOnlyStep::FlagFile => match site.read_only.file.clone() {
            Some(file) => blocking(timeout, name, move || folder_writable(&file)).await,
            None => Err(missing(step)),
        },
        ReadOnlyStep::FlagSql => match (&site.read_only.sql, &site.database) {
            (Some(sql), Some(database)) => {
                within(timeout, name, sql_runnable(database, sql, timeout)).await
            }
            _ => Err(missing(step)),
        },
        ReadOnlyStep::FlagHttp => match &site.read_only.http {
            Some(http) => within(timeout, name, http_answering(http, timeout)).await,
            None => Err(missing(step)),
        },
    };
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(why) => (false, why),
    };
    Precheck {
        name: name.to_string(),
        ok,
        detail,
    }
}

/// The controller's account may set `read_only` and, when there are
/// application accounts to audit, read their grants (lacking the latter
/// is a warning unless `strict_grants`).
async fn database_ready(database: &Database, timeout: Duration) -> Result<String, String> {
    let audit = !database.app_accounts.is_empty();
    let lacking = within(timeout, ReadOnlyStep::Database.name(), async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let lacking = db.failover_privileges().await;
        db.close().await;
        lacking
    })
    .await?;
    match lacking {
        (Some(read_only), _) => Err(read_only),
        (None, Some(audit_lacks)) if audit && database.strict_grants => {
            Err(format!("{audit_lacks} (strict_grants)"))
        }
        (None, Some(audit_lacks)) if audit => Ok(format!(
            "the controller's account may set read_only; warning: {audit_lacks}, so the grant audit will not run"
        )),
        (None, _) if audit => Ok(
            "the controller's account may set read_only and read the application accounts' grants"
                .into(),
        ),
        (None, _) => Ok("the controller's account may set read_only".into()),
    }
}

/// `read_only` set and read back, then the audit of the application
/// accounts' grants, each bounded by `timeout` on its own: an audit that
/// cannot run or takes too long is a warning (a refusal with
/// `strict_grants`), never a reason to stay on a dead primary.
async fn set_database(database: &Database, timeout: Duration) -> StepReport {
    let step = ReadOnlyStep::Database.name();
    let set = within(timeout, step, async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let set = db.set_read_only().await;
        db.close().await;
        set
    })
    .await;
    let mut report = StepReport::of(step, set);
    if report.result.is_err() || database.app_accounts.is_empty() {
        return report;
    }
    let audit = within(timeout, "grant audit", async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let found = db.bypassing_accounts(&database.app_accounts).await;
        db.close().await;
        found
    })
    .await;
    let (result, warning) = match audit {
        Ok(bypassing) if bypassing.is_empty() => (
            Ok("no application account can bypass read_only".to_string()),
            None,
        ),
        Ok(bypassing) => {
            let text = format!(
                "application accounts could still write despite read_only: {}",
                bypassing.join(", ")
            );
            if database.strict_grants {
                (Err(format!("{text} (strict_grants)")), None)
            } else {
                (Ok(format!("warning: {text}")), Some(text))
            }
        }
        Err(e) => {
            let text = format!("the grant audit could not run: {e}");
            if database.strict_grants {
                (Err(format!("{text} (strict_grants)")), None)
            } else {
                (Ok(format!("warning: {text}")), Some(text))
            }
        }
    };
    report.journal.push(outcome("grant audit", &result));
    report.warnings.extend(warning);
    if let Err(e) = result {
        report.result = Err(e);
    }
    report
}

fn set_file(file: &FlagFile) -> Result<String, String> {
    write_atomically(&file.path, file.content.as_bytes())
        .map_err(|e| format!("cannot write the flag file {}: {e}", file.path.display()))?;
    match read_back_file(file)? {
        (Seen::Set, _) => Ok(format!(
            "flag file {} written and read back",
            file.path.display()
        )),
        (Seen::Clear | Seen::Other, detail) => Err(detail),
    }
}

fn read_back_file(file: &FlagFile) -> Result<(Seen, String), String> {
    match std::fs::read_to_string(&file.path) {
        Ok(text) if text == file.content => Ok((
            Seen::Set,
            format!("flag file {} is in place", file.path.display()),
        )),
        Ok(_) => Ok((
            Seen::Other,
            format!(
                "the flag file {} reads back different content",
                file.path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
            Seen::Clear,
            format!("the flag file {} is absent", file.path.display()),
        )),
        Err(e) => Err(format!(
            "cannot read back the flag file {}: {e}",
            file.path.display()
        )),
    }
}

fn remove_file(file: &FlagFile) -> Result<String, String> {
    let done = match std::fs::remove_file(&file.path) {
        Ok(()) => format!("flag file {} removed", file.path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("flag file {} already absent", file.path.display())
        }
        Err(e) => {
            return Err(format!(
                "cannot remove the flag file {}: {e}",
                file.path.display()
            ));
        }
    };
    if file.path.exists() {
        return Err(format!(
            "the flag file {} is still there",
            file.path.display()
        ));
    }
    Ok(done)
}

/// The flag file's folder exists and takes a new file (one is created and
/// removed again).
fn folder_writable(file: &FlagFile) -> Result<String, String> {
    let folder = file
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let probe = folder.join(".geofailover-ready-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map(|()| format!("the flag file's folder {} is writable", folder.display()))
        .map_err(|e| {
            format!(
                "the flag file {} cannot be written: its folder {}: {e}",
                file.path.display(),
                folder.display()
            )
        })
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

/// The flag's statements could run (`EXPLAIN` of each: the tables exist
/// and the account may write them) and its verify query answers.
async fn sql_runnable(
    database: &Database,
    sql: &FlagSql,
    timeout: Duration,
) -> Result<String, String> {
    let mut db = Db::connect(&database.target, timeout).await?;
    if let crate::db::Flavor::MySql { .. } = db.flavor {
        db.close().await;
        return Err(
            "on MySQL the database step sets super_read_only first, which refuses the flag SQL's writes: keep the application flag in a file or behind HTTP"
                .into(),
        );
    }
    let result = async {
        for statement in sql.enable.iter().chain(&sql.disable) {
            db.explain(statement).await?;
        }
        if let Some((query, _)) = &sql.verify {
            db.value(query).await?;
        }
        Ok(format!(
            "the flag SQL's {} statement(s) can run",
            sql.enable.len() + sql.disable.len()
        ))
    }
    .await;
    db.close().await;
    result
}

/// The flag's HTTP client: the flag's CA certificates, if given, as the
/// checks take theirs; no redirects (`http_client`).
fn client(http: &FlagHttp, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = crate::probe::http_client().timeout(timeout);
    if let Some(file) = &http.ca_file {
        builder = builder.tls_certs_merge(crate::probe::read_ca(file)?);
    }
    builder.build().map_err(|e| e.to_string())
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url_to_call: &str,
    expect: &[u16],
) -> Result<String, String> {
    let verb = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let url_shown = crate::probe::shown_url(url_to_call);
    let url = &url_shown;
    let status = client
        .request(verb, url_to_call)
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {}", crate::probe::describe_reqwest(e)))?
        .status()
        .as_u16();
    if expect.contains(&status) {
        Ok(format!("{method} {url} answered HTTP {status}"))
    } else {
        Err(format!(
            "{method} {url} answered HTTP {status}, expected {expect:?}"
        ))
    }
}

async fn set_http(http: &FlagHttp, timeout: Duration) -> Result<String, String> {
    let client = client(http, timeout)?;
    call(&client, &http.method, &http.url, &http.expect_status).await?;
    match check_http(http, timeout).await? {
        (true, detail) => Ok(detail),
        (false, detail) => Err(detail),
    }
}

async fn check_http(http: &FlagHttp, timeout: Duration) -> Result<(bool, String), String> {
    let client = client(http, timeout)?;
    let shown = crate::probe::shown_url(&http.check_url);
    let failed = |e| format!("GET {shown}: {}", crate::probe::describe_reqwest(e));
    let body = client
        .get(&http.check_url)
        .send()
        .await
        .map_err(failed)?
        .text()
        .await
        .map_err(failed)?;
    Ok(if body.contains(&http.check_contains) {
        (true, format!("{shown} reports {:?}", http.check_contains))
    } else {
        (
            false,
            format!("{shown} does not report {:?}", http.check_contains),
        )
    })
}

async fn undo_http(http: &FlagHttp, timeout: Duration) -> Result<String, String> {
    let client = client(http, timeout)?;
    call(
        &client,
        &http.undo_method,
        &http.undo_url,
        &http.expect_status,
    )
    .await
}

/// The flag's status URL answers with a success, and the hosts of the
/// set and undo URLs take connections.
async fn http_answering(http: &FlagHttp, timeout: Duration) -> Result<String, String> {
    let client = client(http, timeout)?;
    let shown = crate::probe::shown_url(&http.check_url);
    let status = client
        .get(&http.check_url)
        .send()
        .await
        .map_err(|e| format!("GET {shown}: {}", crate::probe::describe_reqwest(e)))?
        .status();
    if !status.is_success() {
        return Err(format!("GET {shown} answered HTTP {status}"));
    }
    for url in [&http.url, &http.undo_url] {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("{}: {e}", crate::probe::shown_url(url)))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| {
                format!(
                    "{}: cannot connect to {host}:{port}: {e}",
                    crate::probe::shown_url(url)
                )
            })?;
    }
    Ok(format!(
        "{shown} answers HTTP {}; the flag URLs' hosts take connections",
        status.as_u16()
    ))
}
