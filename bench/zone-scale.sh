#!/usr/bin/env bash
# A large zone, side by side with the peers: the example zone plus NAMES
# names (default 1,000,000), each with an A and a TXT record, served by
# geofailover (the example config, www a failover record), Knot and NSD,
# each pinned to core 1. Prints, per server: start to first answer, RSS
# once loaded, and UDP queries per server-CPU-second (dnsperf on core 0)
# on a random mix of the zone's names (90 % hN A/TXT, 5 % www, 5 %
# missing); then 10 AXFRs of the zone at once (dig, from loopback): how
# long until all are done and how much the server's RSS grew meanwhile
# (sampled every 20 ms); then geofailover's ratio to each. With
# DNSSEC=yes, the same zone signed at load by geofailover (example.com's
# dnssec: of config/example-dnssec.yaml) and by Knot (its automatic
# signing: a CSK, ECDSA P-256, NSEC), one after the other: start to the
# first signed answer (the last name's A with its RRSIG) and RSS once
# loaded, and geofailover's ratio to Knot; DNSSEC=only runs these two
# alone. Stops everything it started.
#   usage: [DNSSEC=yes|only] bench/zone-scale.sh [NAMES] [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
names=${1:-1000000}
seconds=${2:-10}
dnssec=${DNSSEC:-no}
case $dnssec in no|yes|only) ;; *) echo "DNSSEC is no, yes or only" >&2; exit 2;; esac

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
[ -x /usr/sbin/nsd ] || need+=(nsd)
[ -x /usr/sbin/knotd ] || need+=(knot)
source bench/prelude.sh

python3 - "$work" "$names" "$seconds" "$dnssec" <<'PY'
import os, random, re, signal, subprocess, sys, time

work, names, seconds, dnssec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
repo = os.getcwd()
os.makedirs(f"{work}/zones")
base = open("zones/example.com.zone").read()
with open(f"{work}/zones/example.com.zone", "w") as f:
    f.write(base)
    for i in range(names):
        f.write(f"h{i} 300 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\nh{i} 300 IN TXT \"host {i}\"\n")
# The peers serve www as a static record with the primary's address.
with open(f"{work}/zones/static.zone", "w") as f:
    f.write(open(f"{work}/zones/example.com.zone").read())
    f.write("www 30 IN A 192.0.2.10\n")
procs = []
sys.path.insert(0, os.path.join(repo, "bench"))
from peers import cpu_seconds, group_pids, knot_config, rss_mb, start as start_in

def start(name, argv, cwd=None):
    return start_in(work, procs, name, argv, cwd)

def pin(p):
    for pid in group_pids(p):
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

def first_answer(port, signed=False, timeout=600):
    # Signed: the address and its RRSIG (`+short` shows it as "A 13 3 300 ...").
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1", "+tries=1",
                            "+dnssec" if signed else "+nodnssec", f"h{names - 1}.example.com", "A"],
                           capture_output=True, text=True)
        if re.fullmatch(r"10\.\d+\.\d+\.\d+" + (r"\nA 13 3 300 .*" if signed else ""), r.stdout.strip()):
            return
        time.sleep(0.02)
    sys.exit(f"the server on port {port} did not answer{' signed' if signed else ''}; see {work}/*.log")

cfg = open("config/example.yaml").read()
cfg = (cfg.replace("127.0.0.1:5353", "127.0.0.1:15500").replace("127.0.0.1:8053", "127.0.0.1:15590")
       .replace("state_dir: ../state", f"state_dir: {work}/gf-state")
       .replace("../zones/example.com.zone", f"{work}/zones/example.com.zone")
       .replace("../zones/", f"{repo}/zones/")
       .replace("127.0.0.1:18081", "127.0.0.1:15591").replace("127.0.0.1:18082", "127.0.0.1:15592")
       .replace("  - name: example.com\n", "  - name: example.com\n    allow_transfer: [\"127.0.0.1\"]\n", 1))
assert "allow_transfer" in cfg
open(f"{work}/gf.yaml", "w").write(cfg)
open(f"{work}/nsd.conf", "w").write(f"""server:
  ip-address: 127.0.0.1@15501
  port: 15501
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
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: static.zone
  provide-xfr: 127.0.0.1 NOKEY
""")
knot_config(work, "knot", 15502, "static.zone", transfer=True)
# Signed: geofailover with example.com's dnssec: of config/example-dnssec.yaml
# (its key made at start, in its own state folder), and Knot signing the
# zone by its automatic signing with geofailover's choices: one combined
# key (CSK) of ECDSA P-256, NSEC, signatures valid 14 days and made again
# 7 days before they expire, CDS and CDNSKEY published.
signing = re.search(r"\n    dnssec:.*?\n(?=  - name:)", open("config/example-dnssec.yaml").read(), re.S).group(0)
cfg = (cfg.replace("127.0.0.1:15500", "127.0.0.1:15503").replace("127.0.0.1:15590", "127.0.0.1:15593")
       .replace(f"state_dir: {work}/gf-state", f"state_dir: {work}/gf-dnssec-state")
       .replace(f"file: {work}/zones/example.com.zone\n", f"file: {work}/zones/example.com.zone" + signing, 1))
