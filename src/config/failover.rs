//! The failover part of the configuration: the failover records, the two
//! sites with their addresses and checks, and the policy. Validated here
//! into types the engine and the probes use as they are.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::{Name, RecordType};

use super::{
    ConfigError, Location,
    raw::{
        RawCheck, RawDatabase, RawDbTls, RawDownRule, RawFailover, RawMode, RawReadOnly,
        RawRecordType, RawRole, RawSite,
    },
};
use crate::{
    db::{DbTarget, DbTls},
    engine::{CheckSpec, DownRule, EngineSpec, PromotionRules, ReplicationRules, Role, SiteSpec},
};

pub const DEFAULT_TTL: u32 = 30;
pub const MIN_TTL: u32 = 5;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_RISE: u32 = 3;
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(3600);
pub const DEFAULT_REPLICATION_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_REPLICATION_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(5);
pub const DEFAULT_FLAG_CLEAR_MARGIN: Duration = Duration::from_secs(5);
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_READINESS_INTERVAL: Duration = Duration::from_secs(60);

/// Validated failover configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    pub records: Vec<FailoverRecord>,
    pub auto: bool,
    pub cooldown: Duration,
    /// Primary first.
    pub sites: [Site; 2],
    pub replication: ReplicationSettings,
    pub flag_clear_margin: Duration,
    /// The longest one read-only step may take.
    pub step_timeout: Duration,
    /// How often the failover readiness checks run.
    pub readiness_interval: Duration,
    /// `mode: promote`: the second stage after read-only mode.
    pub promotion: Option<Promotion>,
}

/// `mode: promote`: when and how the secondary is made the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The primary down this long (the quorum's verdict) before the
    /// secondary is promoted by itself.
    pub after: Duration,
    /// The primary site's node, cut from the cluster this long, fences
    /// its own database.
    pub fence_after: Duration,
    /// Promote by itself even when acknowledged writes could be lost.
    pub allow_data_loss: bool,
    /// The primary site's node keeps a heartbeat in its database, and an
    /// event there fences the database when the beat stops.
    pub fence_heartbeat: bool,
    /// The account the old primary replicates from the new one with.
    pub replication_user: String,
    pub replication_password: Secret,
}

pub const DEFAULT_PROMOTE_AFTER: Duration = Duration::from_secs(300);
pub const DEFAULT_FENCE_AFTER: Duration = Duration::from_secs(15);

/// One part of a site's read-only mode, in the order they are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadOnlyStep {
    /// The database's `read_only` (MySQL: `super_read_only`), with the
    /// audit of the application accounts' grants.
    Database,
    FlagFile,
    FlagSql,
    FlagHttp,
}

impl ReadOnlyStep {
    /// As the journal names it.
    pub fn name(self) -> &'static str {
        match self {
            ReadOnlyStep::Database => "database read_only",
            ReadOnlyStep::FlagFile => "flag file",
            ReadOnlyStep::FlagSql => "flag SQL",
            ReadOnlyStep::FlagHttp => "flag HTTP call",
        }
    }
}

/// How the replication watcher runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_lag: Duration,
}

/// A site's database and the accounts audited there.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub target: DbTarget,
    pub app_accounts: Vec<String>,
    pub strict_grants: bool,
    /// Where the other site's server reaches this one to replicate.
    pub replication_address: SocketAddr,
}

/// The application's read-only flag: any of a file, SQL, an HTTP call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOnlyFlags {
    pub file: Option<FlagFile>,
    pub sql: Option<FlagSql>,
    pub http: Option<FlagHttp>,
}

