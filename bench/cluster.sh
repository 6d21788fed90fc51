#!/usr/bin/env bash
# Several nodes: the release binary as config/example-cluster.yaml's three
# nodes (ns1, ns2, a witness) against a three-member etcd on loopback,
# with stand-in sites. Measures, over N failovers (default 20), the time
# from the leader's decision (its journal entry) to every DNS node
# answering the secondary, and over N leader losses (SIGKILL of the
# leader) the time until another node leads. Prints min/median/max.
#   usage: bench/cluster.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
need=()
command -v etcd >/dev/null || need+=(etcd-server)
source bench/prelude.sh

python3 - "$work" "$runs" <<'PY'
import atexit, http.server, json, os, socket, statistics, struct, subprocess, sys, threading, time, urllib.request

work, runs = sys.argv[1], int(sys.argv[2])
sites = {"primary": 18191, "secondary": 18192}
etcd_ports = [(22379, 22380), (22381, 22382), (22383, 22384)]
nodes = {"ns1": (15301, 18101), "ns2": (15302, 18102), "witness": (None, 18103)}

def site(name, port):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            down = os.path.exists(f"{work}/{name}.down")
            self.send_response(503 if down else 200)
            self.end_headers()
            self.wfile.write(b"down\n" if down else b"ok\n")
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()

for name, port in sites.items():
    site(name, port)

