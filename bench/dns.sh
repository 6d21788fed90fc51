#!/usr/bin/env bash
# DNS speed against the peers, side by side on this machine: geofailover,
# NSD, Knot, gdnsd (with its failover plugin on www), PowerDNS (bind
# backend) and PowerDNS with a LUA ifportup record on www. Each serves the
# example zone on its own loopback port, pinned to core 1; dnsperf runs on
# core 0 (every server thread is put back on core 1 after start: Knot pins
# its UDP worker to core 0 itself) with one query mix (mostly the failover
# record, some static names and types, about 5 % NXDOMAIN), UDP and TCP.
# All servers run at once and are measured in turn, round after round
# (3 by default); of each server's runs, the one with the median queries
# per server-CPU-second is kept. Prints its qps, queries per
# server-CPU-second and average latency, the server's RSS after all rounds,
# and geofailover's ratio to each; then geofailover on the failover record alone against a static
# name alone. With DNSSEC=yes, two more servers answer the same mix signed,
# with the DO bit set on every query (dnsperf -D): geofailover with
# example.com signed as in config/example-dnssec.yaml, and Knot signing the
# same zone itself (a CSK, ECDSA P-256, NSEC); their rows are compared with
# each other, with the average size of their responses. DNSSEC=only runs
# these two alone. Stops everything it started.
#   usage: [DNSSEC=yes|only] bench/dns.sh [SECONDS_PER_RUN] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
dnssec=${DNSSEC:-no}
case $dnssec in no|yes|only) ;; *) echo "DNSSEC is no, yes or only" >&2; exit 2;; esac

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
[ -x /usr/sbin/nsd ] || need+=(nsd)
[ -x /usr/sbin/knotd ] || need+=(knot)
command -v gdnsd >/dev/null || [ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
[ -x /usr/sbin/pdns_server ] || need+=(pdns-server pdns-backend-bind)
source bench/prelude.sh

python3 - "$work" "$seconds" "$rounds" "$dnssec" <<'PY'
import os, re, signal, statistics, subprocess, sys, time

work, seconds, rounds, dnssec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
repo = os.getcwd()
zone_text = open("zones/example.com.zone").read()
procs = []
sys.path.insert(0, os.path.join(repo, "bench"))
from peers import cpu_seconds, group_pids, knot_config, rss_mb, start as start_in

def start(name, argv, cwd=None):
    return start_in(work, procs, name, argv, cwd)

def off_core(p):
    # The threads of p allowed anywhere but core 1.
    found = []
    for pid in group_pids(p):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                for line in open(f"/proc/{pid}/task/{tid}/status"):
                    if line.startswith("Cpus_allowed_list:") and line.split()[1] != "1":
                        found.append(tid)
        except OSError:
            pass
    return found

def pin(p):
    # Some servers set their own thread affinity (Knot puts its UDP worker
    # on core 0, beside dnsperf, and may do so again after start): every
    # thread back onto core 1, before each run.
    for pid in group_pids(p):
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if off_core(p):
        sys.exit(f"threads {off_core(p)} of {p.pid} are not on core 1")

def wait_port(port, signed=False):
    # A signed server is up once its SOA comes with an RRSIG.
    for _ in range(200):
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1", "+tries=1",
                            "+dnssec" if signed else "+nodnssec", "example.com", "SOA"],
                           capture_output=True, text=True)
        if re.search(r"^SOA 13 ", r.stdout, re.M) if signed else r.stdout.strip():
            return
        time.sleep(0.05)
    sys.exit(f"a server on port {port} did not start; see {work}/*.log")

static_www = zone_text + "www 30 IN A 192.0.2.10\n"
servers = []

# geofailover: the example config, both sites' checks on closed ports, so
# www (a failover record) answers with the primary.
cfg = open("config/example.yaml").read()
cfg = (cfg.replace("127.0.0.1:5353", "127.0.0.1:15400").replace("127.0.0.1:8053", "127.0.0.1:15490")
       .replace("state_dir: ../state", f"state_dir: {work}/gf-state").replace("../zones/", f"{repo}/zones/")
       .replace("127.0.0.1:18081", "127.0.0.1:15491").replace("127.0.0.1:18082", "127.0.0.1:15492"))