impl ReadOnlyFlags {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.sql.is_none() && self.http.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagFile {
    pub path: PathBuf,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagSql {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    /// A query and the value it must return while the flag is set.
    pub verify: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagHttp {
    pub method: String,
    pub url: String,
    pub expect_status: Vec<u16>,
    pub check_url: String,
    pub check_contains: String,
    pub undo_method: String,
    pub undo_url: String,
    /// The CA certificates the URLs' TLS is checked against.
    pub ca_file: Option<PathBuf>,
}

/// A name whose answer follows the active site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRecord {
    pub name: Name,
    /// A or AAAA.
    pub rtype: RecordType,
    pub ttl: u32,
    pub config_line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    pub role: Role,
    /// The addresses for each failover record, in the records' order.
    pub addresses: Vec<Vec<IpAddr>>,
    pub down_rule: DownRule,
    pub checks: Vec<Check>,
    pub database: Option<Database>,
    pub read_only: ReadOnlyFlags,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp { address: SocketAddr },
    Mysql(DbTarget),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    pub host: Option<String>,
    pub expect_status: Vec<u16>,
    pub body_contains: Option<String>,
    pub tls_verify: bool,
    pub ca_file: Option<PathBuf>,
}

/// A password or token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads a secret from a file (trailing newline dropped) or an environment
/// variable; the error names where it looked, never the value.
pub fn read_secret(file: Option<&Path>, env: Option<&str>) -> Result<Secret, String> {
    match (file, env) {
        (Some(file), None) => std::fs::read_to_string(file)
            .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| format!("cannot read the secret file {}: {e}", file.display())),
        (None, Some(var)) => std::env::var(var)
            .map(Secret)
            .map_err(|_| format!("the environment variable {var} is not set")),
        (Some(_), Some(_)) => {
            Err("give either a password file or an environment variable, not both".into())
        }
        (None, None) => Err("expected password_file or password_env".into()),
    }
}

impl Site {
    /// The read-only steps this site has, in the order they are set.
    pub fn read_only_steps(&self) -> Vec<ReadOnlyStep> {
        let mut steps = Vec::new();
        if self.database.is_some() {
            steps.push(ReadOnlyStep::Database);
        }
        if self.read_only.file.is_some() {
            steps.push(ReadOnlyStep::FlagFile);
        }
        if self.read_only.sql.is_some() && self.database.is_some() {
            steps.push(ReadOnlyStep::FlagSql);
        }
        if self.read_only.http.is_some() {
            steps.push(ReadOnlyStep::FlagHttp);
        }
        steps
    }
}

impl Failover {
    pub fn site(&self, role: Role) -> &Site {
        match role {
            Role::Primary => &self.sites[0],
            Role::Secondary => &self.sites[1],
        }
    }

    /// What the engine needs of this configuration.
    pub fn engine_spec(&self) -> EngineSpec {
        let site = |s: &Site| SiteSpec {
            name: s.name.clone(),
            down_rule: s.down_rule,
            checks: s
                .checks
                .iter()
                .map(|c| CheckSpec {
                    name: c.name.clone(),
                    fall: c.fall,
                    rise: c.rise,
                })
                .collect(),
        };
        let secondary = &self.sites[1];
        let both_databases = self.sites.iter().all(|s| s.database.is_some());
        let max_ttl = self.records.iter().map(|r| r.ttl).max().unwrap_or(0);
        let settings = &self.replication;
        EngineSpec {
            sites: [site(&self.sites[0]), site(&self.sites[1])],
            auto_failover: self.auto,
            cooldown_ms: self.cooldown.as_millis() as u64,
            read_only: secondary.database.is_some() || !secondary.read_only.is_empty(),
            replication: both_databases.then(|| ReplicationRules {
                max_lag_s: settings.max_lag.as_secs(),
                stale_ms: (settings.interval * 3 + settings.timeout).as_millis() as u64,
            }),
            flag_clear_delay_ms: u64::from(max_ttl) * 1000
                + self.flag_clear_margin.as_millis() as u64,
            prepare_timeout_ms: self.prepare_timeout().as_millis() as u64,
            settle_ms: self.settle_time().as_millis() as u64,
            promotion: self.promotion.as_ref().map(|p| PromotionRules {
                after_ms: p.after.as_millis() as u64,
                allow_data_loss: p.allow_data_loss,
            }),
        }
    }