assert "dnssec:" in cfg
open(f"{work}/gf-dnssec.yaml", "w").write(cfg)
knot_config(work, "knot-dnssec", 15504, "static.zone", signing=True)
signed = {"geofailover+DNSSEC", "Knot+DNSSEC"}
servers = [
    ("geofailover", 15500, ["target/release/geofailover", "serve", "--config", f"{work}/gf.yaml"]),
    ("Knot", 15502, ["knotd", "-c", f"{work}/knot.conf"]),
    ("NSD", 15501, ["nsd", "-d", "-c", f"{work}/nsd.conf"]),
    ("geofailover+DNSSEC", 15503, ["target/release/geofailover", "serve", "--config", f"{work}/gf-dnssec.yaml"]),
    ("Knot+DNSSEC", 15504, ["knotd", "-c", f"{work}/knot-dnssec.conf"]),
]
if dnssec == "no":
    servers = [s for s in servers if s[0] not in signed]
elif dnssec == "only":
    servers = [s for s in servers if s[0] in signed]

rnd = random.Random(7)
lines = []
for _ in range(200000):
    r = rnd.random()
    if r < 0.05:
        lines.append("www.example.com A")
    elif r < 0.10:
        lines.append(f"nope{rnd.randrange(names)}.example.com A")
    else:
        lines.append(f"h{rnd.randrange(names)}.example.com {'A' if r < 0.55 else 'TXT'}")
open(f"{work}/queries", "w").write("\n".join(lines) + "\n")

def per_cpu(p, port):
    pin(p)
    c0 = cpu_seconds(p)
    out = subprocess.run(["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-m", "udp",
                          "-d", f"{work}/queries", "-l", str(seconds), "-c", "20", "-q", "200"],
                         capture_output=True, text=True).stdout
    cpu = cpu_seconds(p) - c0
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    # The queries answered over the server's CPU time (not qps x wall time:
    # after a lost query dnsperf waits out its 5 s timeout, with the server idle).
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    return qps, done / cpu if cpu > 0 else float("nan")

def transfers(p, port, count=10):
    # `count` AXFRs at once; the RSS sampled until all are done.
    base = rss_mb(p)
    t0 = time.monotonic()
    digs = [subprocess.Popen(["dig", "@127.0.0.1", "-p", str(port), "+noall", "+stats",
                              "example.com", "AXFR"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True) for _ in range(count)]
    peak = base
    outs = [None] * count
    while any(d.poll() is None for d in digs):
        peak = max(peak, rss_mb(p))
        time.sleep(0.02)
    took = time.monotonic() - t0
    sizes = []
    for d in digs:
        out = d.stdout.read()
        m = re.search(r"XFR size: (\d+) records", out)
        sizes.append(int(m.group(1)) if m else 0)
    if min(sizes) < 2 * names:
        sys.exit(f"an AXFR on port {port} was incomplete: {sizes} records")
    return took, peak - base

results = {}
try:
    # One at a time, so each load has the machine to itself.
    for name, port, argv in servers:
        t0 = time.monotonic()
        p = start(name.replace("+", "-"), argv)
        first_answer(port, name in signed)
        loaded = time.monotonic() - t0
        time.sleep(1)
        rss = rss_mb(p)
        if name in signed:
            results[name] = (loaded, rss)
            print(f"{name:18} start -> first signed answer {loaded:7.2f} s, RSS {rss:8.1f} MiB", flush=True)
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
            continue
        qps, q_cpu = per_cpu(p, port)
        xfr_s, growth = transfers(p, port)
        results[name] = (loaded, rss, qps, q_cpu, xfr_s, growth)
        print(f"{name:12} start -> first answer {loaded:7.2f} s, RSS {rss:8.1f} MiB, "
              f"UDP {qps:9.0f} qps, {q_cpu:9.0f} q/CPU-s; 10 AXFRs at once {xfr_s:6.2f} s, "
              f"RSS +{growth:.1f} MiB meanwhile", flush=True)
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
finally:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

print()
print(f"{names} names ({2 * names} records plus the example zone)")
if dnssec != "only":
    ours = results["geofailover"]
    for name in ["Knot", "NSD"]:
        them = results[name]
        print(f"geofailover / {name:4}: load time {ours[0] / them[0]:5.2f}x, RSS {ours[1] / them[1]:5.2f}x, "
              f"q/CPU-s {ours[3] / them[3]:5.2f}x, 10 AXFRs' time {ours[4] / them[4]:5.2f}x")
    print("targets: RSS <= 1.0x Knot's, load <= 2x Knot's time, q/CPU-s >= 1.0x NSD's")
if dnssec != "no":
    ours, them = results["geofailover+DNSSEC"], results["Knot+DNSSEC"]
    print(f"signed, geofailover / Knot: time to the first signed answer {ours[0] / them[0]:5.2f}x, "
          f"RSS {ours[1] / them[1]:5.2f}x")
    print("targets, signed: load <= 2x Knot's time, RSS <= 1.0x Knot's")
PY