open(f"{work}/gf.yaml", "w").write(cfg)
servers.append(("geofailover", 15400, ["target/release/geofailover", "serve", "--config", f"{work}/gf.yaml"], None))

os.makedirs(f"{work}/zones")
open(f"{work}/zones/example.com.zone", "w").write(static_www)
open(f"{work}/nsd.conf", "w").write(f"""server:
  ip-address: 127.0.0.1@15401
  port: 15401
  username: ""
  chroot: ""
  zonesdir: "{work}/zones"
  pidfile: "{work}/nsd.pid"
  database: ""
  zonelistfile: "{work}/zone.list"
  xfrdfile: "{work}/xfrd.state"
  xfrdir: "{work}"
  server-count: 1
  rrl-ratelimit: 0
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
""")
servers.append(("NSD", 15401, ["nsd", "-d", "-c", f"{work}/nsd.conf"], None))

knot_config(work, "knot", 15402, "example.com.zone")
servers.append(("Knot", 15402, ["knotd", "-c", f"{work}/knot.conf"], None))

for d in ["gdnsd/zones", "gdnsd/run", "gdnsd/state"]:
    os.makedirs(f"{work}/{d}")
open(f"{work}/gdnsd/zones/example.com", "w").write(zone_text + "www 30 DYNA multifo!www\n")
# The failover plugin on www; its addresses are not probed (they are not
# on this machine): 'up' is gdnsd's built-in always-up state.
open(f"{work}/gdnsd/config", "w").write(f"""options => {{
  listen => [ 127.0.0.1 ]
  dns_port => 15403
  udp_threads => 1
  tcp_threads => 1
  run_dir => {work}/gdnsd/run
  state_dir => {work}/gdnsd/state
}}
plugins => {{ multifo => {{ www => {{ service_types => up, primary => 192.0.2.10, secondary => 198.51.100.10 }} }} }}
""")
servers.append(("gdnsd+multifo", 15403, ["gdnsd", "-c", f"{work}/gdnsd", "start"], None))

def pdns(name, port, zone, lua):
    d = f"{work}/{name}"
    os.makedirs(d)
    open(f"{d}/example.com.zone", "w").write(zone)
    open(f"{d}/named.conf", "w").write(f'zone "example.com" {{ type master; file "{d}/example.com.zone"; }};\n')
    open(f"{d}/pdns.conf", "w").write(f"""launch=bind
bind-config={d}/named.conf
local-address=127.0.0.1
local-port={port}
socket-dir={d}
guardian=no
daemon=no
disable-syslog=yes
loglevel=3
receiver-threads=1
distributor-threads=1
enable-lua-records={'yes' if lua else 'no'}
""")
    servers.append((name, port, ["pdns_server", f"--config-dir={d}"], None))

pdns("PowerDNS", 15404, static_www, False)
# The health-checked peer: ifportup probes loopback addresses only.
pdns("PowerDNS+LUA", 15405, zone_text + "www 30 IN LUA A \"ifportup(15491, {'127.0.0.1', '127.0.0.2'})\"\n", True)

# Signed: geofailover as config/example-dnssec.yaml (its key made at the
# first start, in its own state folder), and Knot signing the same zone
# (www static, the primary's address) by its automatic signing with
# geofailover's choices: one combined key (CSK) of ECDSA P-256, NSEC,
# signatures valid 14 days and made again 7 days before they expire, CDS
# and CDNSKEY published.
signed = {"geofailover+DNSSEC", "Knot+DNSSEC"}
cfg = open("config/example-dnssec.yaml").read()
cfg = (cfg.replace("127.0.0.1:5353", "127.0.0.1:15406").replace("127.0.0.1:8053", "127.0.0.1:15493")
       .replace("state_dir: ../state", f"state_dir: {work}/gf-dnssec-state").replace("../zones/", f"{repo}/zones/")
       .replace("127.0.0.1:18081", "127.0.0.1:15491").replace("127.0.0.1:18082", "127.0.0.1:15492"))