    /// How long preparing the secondary's read-only mode may take: each
    /// step its timeout, plus a margin for storing progress.
    pub fn prepare_timeout(&self) -> Duration {
        let steps = self.sites[1].read_only_steps().len().max(1) as u32;
        self.step_timeout * (steps + 1)
    }

    /// How long after a start every check has had the results it needs to
    /// count up or down, with a margin.
    pub fn settle_time(&self) -> Duration {
        self.sites
            .iter()
            .flat_map(|s| &s.checks)
            .map(|c| c.interval * c.fall.max(c.rise) + c.timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(2)
    }
}

/// Validates the `failover` and `sites` sections.
pub(super) fn validate(
    path: &Path,
    text: &str,
    failover: Option<RawFailover>,
    sites: Vec<RawSite>,
) -> Result<Option<Failover>, ConfigError> {
    let at = |line: Option<usize>, message: String| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line,
        },
        message,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let failover = match (failover, sites.is_empty()) {
        (None, true) => return Ok(None),
        (None, false) => {
            return Err(at(
                super::line_of(text, "sites:"),
                "sites are configured but there is no failover section: expected failover.records"
                    .into(),
            ));
        }
        (Some(_), true) => {
            return Err(at(
                super::line_of(text, "failover:"),
                "failover is configured but there are no sites: expected a primary and a secondary site".into(),
            ));
        }
        (Some(f), false) => f,
    };

    if failover.records.is_empty() {
        return Err(at(
            super::line_of(text, "records"),
            "failover.records is empty: expected at least one record such as {name: www.example.com, type: A}".into(),
        ));
    }
    let mut records: Vec<FailoverRecord> = Vec::new();
    for raw in &failover.records {
        let line = super::line_of(text, &raw.name);
        let mut name = Name::from_utf8(&raw.name).map_err(|e| {
            at(
                line,
                format!("failover record `{}` is not a domain name: {e}", raw.name),
            )
        })?;
        name.set_fqdn(true);
        let rtype = match raw.rtype {
            RawRecordType::A => RecordType::A,
            RawRecordType::AAAA => RecordType::AAAA,
        };
        let ttl = raw.ttl.unwrap_or(DEFAULT_TTL);
        if ttl < MIN_TTL {
            return Err(at(
                line,
                format!(
                    "failover record {name} {rtype}: TTL {ttl} is below the minimum of {MIN_TTL} seconds"
                ),
            ));
        }
        if records.iter().any(|r| r.name == name && r.rtype == rtype) {
            return Err(at(
                line,
                format!("failover record {name} {rtype} is listed twice"),
            ));
        }
        records.push(FailoverRecord {
            name,
            rtype,
            ttl,
            config_line: line,
        });
    }

