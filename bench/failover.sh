#!/usr/bin/env bash
# Failover speed: how long from the primary's first failing health check to
# the first DNS answer naming the secondary, over N runs (default 20) of the
# release binary with the example config's checks (interval 1 s, fall 3).
# Each run starts from a fresh state directory, waits until both stand-in
# sites are healthy, then makes the primary answer 503. With NAMES, the
# example zone gains that many names (each an A and a TXT record), and the
# decision to the first answer naming the secondary is printed beside.
#   usage: bench/failover.sh [RUNS] [NAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
names=${2:-0}
need=()
command -v dig >/dev/null || need+=(bind9-dnsutils)
source bench/prelude.sh

python3 - "$work" "$runs" "$names" <<'PY'
import http.server, os, re, statistics, subprocess, sys, threading, time

work, runs, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dns_port, ports = 15353, {"primary": 18091, "secondary": 18092}
first_fail = {}

def site(name, port):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            down = os.path.exists(f"{work}/{name}.down")
            if down and name not in first_fail:
                first_fail[name] = time.monotonic()
            self.send_response(503 if down else 200)
            self.end_headers()
            self.wfile.write(b"down\n" if down else b"ok\n")
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()

for name, port in ports.items():
    site(name, port)

config = open("config/example.yaml").read()
config = (config.replace("127.0.0.1:5353", f"127.0.0.1:{dns_port}")
          .replace("state_dir: ../state", f"state_dir: {work}/state")
          .replace("../zones/", os.path.abspath("zones") + "/")
          .replace("127.0.0.1:18081", f"127.0.0.1:{ports['primary']}")
          .replace("127.0.0.1:18082", f"127.0.0.1:{ports['secondary']}"))
if names:
    with open(f"{work}/example.com.zone", "w") as f:
        f.write(open("zones/example.com.zone").read())
        for i in range(names):
            f.write(f"h{i} 300 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\nh{i} 300 IN TXT \"host {i}\"\n")
    config = config.replace(os.path.abspath("zones") + "/example.com.zone", f"{work}/example.com.zone")
open(f"{work}/config.yaml", "w").write(config)
decided = []

def www():
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(dns_port), "+short", "+time=1",
                          "+tries=1", "www.example.com", "A"], capture_output=True, text=True)
    return out.stdout.strip()

def wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False

times = []
for run in range(runs):
    subprocess.run(["rm", "-rf", f"{work}/state", f"{work}/primary.down"])
    first_fail.clear()
    log = open(f"{work}/serve.log", "w")
    proc = subprocess.Popen(["target/release/geofailover", "serve", "--config", f"{work}/config.yaml"],
                            stderr=log, stdout=subprocess.DEVNULL)
    open(f"{work}/serve.pid", "w").write(f"{proc.pid}\n")
    healthy = lambda: open(f"{work}/serve.log").read().count("is now healthy") >= 2
    if not (wait(lambda: www() == "192.0.2.10", 10 + names / 5000) and wait(healthy, 15)):
        sys.exit(f"run {run}: the controller did not become ready; see {work}/serve.log")
    open(f"{work}/primary.down", "w").close()
    if not wait(lambda: www() == "198.51.100.10", 20):
        sys.exit(f"run {run}: no failover")
    seen = time.monotonic()
    times.append(seen - first_fail["primary"])
    # The decision and the swap, from the log's timestamps.
    text = open(f"{work}/serve.log").read()
    stamps = [re.search(r"^(\S+)Z .*" + what, text, re.M) for what in ("decide: failover:", "answers switched to secondary")]
    if all(stamps):
        import datetime
        t = [datetime.datetime.fromisoformat(m.group(1)) for m in stamps]
        decided.append((t[1] - t[0]).total_seconds())
    proc.terminate()
    proc.wait()
    print(f"run {run + 1:2}: {times[-1]:.3f} s", flush=True)

print()
print(f"failovers: {len(times)}; interval x fall = 1 s x 3 = 3.000 s")
print(f"first failing check -> first answer naming the secondary: "
      f"min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s")
if decided:
    print(f"decision -> answers switched ({names or 'the example'} names): min {min(decided) * 1000:.1f} ms, "
          f"median {statistics.median(decided) * 1000:.1f} ms, max {max(decided) * 1000:.1f} ms")
PY
