//! The command line: one subcommand per job. Each returns a `Failure` that
//! says which exit code it deserves.

mod check;
mod client;
mod demo;
mod dnssec;
mod serve;

use std::{fmt, path::PathBuf};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "geofailover",
    version,
    about = "Authoritative DNS with health-checked failover to an offsite secondary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configured zones over UDP and TCP (SIGHUP reloads).
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "config/example.yaml")]
        config: PathBuf,
        /// With several nodes: which of them this controller is.
        #[arg(long)]
        node: Option<String>,
    },
    /// Check the configuration and every zone it names, then exit.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "config/example.yaml")]
        config: PathBuf,
        /// Also check, changing nothing, that every step of a failover
        /// could run now (privileges at the secondary's database, the flag
        /// file's folder, the flag SQL's tables, the flag URLs, the state
        /// directory); exit 1 when one could not.
        #[arg(long)]
        live: bool,
        /// With several nodes: check as this one.
        #[arg(long)]
        node: Option<String>,
    },
    /// Show what a running controller sees and decides.
    Status {
        #[command(flatten)]
        target: client::Target,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Switch traffic to the secondary while the primary may be healthy.
    Failover {
        #[command(flatten)]
        target: client::Target,
        /// Why: kept in the journal.
        #[arg(long)]
        reason: String,
        /// Move traffic even if read-only mode cannot be verified.
        #[arg(long)]
        force: bool,
    },
    /// Move traffic back to the primary, after the pre-checks pass.
    Failback {
        #[command(flatten)]
        target: client::Target,
        /// Only show the pre-checks.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Make the secondary the primary (failover.mode: promote): the old
    /// primary fenced first, the secondary made writable.
    Promote {
        #[command(flatten)]
        target: client::Target,
        /// The old primary is down and takes no writes, on your word:
        /// promote without verifying its fence (when it cannot be reached).
        #[arg(long)]
        primary_is_down: bool,
    },
    /// After a promotion: hold the old primary's rejoin while you rebuild
    /// it (geofailover leaves it alone but read-only), or release the hold.
    Rejoin {
        #[command(flatten)]
        target: client::Target,
        /// Leave the old primary to the operator until released.
        #[arg(long, conflicts_with = "release", required_unless_present = "release")]
        hold: bool,
        /// Rejoin it again: fenced, compared, made a replica when it holds
        /// nothing the new primary lacks.
        #[arg(long)]
        release: bool,
    },
    /// Stop automatic failover until resumed.
    Pause {
        #[command(flatten)]
        target: client::Target,
    },
    /// Allow automatic failover again.
    Resume {
        #[command(flatten)]
        target: client::Target,
    },
    /// Read the configuration and zones again (as SIGHUP does); print what
    /// changed and, with several nodes, which node serves which content.
    Reload {
        #[command(flatten)]
        target: client::Target,
    },
    /// Rehearse a failover and fail-back for real, verified and timed.
    Drill {
        #[command(flatten)]
        target: client::Target,
        /// How long to stay on the secondary (default: the config's drill.hold).
        #[arg(long)]
        hold: Option<String>,
        /// Lower the failover records' TTL to this first, such as 5s.
        #[arg(long)]
        lower_ttl: Option<String>,
        /// Print the plan and the pre-checks; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// In failover.mode: promote, rehearse read-only mode only (no
        /// promotion, no switchover back).
        #[arg(long)]
        read_only: bool,
        /// Print the last drill's report.
        #[arg(long)]
        last: bool,
    },
    /// Signed zones (DNSSEC): their keys, and the DS records for the parent.
    Dnssec {
        #[command(subcommand)]
        command: dnssec::DnssecCommand,
    },
    /// Run the controller on loopback with two stand-in sites to try it out.
    Demo,
    /// Print the manual page (roff); with a folder, write there the pages
    /// of the command and of each subcommand.
    Man {
        /// Where to write geofailover.1 and geofailover-SUBCOMMAND.1.
        dir: Option<PathBuf>,
    },
    /// Print the completion script for a shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The configuration or a zone is wrong: exit code 2.
    Config(String),
    /// Anything else: exit code 1.
    Other(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Other(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(message) => write!(f, "{message}"),
            Failure::Other(error) => write!(f, "error: {error:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default level. hickory's
/// own per-query lines are off unless asked for.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,hickory_server=warn,hickory_net=warn,hickory_proto=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve { config, node } => serve::run(&config, node.as_deref()),
        Command::Check { config, live, node } => check::run(&config, live, node.as_deref()),
        Command::Status { target, json } => client::status(&target, json),
        Command::Failover {
            target,
            reason,
            force,
        } => client::failover(&target, &reason, force),
        Command::Failback {
            target,
            dry_run,
            yes,
        } => client::failback(&target, dry_run, yes),
        Command::Promote {
            target,
            primary_is_down,
        } => client::promote(&target, primary_is_down),
        Command::Rejoin { target, hold, .. } => client::rejoin(&target, hold),
        Command::Pause { target } => client::pause(&target, false),
        Command::Resume { target } => client::pause(&target, true),
        Command::Reload { target } => client::reload(&target),
        Command::Drill {
            target,
            hold,
            lower_ttl,
            dry_run,
            read_only,
            last,
        } => client::drill(&target, hold, lower_ttl, dry_run, read_only, last),
        Command::Dnssec { command } => dnssec::run(command),
        Command::Demo => demo::run(),
        Command::Man { dir } => manual(dir.as_deref()).map_err(|e| Failure::Other(e.into())),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "geofailover",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// What the manual adds to what the command line says of itself.
const MANUAL_END: &str = r#".SH EXIT STATUS
0 when the command succeeded; 1 when it failed (a controller that cannot
be reached, a refused command, a failed drill, \fBcheck \-\-live\fR
finding a step that could not run); 2 for bad usage, a bad configuration
or zone file (the error names the file and line).
.SH SIGNALS
\fBserve\fR reloads its configuration and zones on SIGHUP (the old ones
keep answering when the new ones are wrong) and stops cleanly on SIGTERM
or SIGINT.
.SH FILES
.TP
\fI/etc/geofailover/config.yaml\fR
The configuration the packaged service runs (\fBExecStartPre\fR runs
\fBgeofailover check\fR on it).
.TP
\fI/etc/geofailover/zones/\fR
Zone files (RFC 1035 text).
.TP
\fI/etc/geofailover/environment\fR
Optional: variables for the service, such as the database password.
.TP
\fI/var/lib/geofailover/\fR
State: the active site and epoch, the journal, drill reports, the API
token (\fIapi.token\fR).
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter, such as \fIinfo\fR or \fIgeofailover=debug\fR.
.SH SEE ALSO
\fBgeofailover\-serve\fR(1), \fBgeofailover\-check\fR(1),
\fBgeofailover\-drill\fR(1), \fBsystemctl\fR(1), \fBdig\fR(1)
"#;

/// Writes the manual page to stdout, or every page into `dir`.
fn manual(dir: Option<&std::path::Path>) -> std::io::Result<()> {
    use clap::CommandFactory;
    let command = Cli::command();
    let page = |command: clap::Command, out: &mut dyn std::io::Write| -> std::io::Result<()> {
        let top = command.get_name() == "geofailover";
        clap_mangen::Man::new(command).render(out)?;
        if top {
            out.write_all(MANUAL_END.as_bytes())?;
        }
        Ok(())
    };
    let Some(dir) = dir else {
        return page(command, &mut std::io::stdout().lock());
    };
    std::fs::create_dir_all(dir)?;
    let mut command = command;
    command.build();
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap keeps names as &'static str; this command ends right after.
        let name: &'static str = format!("geofailover-{}", sub.get_name()).leak();
        let sub = sub.clone().name(name).bin_name(name.replacen('-', " ", 1));
        page(
            sub,
            &mut std::fs::File::create(dir.join(format!("{name}.1")))?,
        )?;
    }
    page(
        command,
        &mut std::fs::File::create(dir.join("geofailover.1"))?,
    )
}