etcds = []
initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(etcd_ports))
for i, (client, peer) in enumerate(etcd_ports):
    proc = subprocess.Popen(["etcd", f"--name=m{i}", f"--data-dir={work}/etcd{i}",
        f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster={initial}", "--initial-cluster-state=new", "--heartbeat-interval=100",
        "--election-timeout=1000", "--logger=zap", f"--log-outputs={work}/etcd{i}.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    etcds.append(proc)
    # One PID a line: the shell's trap kills them all if Python cannot.
    open(f"{work}/etcd{i}.pid", "w").write(f"{proc.pid}\n")

config = open("config/example-cluster.yaml").read()
config = (config.replace("state_dir: ../state", f"state_dir: {work}/state")
          .replace("token_file: ../state/api.token", f"token_file: {work}/state/api.token")
          .replace("../zones/", os.path.abspath("zones") + "/")
          .replace("[http://127.0.0.1:2379, http://127.0.0.1:22379, http://127.0.0.1:32379]",
                   "[" + ", ".join(f"http://127.0.0.1:{c}" for c, _ in etcd_ports) + "]")
          .replace("127.0.0.1:18081", f"127.0.0.1:{sites['primary']}")
          .replace("127.0.0.1:18082", f"127.0.0.1:{sites['secondary']}"))
for name, (dns, http) in nodes.items():
    default_dns = {"ns1": 5301, "ns2": 5302}.get(name)
    if dns:
        config = config.replace(f"127.0.0.1:{default_dns}", f"127.0.0.1:{dns}")
    config = config.replace(f"127.0.0.1:{8100 + list(nodes).index(name) + 1}", f"127.0.0.1:{http}")
open(f"{work}/cluster.yaml", "w").write(config)

procs = {}

@atexit.register
def stop_all():
    for proc in list(procs.values()) + etcds:
        proc.kill()

def start(name):
    log = open(f"{work}/{name}.log", "a")
    proc = subprocess.Popen(["target/release/geofailover", "serve", "--config", f"{work}/cluster.yaml",
                             "--node", name], stderr=log, stdout=subprocess.DEVNULL)
    procs[name] = proc
    open(f"{work}/{name}.pid", "w").write(f"{proc.pid}\n")

def status(name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{nodes[name][1]}/api/v1/status", timeout=2) as r:
            return json.load(r)
    except Exception:
        return None

def post(name, path, body):
    token = open(f"{work}/state/api.token").read().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{nodes[name][1]}{path}", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.load(r)

def www(port):
    query = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0)
    for label in ("www", "example", "com"):
        query += bytes([len(label)]) + label.encode()
    query += b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(query, ("127.0.0.1", port))
        reply = s.recv(1024)
        return ".".join(str(b) for b in reply[-4:])
    except OSError:
        return None
    finally:
        s.close()

def wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False

def leader():
    found = [status(n) for n in procs if procs[n].poll() is None]
    leaders = {s["cluster"]["leader"] for s in found if s}
    return leaders.pop() if len(leaders) == 1 else None

def settled():
    live = [n for n in procs if procs[n].poll() is None]
    for n in live:
        s = status(n)
        if not s or s["cluster"]["leader"] is None:
            return False
        if sum(1 for x in s["cluster"]["nodes"] if x["live"]) != len(live):
            return False
        if [a["health"] for a in s["cluster"]["agreed"]] != ["healthy", "healthy"]:
            return False
    return True

for name in nodes:
    start(name)
if not wait(settled, 60):
    sys.exit(f"the cluster did not settle: " + json.dumps([status(n) and status(n)["cluster"] for n in nodes])[:3000] + open(f"{work}/ns1.log").read()[-3000:])
dns_ports = [dns for dns, _ in nodes.values() if dns]

def summary(label, values):
    print(f"{label}: min {min(values):.3f} s, median {statistics.median(values):.3f} s, "
          f"max {max(values):.3f} s over {len(values)}", flush=True)

# Decision to every node answering.
failovers = []
for run in range(runs):
    if not wait(lambda: settled() and leader() is not None, 60):
        sys.exit(f"run {run}: the cluster did not settle")
    lead = leader()
    open(f"{work}/primary.down", "w").close()
    flipped = {}
    def all_flipped():
        for p in dns_ports:
            if p not in flipped and www(p) == "198.51.100.10":
                flipped[p] = time.time()
        return len(flipped) == len(dns_ports)
    if not wait(all_flipped, 30):
        sys.exit(f"run {run}: no failover everywhere")
    everyone = max(flipped.values())
    decisions = lambda: [e["at"] for e in json.load(urllib.request.urlopen(
        f"http://127.0.0.1:{nodes[lead][1]}/api/v1/events?since=0")) if e["event"] == "failed_over"]
    if not wait(lambda: len(decisions()) > run, 10):
        sys.exit(f"run {run}: the decision is not in the journal")
    decided = max(decisions()) / 1000
    failovers.append(everyone - decided)
    print(f"failover {run + 1:2}: decision to every node answering {failovers[-1]:.3f} s"
          f" ({', '.join(f'{p}: {t - decided:+.3f}' for p, t in sorted(flipped.items()))}; leader {lead})", flush=True)
    os.remove(f"{work}/primary.down")
    if not wait(lambda: (status(lead) or {}).get("ready_for_failback"), 30):
        sys.exit(f"run {run}: the primary did not become ready for fail-back")
    post(lead, "/api/v1/failback", {"operator": "bench"})
    if not wait(lambda: all(www(p) == "192.0.2.10" for p in dns_ports), 30):
        sys.exit(f"run {run}: no fail-back everywhere")

# Leader loss to a new leader.
elections = []
for run in range(runs):
    if not wait(settled, 60):
        sys.exit(f"election {run}: the cluster did not settle")
    lead = leader()
    procs[lead].kill()
    procs[lead].wait()
    killed = time.monotonic()
    others = [n for n in nodes if n != lead]
    new = lambda: all((status(n) or {}).get("cluster", {}).get("leader") not in (None, lead) for n in others)
    if not wait(new, 30):
        sys.exit(f"election {run}: no new leader")
    elections.append(time.monotonic() - killed)
    print(f"election {run + 1:2}: {lead} killed, new leader after {elections[-1]:.3f} s", flush=True)
    start(lead)

print()
summary("decision to every node answering the secondary", failovers)
summary("leader killed to a new leader (lease TTL 5 s)", elections)
PY