    if sites.len() != 2 {
        return Err(at(
            super::line_of(text, "sites:"),
            format!(
                "{} sites configured: expected exactly two, one with role primary and one with role secondary",
                sites.len()
            ),
        ));
    }
    let mut built = Vec::new();
    for raw in sites {
        built.push(validate_site(path, text, base, &records, raw)?);
    }
    let (Some(secondary), Some(primary)) = (built.pop(), built.pop()) else {
        return Err(at(None, "expected two sites".into()));
    };
    let (primary, secondary) = match (primary.role, secondary.role) {
        (Role::Primary, Role::Secondary) => (primary, secondary),
        (Role::Secondary, Role::Primary) => (secondary, primary),
        (role, _) => {
            return Err(at(
                super::line_of(text, "role:"),
                format!("both sites have role {role}: expected one primary and one secondary"),
            ));
        }
    };
    if primary.name == secondary.name {
        return Err(at(
            super::line_of(text, &primary.name),
            format!("both sites are named `{}`", primary.name),
        ));
    }
    let replication = failover.replication.as_ref();
    let settings = ReplicationSettings {
        interval: replication
            .and_then(|r| r.interval)
            .unwrap_or(DEFAULT_REPLICATION_INTERVAL),
        timeout: replication
            .and_then(|r| r.timeout)
            .unwrap_or(DEFAULT_REPLICATION_TIMEOUT),
        max_lag: replication
            .and_then(|r| r.max_lag)
            .unwrap_or(DEFAULT_MAX_LAG),
    };
    let step_timeout = failover.step_timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
    if step_timeout < Duration::from_secs(1) {
        return Err(at(
            super::line_of(text, "step_timeout"),
            "failover.step_timeout: expected at least 1s".into(),
        ));
    }
    let readiness_interval = failover
        .readiness_interval
        .unwrap_or(DEFAULT_READINESS_INTERVAL);
    if readiness_interval < Duration::from_secs(1) {
        return Err(at(
            super::line_of(text, "readiness_interval"),
            "failover.readiness_interval: expected at least 1s".into(),
        ));
    }
    if settings.interval < MIN_INTERVAL || settings.timeout.is_zero() {
        return Err(at(
            super::line_of(text, "replication:"),
            "failover.replication: interval must be at least 100ms and timeout above zero".into(),
        ));
    }
    let promotion = match failover.mode {
        None | Some(RawMode::ReadOnly) => {
            for (key, set) in [
                ("promote_after", failover.promote_after.is_some()),
                ("fence_after", failover.fence_after.is_some()),
                ("allow_data_loss", failover.allow_data_loss.is_some()),
                ("fence_heartbeat", failover.fence_heartbeat.is_some()),
            ] {
                if set {
                    return Err(at(
                        super::line_of(text, key),
                        format!(
                            "failover.{key} is for `mode: promote`; with read-only mode (the default) the secondary is never made writable"
                        ),
                    ));
                }
            }
            None
        }
        Some(RawMode::Promote) => Some(validate_promotion(
            text,
            base,
            &failover,
            [&primary, &secondary],
            &at,
        )?),
    };
    Ok(Some(Failover {
        promotion,
        records,
        auto: failover.auto.unwrap_or(true),
        cooldown: failover.cooldown.unwrap_or(DEFAULT_COOLDOWN),
        sites: [primary, secondary],
        replication: settings,
        flag_clear_margin: failover
            .flag_clear_margin
            .unwrap_or(DEFAULT_FLAG_CLEAR_MARGIN),
        step_timeout,
        readiness_interval,
    }))
}

/// `mode: promote`: both sites have databases, the replication account
/// is given, and the self-fence comes well before a promotion.
fn validate_promotion(
    text: &str,
    base: &Path,
    failover: &RawFailover,
    sites: [&Site; 2],
    at: &impl Fn(Option<usize>, String) -> ConfigError,
) -> Result<Promotion, ConfigError> {
    let mode_line = super::line_of(text, "mode:");
    if let Some(site) = sites.iter().find(|s| s.database.is_none()) {
        return Err(at(
            mode_line,
            format!(
                "failover.mode: promote needs a database at both sites; site {} has none",
                site.name
            ),
        ));
    }
    let after = failover.promote_after.unwrap_or(DEFAULT_PROMOTE_AFTER);
    let fence_after = failover.fence_after.unwrap_or(DEFAULT_FENCE_AFTER);
    if after < Duration::from_secs(1) {
        return Err(at(
            super::line_of(text, "promote_after"),
            "failover.promote_after: expected at least 1s".into(),
        ));
    }
    if fence_after >= after {
        return Err(at(
            super::line_of(text, "fence_after").or(super::line_of(text, "promote_after")),
            format!(
                "failover.fence_after ({}) must be below promote_after ({}): the old primary's node fences itself before the secondary may be promoted",
                super::duration::show(fence_after),
                super::duration::show(after)
            ),
        ));
    }
    let replication = failover.replication.as_ref();
    let line = super::line_of(text, "replication:").or(mode_line);
    let Some(user) = replication.and_then(|r| r.user.clone()) else {
        return Err(at(
            line,
            "failover.mode: promote needs failover.replication.user (with password_file or password_env): the account the old primary replicates from the new primary with".into(),
        ));
    };
    let file = replication
        .and_then(|r| r.password_file.as_ref())
        .map(|f| base.join(f));
    let password = read_secret(
        file.as_deref(),
        replication.and_then(|r| r.password_env.as_deref()),
    )
    .map_err(|e| at(line, format!("failover.replication: {e}")))?;
    Ok(Promotion {
        after,
        fence_after,
        allow_data_loss: failover.allow_data_loss.unwrap_or(false),
        fence_heartbeat: failover.fence_heartbeat.unwrap_or(false),
        replication_user: user,
        replication_password: password,
    })
}

fn validate_site(
    path: &Path,
    text: &str,
    base: &Path,
    records: &[FailoverRecord],
    raw: RawSite,
) -> Result<Site, ConfigError> {
    let site_line = super::line_of(text, &format!("name: {}", raw.name));
    let near =
        |needle: &str| super::line_of_from(text, site_line.unwrap_or(1), needle).or(site_line);
    let at = |line: Option<usize>, message: String| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line,
        },
        message: format!("site {}: {message}", raw.name),
    };
    let mut addresses = Vec::new();
    for record in records {
        let key = record.name.to_string();
        let found = raw.addresses.iter().find(|(name, _)| {
            name.trim_end_matches('.')
                .eq_ignore_ascii_case(key.trim_end_matches('.'))
        });
        let Some((written, list)) = found else {
            return Err(at(
                near("addresses"),
                format!(
                    "no addresses for the failover record {key}: expected `{}: [address, ...]`",
                    key.trim_end_matches('.')
                ),
            ));
        };
        if list.is_empty() {
            return Err(at(
                near(written),
                format!("the address list for {key} is empty"),
            ));
        }
        // One list per name: a name that is a failover record for A and
        // AAAA lists both families, and each type answers its own.
        let family = |ip: &IpAddr| match ip {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        };
        for ip in list {
            let answered = records
                .iter()
                .any(|r| r.name == record.name && r.rtype == family(ip));
            if !answered {
                return Err(at(
                    near(written),
                    format!(
                        "{ip} cannot answer {key}: it is a failover record of type {} only (add a record of type {} for the name to serve both)",
                        record.rtype,
                        family(ip)
                    ),
                ));
            }
        }
        let own: Vec<IpAddr> = list
            .iter()
            .copied()
            .filter(|ip| family(ip) == record.rtype)
            .collect();
        if own.is_empty() {
            return Err(at(
                near(written),
                format!(
                    "no {} address for {key}, a failover record of type {}",
                    if record.rtype == RecordType::A {
                        "IPv4"
                    } else {
                        "IPv6"
                    },
                    record.rtype
                ),
            ));
        }
        addresses.push(own);
    }
    for written in raw.addresses.keys() {
        let known = records.iter().any(|r| {
            r.name
                .to_string()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(written.trim_end_matches('.'))
        });
        if !known {
            return Err(at(
                near(written),
                format!("addresses for {written}, which is not a failover record"),
            ));
        }
    }

    if raw.checks.is_empty() {
        return Err(at(
            near("checks"),
            "no checks: expected at least one".into(),
        ));
    }
    let mut checks: Vec<Check> = Vec::new();
    for check in raw.checks {
        let line = near(&format!("name: {}", check.name));
        if checks.iter().any(|c| c.name == check.name) {
            return Err(at(line, format!("two checks are named `{}`", check.name)));
        }
        checks.push(validate_check(base, check).map_err(|m| at(line, m))?);
    }
    let down_rule = match raw.down_when.unwrap_or(RawDownRule::All) {
        RawDownRule::All => DownRule::All,
        RawDownRule::Any => DownRule::Any,
        RawDownRule::AtLeast(n) if n >= 1 && n as usize <= checks.len() => DownRule::AtLeast(n),
        RawDownRule::AtLeast(n) => {
            return Err(at(
                near("down_when"),
                format!(
                    "down_when at_least {n}: expected a number from 1 to {}, its number of checks",
                    checks.len()
                ),
            ));
        }
    };
    let database = match raw.database {
        Some(db) => Some(validate_database(base, db).map_err(|m| at(near("database:"), m))?),
        None => None,
    };
    let read_only = match raw.read_only {
        Some(flags) => validate_flags(base, flags, database.is_some())
            .map_err(|m| at(near("read_only:"), m))?,
        None => ReadOnlyFlags::default(),
    };
    Ok(Site {
        database,
        read_only,
        name: raw.name,
        role: match raw.role {
            RawRole::Primary => Role::Primary,
            RawRole::Secondary => Role::Secondary,
        },
        addresses,
        down_rule,
        checks,
    })
}