assert "dnssec:" in cfg
open(f"{work}/gf-dnssec.yaml", "w").write(cfg)
servers.append(("geofailover+DNSSEC", 15406,
                ["target/release/geofailover", "serve", "--config", f"{work}/gf-dnssec.yaml"], None))

knot_config(work, "knot-dnssec", 15407, "example.com.zone", signing=True)
servers.append(("Knot+DNSSEC", 15407, ["knotd", "-c", f"{work}/knot-dnssec.conf"], None))
if dnssec == "no":
    servers = [s for s in servers if s[0] not in signed]
elif dnssec == "only":
    servers = [s for s in servers if s[0] in signed]

# One query mix: mostly the failover record, static names and types, ~5 % NXDOMAIN.
lines = []
static = ["example.com SOA", "example.com NS", "example.com MX", "example.com TXT", "mail.example.com A",
          "mail.example.com AAAA", "ns1.example.com A", "_sip._tcp.example.com SRV", "example.com CAA",
          "shop.example.com A", "host.example.com A", "x.wild.example.com A"]
for i in range(20000):
    r = i % 20
    if r == 0:
        lines.append(f"nope{i}.example.com A")
    elif r < 6:
        lines.append(static[i % len(static)])
    else:
        lines.append("www.example.com A")
open(f"{work}/queries", "w").write("\n".join(lines) + "\n")
# One name each, to compare the failover record with a static one.
open(f"{work}/failover-only", "w").write("www.example.com A\n")
open(f"{work}/static-only", "w").write("mail.example.com A\n")

def dnsperf(port, mode, queries="queries", do=False):
    out = subprocess.run(["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-m", mode,
                          "-d", f"{work}/{queries}", "-l", str(seconds), "-c", "20", "-q", "200"]
                         + (["-D"] if do else []), capture_output=True, text=True).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lat = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out).group(1)
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    size = int(re.search(r"Average packet size:.*response (\d+)", out).group(1))
    return qps, lat, int(lost), done, size

def busy_cores():
    # Non-idle jiffies per core, from /proc/stat.
    busy = {}
    for line in open("/proc/stat"):
        if line.startswith("cpu") and line[3].isdigit():
            name, *f = line.split()
            f = list(map(int, f))
            busy[name] = sum(f[:8]) - f[3] - f[4]
    return busy

def quiet_core1():
    # A server still working through queued queries (PowerDNS+LUA after
    # its run) would take core 1 from the next one: wait until it is idle.
    for _ in range(600):
        b0 = busy_cores()["cpu1"]
        time.sleep(0.1)
        if busy_cores()["cpu1"] - b0 <= 2:
            return
    sys.exit("core 1 does not go quiet")

def measure(p, port, mode, queries="queries", do=False):
    for attempt in range(3):
        pin(p)
        quiet_core1()
        c0 = cpu_seconds(p)
        qps, lat, lost, done, size = dnsperf(port, mode, queries, do)
        cpu = cpu_seconds(p) - c0
        if not off_core(p):
            break
        print(f"  a thread left core 1 during the run: measured again", flush=True)
    else:
        sys.exit(f"threads of {p.pid} keep leaving core 1: no fair figure")
    # The queries answered over the server's CPU time (not qps x wall time:
    # after a lost query dnsperf waits out its 5 s timeout, with the server idle).
    per_cpu = done / cpu if cpu > 0 else float("nan")
    return (qps, per_cpu, lat, lost, size)

