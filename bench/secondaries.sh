#!/usr/bin/env bash
# Secondaries following a failover: how long from geofailover's first
# answer naming the secondary site (the decision served) until each
# standard secondary (NSD, Knot, BIND, all fed by NOTIFY and IXFR under the
# TSIG key of config/transfer.key) answers it too; min/median/max over N
# failovers (default 20). Each round fails the primary's stand-in health
# check, measures, then restores it and fails back with the API, and waits
# until every secondary answers the primary again.
#   usage: bench/secondaries.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
need=()
[ -x /usr/sbin/nsd ] || need+=(nsd)
[ -x /usr/sbin/knotd ] || need+=(knot)
[ -x /usr/sbin/named ] || need+=(bind9)
source bench/prelude.sh

python3 - "$work" "$runs" <<'PY'
import http.server, json, os, random, re, socket, statistics, struct, subprocess, sys, threading, time, urllib.request

work, runs = sys.argv[1], int(sys.argv[2])
dns_port, http_port = 15363, 18063
site_ports = {"primary": 18093, "secondary": 18094}
secondaries = {"nsd": 15364, "knot": 15365, "bind": 15366}
PRIMARY, SECONDARY = "192.0.2.10", "198.51.100.10"
secret = re.search(r'secret "([^"]+)"', open("config/transfer.key").read()).group(1)

def site(name, port):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            down = os.path.exists(f"{work}/{name}.down")
            self.send_response(503 if down else 200)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()

for name, port in site_ports.items():
    site(name, port)

notify = "".join(f'      - 127.0.0.1:{p} key transfer-key\n' for p in secondaries.values())
config = open("config/example-secondaries.yaml").read()
config = (config.replace("127.0.0.1:5353", f"127.0.0.1:{dns_port}")
          .replace("127.0.0.1:8053", f"127.0.0.1:{http_port}")
          .replace("state_dir: ../state", f"state_dir: {work}/state")
          .replace("secret_file: transfer.key", f"secret_file: {os.path.abspath('config/transfer.key')}")
          .replace("../zones/", os.path.abspath("zones") + "/")
          .replace("      - 127.0.0.1:5354 key transfer-key\n", notify)
          .replace("127.0.0.1:18081", f"127.0.0.1:{site_ports['primary']}")
          .replace("127.0.0.1:18082", f"127.0.0.1:{site_ports['secondary']}"))
open(f"{work}/config.yaml", "w").write(config)