fn validate_database(base: &Path, raw: RawDatabase) -> Result<Database, String> {
    let file = raw.password_file.as_ref().map(|f| base.join(f));
    let password = read_secret(file.as_deref(), raw.password_env.as_deref())
        .map_err(|e| format!("database: {e}"))?;
    for account in &raw.app_accounts {
        if account.matches('@').count() != 1 || account.starts_with('@') {
            return Err(format!(
                "database.app_accounts: `{account}`: expected user@host, such as app@%"
            ));
        }
    }
    Ok(Database {
        target: DbTarget {
            address: raw.address,
            user: raw.user,
            password,
            tls: raw
                .tls
                .map(|tls| validate_db_tls(base, tls))
                .transpose()
                .map_err(|e| format!("database.tls: {e}"))?,
        },
        app_accounts: raw.app_accounts,
        strict_grants: raw.strict_grants.unwrap_or(false),
        replication_address: raw.replication_address.unwrap_or(raw.address),
    })
}

/// A database's TLS settings: the files exist and hold what they should,
/// the server name is one a certificate can carry.
fn validate_db_tls(base: &Path, raw: RawDbTls) -> Result<DbTls, String> {
    use rustls::pki_types::{PrivateKeyDer, ServerName, pem::PemObject};
    let ca_file = raw.ca_file.map(|f| base.join(f));
    if let Some(file) = &ca_file
        && crate::probe::read_ca(file)?.is_empty()
    {
        return Err(format!(
            "ca_file {}: no PEM certificate in it",
            file.display()
        ));
    }
    if let Some(name) = &raw.server_name
        && ServerName::try_from(name.as_str()).is_err()
    {
        return Err(format!(
            "server_name `{name}`: expected a host name or an IP address"
        ));
    }
    let identity = match (raw.client_cert, raw.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert, key) = (base.join(cert), base.join(key));
            if crate::probe::read_ca(&cert)?.is_empty() {
                return Err(format!(
                    "client_cert {}: no PEM certificate in it",
                    cert.display()
                ));
            }
            // The key's text is never part of an error.
            PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                format!(
                    "client_key {}: expected a PEM private key: {}",
                    key.display(),
                    match e {
                        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                        _ => "none found".into(),
                    }
                )
            })?;
            Some((cert, key))
        }
        _ => return Err("client_cert and client_key go together".into()),
    };
    Ok(DbTls {
        ca_file,
        verify: raw.verify.unwrap_or(true),
        server_name: raw.server_name,
        identity,
    })
}