# Every server runs from the start (idle ones cost nothing measurable);
# the runs are interleaved, round by round, so a slow stretch of the
# machine falls on all of them; of each server's runs, the one with the
# median queries per CPU-second is kept.
runs = {}
running = []
try:
    for name, port, argv, cwd in servers:
        p = start(name.replace("+", "-"), argv, cwd)
        wait_port(port, name in signed)
        running.append((name, port, p))
    # Each question of the mix, asked with DO, must come back signed (an
    # RRSIG in the answer or, for a name that is not there, NSEC records).
    for name, port, p in running:
        if name in signed:
            for question in sorted(set(lines)):
                r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+dnssec", "+norec", "+time=1",
                                    "+tries=1"] + question.split(), capture_output=True, text=True).stdout
                if not re.search(r"\sIN\s+(RRSIG|NSEC)\s", r):
                    sys.exit(f"{name} answered {question} with DO unsigned:\n{r}")
    for r in range(rounds):
        for mode in ["udp", "tcp"]:
            for name, port, p in running:
                run = measure(p, port, mode, do=name in signed)
                runs.setdefault((name, mode), []).append(run)
                print(f"round {r + 1} {name:18} {mode}: {run[0]:>10.0f} qps, {run[1]:>10.0f} q/CPU-s, "
                      f"{run[2]*1000:.3f} ms, lost {run[3]}", flush=True)
        # The failover record against a static name, in alternating order.
        if dnssec != "only":
            name, port, p = running[0]
            kinds = ["failover-only", "static-only"]
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                runs.setdefault(kind, []).append(measure(p, port, "udp", kind))
    rss = {name: rss_mb(p) for name, _, p in running}
finally:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

def median(key):
    ordered = sorted(runs[key], key=lambda run: run[1])
    return ordered[len(ordered) // 2]

results = {key: median(key) for key in runs}
print()
width = 18 if dnssec != "no" else 15
print(f"{'server':{width}} {'proto':5} {'qps':>10} {'q/CPU-s':>10} {'latency':>10} {'RSS MB':>7} {'ours/them q/CPU-s':>18} {'ours/them qps':>14}")
for mode in ["udp", "tcp"]:
    for name, *_ in servers:
        # Signed rows against geofailover signed, the others against geofailover.
        ours = results[("geofailover+DNSSEC" if name in signed else "geofailover", mode)]
        qps, per_cpu, lat, lost, size = results[(name, mode)]
        ratio = ours[1] / per_cpu if per_cpu else float("nan")
        print(f"{name:{width}} {mode:5} {qps:>10.0f} {per_cpu:>10.0f} {lat*1000:>8.3f}ms {rss[name]:>7.1f} {ratio:>17.2f}x {ours[0] / qps:>13.2f}x")

if dnssec != "no":
    print()
    print("signed answers, DO set on every query (dnsperf -D), the same mix:")
    for mode in ["udp", "tcp"]:
        ours, knot = results[("geofailover+DNSSEC", mode)], results[("Knot+DNSSEC", mode)]
        line = (f"  {mode}: geofailover {ours[1]:.0f} q/CPU-s, Knot {knot[1]:.0f} q/CPU-s: "
                f"geofailover/Knot {ours[1] / knot[1]:.2f}x (goal >= 1.0x); "
                f"average response {ours[4]} and {knot[4]} bytes")
        if dnssec == "yes":
            line += f"; geofailover signed/unsigned {ours[1] / results[('geofailover', mode)][1]:.2f}x"
        print(line)
    if dnssec == "only":
        sys.exit(0)

print()
fo, st = results["failover-only"], results["static-only"]
print(f"geofailover udp, www.example.com A only (failover record): {fo[0]:.0f} qps, {fo[1]:.0f} q/CPU-s, {fo[2]*1000:.3f} ms")
print(f"geofailover udp, mail.example.com A only (static record):  {st[0]:.0f} qps, {st[1]:.0f} q/CPU-s, {st[2]*1000:.3f} ms")
print(f"failover/static: {fo[1] / st[1]:.2f}x q/CPU-s, {fo[0] / st[0]:.2f}x qps")
lua = results[("PowerDNS+LUA", "udp")][1]
fastest = max((results[(n, "udp")][1], n) for n, *_ in servers if n != "geofailover")
print(f"against PowerDNS+LUA (udp q/CPU-s): geofailover {results[('geofailover', 'udp')][1] / lua:.0f}x, "
      f"the fastest peer ({fastest[1]}) {fastest[0] / lua:.0f}x")
PY
