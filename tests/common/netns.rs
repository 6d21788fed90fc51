//! A network namespace of the test's own, joined to this one by a veth
//! pair, for faults that must look like a cut link and not a refusal:
//! packets dropped (iptables in the namespace) time out silently. Needs
//! root, iproute2 and iptables (tests/run.sh installs them). Removed when
//! dropped.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

pub struct Namespace {
    pub name: String,
    host_if: String,
    /// This side's address, reachable from inside the namespace.
    pub host_ip: Ipv4Addr,
    /// The namespace's own address.
    pub ns_ip: Ipv4Addr,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespace {
    /// A namespace with its link up and a default route to this side.
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let name = format!("gf{}", std::process::id() % 100_000 * 10 + n % 10);
        let host_if = format!("gfh{n}");
        let ns_if = format!("gfn{n}");
        let host_ip = Ipv4Addr::new(10, 203, n as u8, 1);
        let ns_ip = Ipv4Addr::new(10, 203, n as u8, 2);
        // Left over by a test that was killed: gone first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        run(&["ip", "netns", "add", &name]);
        let namespace = Self {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip,
            ns_ip,
        };
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", name.as_str()];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&["ip", "addr", "add", &format!("{ns_ip}/24"), "dev", &ns_if]);
        inside(&["ip", "link", "set", &ns_if, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&["ip", "route", "add", "default", "via", &host_ip.to_string()]);
        namespace
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    fn iptables(&self, action: &str, to: SocketAddr) {
        let ip = to.ip().to_string();
        let port = to.port().to_string();
        run(&[
            "ip", "netns", "exec", &self.name, "iptables", action, "OUTPUT", "-d", &ip, "-p",
            "tcp", "--dport", &port, "-j", "DROP",
        ]);
    }

    /// Cuts the namespace's link to `to`: its packets are dropped.
    pub fn cut(&self, to: SocketAddr) {
        self.iptables("-A", to);
    }

    /// Mends a cut.
    pub fn mend(&self, to: SocketAddr) {
        self.iptables("-D", to);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// Drops what a loopback port sends (its answers), until dropped: a
/// server that takes requests and whose answers never arrive.
pub struct SilencedPort {
    port: u16,
}

impl SilencedPort {
    pub fn new(port: u16) -> Self {
        silence("-I", port);
        Self { port }
    }
}

fn silence(action: &str, port: u16) {
    let port = port.to_string();
    run(&[
        "iptables", action, "OUTPUT", "-o", "lo", "-p", "tcp", "--sport", &port, "-j", "DROP",
    ]);
}

impl Drop for SilencedPort {
    fn drop(&mut self) {
        let port = self.port.to_string();
        let _ = Command::new("iptables")
            .args([
                "-D", "OUTPUT", "-o", "lo", "-p", "tcp", "--sport", &port, "-j", "DROP",
            ])
            .output();
    }
}