fn validate_flags(
    base: &Path,
    raw: RawReadOnly,
    has_database: bool,
) -> Result<ReadOnlyFlags, String> {
    let file = raw.flag_file.map(|f| FlagFile {
        path: base.join(f.path),
        content: f.content.unwrap_or_else(|| "read-only\n".into()),
    });
    let sql = match raw.sql {
        Some(_) if !has_database => {
            return Err("read_only.sql runs on the site's database: add a database section".into());
        }
        Some(sql) => Some(FlagSql {
            enable: sql.enable,
            disable: sql.disable,
            verify: sql.verify.map(|v| (v.query, v.expect)),
        }),
        None => None,
    };
    let http = match raw.http {
        Some(h) => {
            for url in [&h.url, &h.check_url, &h.undo_url] {
                reqwest::Url::parse(url).map_err(|e| {
                    format!(
                        "read_only.http: `{}` is not a URL: {e}",
                        crate::probe::shown_url(url)
                    )
                })?;
            }
            let ca_file = h.ca_file.map(|f| base.join(f));
            if let Some(file) = &ca_file {
                crate::probe::read_ca(file).map_err(|e| format!("read_only.http.ca_file: {e}"))?;
            }
            Some(FlagHttp {
                method: h
                    .method
                    .unwrap_or_else(|| "POST".into())
                    .to_ascii_uppercase(),
                url: h.url,
                expect_status: h.expect_status.unwrap_or_else(|| vec![200, 204]),
                check_url: h.check_url,
                check_contains: h.check_contains,
                undo_method: h
                    .undo_method
                    .unwrap_or_else(|| "POST".into())
                    .to_ascii_uppercase(),
                undo_url: h.undo_url,
                ca_file,
            })
        }
        None => None,
    };
    Ok(ReadOnlyFlags { file, sql, http })
}