def start(name, argv, conf_name, conf):
    d = f"{work}/{name}"
    os.makedirs(d, exist_ok=True)
    open(f"{d}/{conf_name}", "w").write(conf.replace("DIR", d))
    p = subprocess.Popen([a.replace("DIR", d) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    open(f"{work}/{name}.pid", "w").write(f"{p.pid}\n")
    return p

start("nsd", ["nsd", "-d", "-c", "DIR/nsd.conf"], "nsd.conf", f"""server:
  ip-address: 127.0.0.1@{secondaries['nsd']}
  port: {secondaries['nsd']}
  username: ""
  chroot: ""
  zonesdir: "DIR"
  pidfile: "DIR/nsd.pid"
  database: ""
  zonelistfile: "DIR/zone.list"
  xfrdfile: "DIR/xfrd.state"
  xfrdir: "DIR"
  logfile: "DIR/nsd.log"
  server-count: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
key:
  name: transfer-key
  algorithm: hmac-sha256
  secret: "{secret}"
zone:
  name: example.com
  zonefile: example.com.zone
  request-xfr: 127.0.0.1@{dns_port} transfer-key
  allow-notify: 127.0.0.1 transfer-key
""")
start("knot", ["knotd", "-c", "DIR/knot.conf"], "knot.conf", f"""server:
  listen: 127.0.0.1@{secondaries['knot']}
  rundir: DIR
  user: root
database:
  storage: DIR/db
key:
  - id: transfer-key
    algorithm: hmac-sha256
    secret: {secret}
remote:
  - id: geofailover
    address: 127.0.0.1@{dns_port}
    key: transfer-key
acl:
  - id: notify
    address: 127.0.0.1
    key: transfer-key
    action: notify
template:
  - id: default
    storage: DIR
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: example.com
    master: geofailover
    acl: notify
""")
start("bind", ["named", "-f", "-u", "root", "-c", "DIR/named.conf"], "named.conf", f"""options {{
  directory "DIR";
  listen-on port {secondaries['bind']} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  pid-file "DIR/named.pid";
  session-keyfile "DIR/session.key";
  managed-keys-directory "DIR";
  recursion no;
  notify no;
  dnssec-validation no;
}};
controls {{ }};
key "transfer-key" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "example.com" {{
  type secondary;
  primaries {{ 127.0.0.1 port {dns_port} key transfer-key; }};
  file "DIR/example.com.db";
  allow-notify {{ 127.0.0.1; }};
}};
""")

def query_a(port, name="www.example.com"):
    """The A addresses `port` answers for `name`, over UDP."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(4096)
    except OSError:
        return []
    finally:
        s.close()
    if len(r) < 12 or struct.unpack(">H", r[:2])[0] != qid:
        return []
    an = struct.unpack(">H", r[6:8])[0]
    i = 12
    while r[i] != 0:
        i += r[i] + 1
    i += 5
    out = []
    for _ in range(an):
        if r[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while r[i] != 0:
                i += r[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(r[i:i + 4]))
        i += rdlen
    return out

def wait(condition, timeout, step=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False

log = open(f"{work}/serve.log", "w")
proc = subprocess.Popen(["target/release/geofailover", "serve", "--config", f"{work}/config.yaml"],
                        stderr=log, stdout=subprocess.DEVNULL)
open(f"{work}/serve.pid", "w").write(f"{proc.pid}\n")
healthy = lambda: open(f"{work}/serve.log").read().count("is now healthy") >= 2
if not (wait(lambda: query_a(dns_port) == [PRIMARY], 10) and wait(healthy, 15)):
    sys.exit(f"the controller did not become ready; see {work}/serve.log")
for name, port in secondaries.items():
    if not wait(lambda: query_a(port) == [PRIMARY], 30, 0.05):
        sys.exit(f"{name} did not transfer the zone; see {work}/{name}")
token = open(f"{work}/state/api.token").read().strip()

def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=10).read()

times = {name: [] for name in secondaries}
for run in range(runs):
    open(f"{work}/primary.down", "w").close()
    if not wait(lambda: query_a(dns_port) == [SECONDARY], 20):
        sys.exit(f"run {run}: no failover")
    decided = time.monotonic()
    seen = {}
    def follow(name, port):
        if wait(lambda: query_a(port) == [SECONDARY], 30, 0.001):
            seen[name] = time.monotonic() - decided
    threads = [threading.Thread(target=follow, args=item) for item in secondaries.items()]
    for t in threads: t.start()
    for t in threads: t.join()
    missing = [n for n in secondaries if n not in seen]
    if missing:
        sys.exit(f"run {run}: {missing} did not follow; see {work}")
    for name, t in seen.items():
        times[name].append(t)
    print(f"run {run + 1:2}: " + ", ".join(f"{n} {seen[n] * 1000:.0f} ms" for n in secondaries), flush=True)
    os.remove(f"{work}/primary.down")
    for _ in range(100):
        try:
            post("/api/v1/failback", {"reason": "bench"})
            break
        except Exception:
            time.sleep(0.2)
    for name, port in [("geofailover", dns_port)] + list(secondaries.items()):
        if not wait(lambda: query_a(port) == [PRIMARY], 30, 0.01):
            sys.exit(f"run {run}: {name} did not fail back; see {work}")

print()
print(f"failovers: {runs}; geofailover's first answer naming the secondary -> the secondary's")
for name, ts in times.items():
    print(f"  {name:5}: min {min(ts) * 1000:.0f} ms, median {statistics.median(ts) * 1000:.0f} ms, max {max(ts) * 1000:.0f} ms")
PY
