//! The Debian package, for real, on this machine (as root, as the tests
//! run): built by config/debian/build.sh, installed with `dpkg -i`, its
//! unit verified by `systemd-analyze verify`, the installed binary run the
//! way the unit runs it (its user, its one capability, no new privileges,
//! its config and state directory) answering on 127.0.0.1:53, the man
//! page rendered and the bash completion asked, then `dpkg --purge`
//! leaving nothing behind but the system user (Debian policy keeps it).

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::{Process, a_records, status_json, wait_until};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run: {e}: run tests/run.sh"))
}

fn succeeded(what: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// setpriv's arguments for what the unit sets: User=, Group=,
/// AmbientCapabilities=CAP_NET_BIND_SERVICE (with the bounding set of
/// CapabilityBoundingSet=), NoNewPrivileges=.
const AS_THE_UNIT: [&str; 6] = [
    "--reuid=geofailover",
    "--regid=geofailover",
    "--init-groups",
    "--inh-caps=-all,+net_bind_service",
    "--ambient-caps=-all,+net_bind_service",
    "--no-new-privs",
];

fn purge() -> Output {
    run("dpkg", &["--purge", "geofailover"])
}

#[test]
fn the_debian_package_installs_runs_as_its_user_and_purges_clean() {
    assert_eq!(
        nix_uid(),
        0,
        "installing a package needs root: run the tests as root"
    );
    // What an earlier run that failed midway left.
    let _ = purge();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new("bash")
        .arg(repo.join("config/debian/build.sh"))
        .env("GEOFAILOVER_BIN", env!("CARGO_BIN_EXE_geofailover"))
        .current_dir(repo)
        .output()
        .expect("run config/debian/build.sh");
    let deb = succeeded("config/debian/build.sh", &built);
    let deb = repo.join(deb.trim());
    let name = deb
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with(&format!("geofailover_{}_", env!("CARGO_PKG_VERSION")))
            && name.ends_with(".deb"),
        "{name}"
    );
    let contents = succeeded(
        "dpkg-deb --contents",
        &run("dpkg-deb", &["--contents", &deb.to_string_lossy()]),
    );
    for path in [
        "./usr/bin/geofailover",
        "./etc/geofailover/config.yaml",
        "./etc/geofailover/zones/example.com.zone",
        "./usr/lib/systemd/system/geofailover.service",
        "./usr/share/man/man1/geofailover.1.gz",
        "./usr/share/man/man1/geofailover-serve.1.gz",
        "./usr/share/bash-completion/completions/geofailover",
        "./usr/share/zsh/vendor-completions/_geofailover",
        "./usr/share/fish/vendor_completions.d/geofailover.fish",
        "./usr/share/doc/geofailover/copyright",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }
    let conffiles = succeeded(
        "dpkg-deb --info",
        &run("dpkg-deb", &["--info", &deb.to_string_lossy(), "conffiles"]),
    );
    assert!(
        conffiles.contains("/etc/geofailover/config.yaml"),
        "{conffiles}"
    );

    // Where systemd runs, the package would start its own service on
    // the same ports: the Debian way to say "start nothing" is a
    // policy-rc.d that exits 101, here only while dpkg runs.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").expect("write policy-rc.d");
        run("chmod", &["755", "/usr/sbin/policy-rc.d"]);
    }
    let installed = run("dpkg", &["-i", &deb.to_string_lossy()]);
    if own_policy {
        let _ = std::fs::remove_file(policy);
    }
    succeeded("dpkg -i", &installed);
    let user = succeeded("getent", &run("getent", &["passwd", "geofailover"]));
    assert!(user.contains("/usr/sbin/nologin"), "{user}");
    let owner = succeeded(
        "stat",
        &run("stat", &["-c", "%U:%G %a", "/var/lib/geofailover"]),
    );
    assert_eq!(owner.trim(), "geofailover:geofailover 750");

    let unit = "/usr/lib/systemd/system/geofailover.service";
    succeeded(
        "systemd-analyze verify",
        &run("systemd-analyze", &["verify", unit]),
    );
    let unit_text = std::fs::read_to_string(unit).expect("read the unit");
    for line in [
        "User=geofailover",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "StateDirectory=geofailover",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStartPre=/usr/bin/geofailover check --config /etc/geofailover/config.yaml",
        "Restart=on-failure",
    ] {
        assert!(unit_text.contains(line), "{line} not in the unit");
    }

    let manual = Command::new("man")
        .args(["-P", "cat", "-l", "/usr/share/man/man1/geofailover.1.gz"])
        .env("MANWIDTH", "80")
        .output()
        .expect("man is not installed: run tests/run.sh");
    let manual = succeeded("man -l", &manual);
    for words in [
        "geofailover-serve(1)",
        "EXIT STATUS",
        "/etc/geofailover/config.yaml",
    ] {
        assert!(manual.contains(words), "{words} not in the page:\n{manual}");
    }
    let completed = succeeded(
        "bash completion",
        &run(
            "bash",
            &[
                "-c",
                "source /usr/share/bash-completion/completions/geofailover
                 COMP_WORDS=(geofailover dri); COMP_CWORD=1
                 COMP_LINE='geofailover dri'; COMP_POINT=${#COMP_LINE}
                 _geofailover geofailover dri geofailover
                 printf '%s\\n' \"${COMPREPLY[@]}\"",
            ],
        ),
    );
    assert_eq!(completed.trim(), "drill", "{completed}");

    // ExecStartPre=, then ExecStart=, as the unit's user.
    let as_unit = |args: &[&str]| {
        let mut command = Command::new("setpriv");
        command
            .args(AS_THE_UNIT)
            .arg("/usr/bin/geofailover")
            .args(args)
            .current_dir("/")
            .env("RUST_LOG", "info");
        command
    };
    let checked = as_unit(&["check", "--config", "/etc/geofailover/config.yaml"])
        .output()
        .expect("run setpriv");
    succeeded("ExecStartPre", &checked);
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let child = as_unit(&["serve", "--config", "/etc/geofailover/config.yaml"])
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("the log"))
        .spawn()
        .expect("start the service's command");
    let mut service = Process::new(child, "geofailover serve");
    let dns: SocketAddr = "127.0.0.1:53".parse().expect("an address");
    let answered = wait_until(Duration::from_secs(20), || {
        a_records(dns, "www.example.com.") == ["192.0.2.10"]
    });
    let logged = || std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(answered, "no answer on 127.0.0.1:53:\n{}", logged());
    let status = status_json("127.0.0.1:8053".parse().expect("an address"));
    assert_eq!(status["active"], "primary", "{status}");
    let token = succeeded(
        "stat",
        &run("stat", &["-c", "%U %a", "/var/lib/geofailover/api.token"]),
    );
    assert_eq!(token.trim(), "geofailover 600");
    service.signal("TERM");
    let stopped = service.wait_exit(Duration::from_secs(30));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "SIGTERM: {stopped:?}\n{}",
        logged()
    );

    let files = succeeded("dpkg -L", &run("dpkg", &["-L", "geofailover"]));
    succeeded("dpkg --purge", &purge());
    for file in files
        .lines()
        .map(Path::new)
        .filter(|p| p.is_file() || !p.is_dir())
    {
        assert!(!file.exists(), "{} is left after the purge", file.display());
    }
    for dir in [
        "/etc/geofailover",
        "/var/lib/geofailover",
        "/usr/share/doc/geofailover",
    ] {
        assert!(!Path::new(dir).exists(), "{dir} is left after the purge");
    }
}

fn nix_uid() -> u32 {
    let id = run("id", &["-u"]);
    String::from_utf8_lossy(&id.stdout)
        .trim()
        .parse()
        .expect("a user ID")
}