fn validate_check(base: &Path, raw: RawCheck) -> Result<Check, String> {
    let name = raw.name;
    let kind = match (raw.http, raw.tcp, raw.mysql) {
        (Some(http), None, None) => {
            let url = reqwest::Url::parse(&http.url)
                .map_err(|e| format!("check {name}: `{}` is not a URL: {e}", http.url))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "check {name}: `{}`: expected an http:// or https:// URL with a host",
                    http.url
                ));
            }
            let method = http
                .method
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase();
            if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
                return Err(format!("check {name}: `{method}` is not an HTTP method"));
            }
            let expect_status = http.expect_status.unwrap_or_else(|| vec![200]);
            if expect_status.is_empty() || expect_status.iter().any(|s| !(100..=599).contains(s)) {
                return Err(format!(
                    "check {name}: expect_status {expect_status:?}: expected HTTP status codes from 100 to 599"
                ));
            }
            let ca_file = http.ca_file.map(|f| base.join(f));
            if let Some(file) = &ca_file
                && !file.is_file()
            {
                return Err(format!(
                    "check {name}: ca_file {} does not exist",
                    file.display()
                ));
            }
            CheckKind::Http(HttpCheck {
                url: url.to_string(),
                method,
                host: http.host,
                expect_status,
                body_contains: http.body_contains,
                tls_verify: http.tls_verify.unwrap_or(true),
                ca_file,
            })
        }
        (None, Some(tcp), None) => CheckKind::Tcp {
            address: tcp.address,
        },
        (None, None, Some(mysql)) => {
            let file = mysql.password_file.as_ref().map(|f| base.join(f));
            let password = read_secret(file.as_deref(), mysql.password_env.as_deref())
                .map_err(|e| format!("check {name}: {e}"))?;
            CheckKind::Mysql(DbTarget {
                address: mysql.address,
                user: mysql.user,
                password,
                tls: mysql
                    .tls
                    .map(|tls| validate_db_tls(base, tls))
                    .transpose()
                    .map_err(|e| format!("check {name}: mysql.tls: {e}"))?,
            })
        }
        _ => {
            return Err(format!(
                "check {name}: expected exactly one of http, tcp or mysql"
            ));
        }
    };
    let interval = raw.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = raw.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if interval < MIN_INTERVAL {
        return Err(format!(
            "check {name}: interval {interval:?} is below the minimum of 100ms"
        ));
    }
    if timeout.is_zero() || timeout > interval {
        return Err(format!(
            "check {name}: timeout {} must be above zero and at most the interval {}",
            super::duration::show(timeout),
            super::duration::show(interval)
        ));
    }
    let fall = raw.fall.unwrap_or(DEFAULT_FALL);
    let rise = raw.rise.unwrap_or(DEFAULT_RISE);
    if fall == 0 || rise == 0 {
        return Err(format!("check {name}: fall and rise must be at least 1"));
    }
    Ok(Check {
        name,
        kind,
        interval,
        timeout,
        fall,
        rise,
    })
}
