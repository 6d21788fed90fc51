#!/usr/bin/env bash
# Failover speed: how long from the primary's first failing health check to
# the first DNS answer naming the secondary, over N runs (default 20) of the
# release binary with the example config's checks (interval 1 s, fall 3).
# Each run starts from a fresh state directory, waits until both stand-in
# sites are healthy, then makes the primary answer 503. With NAMES, the
# example zone gains that many names (each an A and a TXT record), and the
# decision to the first answer naming the secondary is printed beside.
# With DNSSEC=yes the zone is signed (config/example-dnssec.yaml), and
# www.example.com A is also asked with DO, every millisecond from the
# primary's failure on: the decision (the log's time) to the first answer
# holding the secondary's address and its RRSIG is printed too.
#   usage: [DNSSEC=yes] bench/failover.sh [RUNS] [NAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
names=${2:-0}
dnssec=${DNSSEC:-no}
case $dnssec in no|yes) ;; *) echo "DNSSEC is no or yes" >&2; exit 2;; esac
need=()
command -v dig >/dev/null || need+=(bind9-dnsutils)
source bench/prelude.sh

python3 - "$work" "$runs" "$names" "$dnssec" <<'PY'
import datetime, http.server, os, re, socket, statistics, struct, subprocess, sys, threading, time

work, runs, names, dnssec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "yes"
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

config = open("config/example-dnssec.yaml" if dnssec else "config/example.yaml").read()
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
signed_after = []

def www():
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(dns_port), "+short", "+time=1",
                          "+tries=1", "www.example.com", "A"], capture_output=True, text=True)
    return out.stdout.strip()

def signed_www(timeout=0.5):
    """www.example.com A asked with DO over UDP: its addresses, and whether
    an RRSIG covering A came with them."""
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1) + b"\3www\7example\3com\0" + struct.pack(">HH", 1, 1)
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)  # OPT: 1232 bytes, DO
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", dns_port))
        r = s.recv(4096)
    except OSError:
        return [], False
    finally:
        s.close()
    if len(r) < 12 or struct.unpack(">H", r[:2])[0] != qid:
        return [], False
    def skip_name(i):
        while r[i] and r[i] & 0xC0 != 0xC0:
            i += r[i] + 1
        return i + (2 if r[i] else 1)
    i = skip_name(12) + 4
    addresses, rrsig = [], False
    for _ in range(struct.unpack(">H", r[6:8])[0]):
        i = skip_name(i)
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(r[i:i + 4]))
        elif rtype == 46 and struct.unpack(">H", r[i:i + 2])[0] == 1:
            rrsig = True
        i += rdlen
    return addresses, rrsig

def watch_signed(found):
    # From the primary's failure on, every millisecond: the wall-clock time
    # (the log's clock) of the first signed answer naming the secondary.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if signed_www() == (["198.51.100.10"], True):
            found.append(time.time())
            return
        time.sleep(0.001)

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
    loading = 10 + names / (1000 if dnssec else 5000)
    if not (wait(lambda: www() == "192.0.2.10", loading) and wait(healthy, 15)):
        sys.exit(f"run {run}: the controller did not become ready; see {work}/serve.log")
    if dnssec and signed_www() != (["192.0.2.10"], True):
        sys.exit(f"run {run}: no signed answer naming the primary: {signed_www()}; see {work}/serve.log")
    found = []
    watcher = threading.Thread(target=watch_signed, args=(found,))
    open(f"{work}/primary.down", "w").close()
    if dnssec:
        watcher.start()
    if not wait(lambda: www() == "198.51.100.10", 20):
        sys.exit(f"run {run}: no failover")
    seen = time.monotonic()
    times.append(seen - first_fail["primary"])
    # The decision and the swap, from the log's timestamps.
    text = open(f"{work}/serve.log").read()
    stamps = [re.search(r"^(\S+)Z .*" + what, text, re.M) for what in ("decide: failover:", "answers switched to secondary")]
    if all(stamps):
        t = [datetime.datetime.fromisoformat(m.group(1)) for m in stamps]
        decided.append((t[1] - t[0]).total_seconds())
    if dnssec:
        watcher.join()
        if not (found and stamps[0]):
            sys.exit(f"run {run}: no signed answer naming the secondary {signed_www()}; see {work}/serve.log")
        decision = datetime.datetime.fromisoformat(stamps[0].group(1)).replace(tzinfo=datetime.timezone.utc)
        signed_after.append(found[0] - decision.timestamp())
    proc.terminate()
    proc.wait()
    print(f"run {run + 1:2}: {times[-1]:.3f} s"
          + (f", decision -> signed answer {signed_after[-1] * 1000:.1f} ms" if dnssec else ""), flush=True)

print()
print(f"failovers: {len(times)}; interval x fall = 1 s x 3 = 3.000 s")
print(f"first failing check -> first answer naming the secondary: "
      f"min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s")
if decided:
    print(f"decision -> answers switched ({names or 'the example'} names): min {min(decided) * 1000:.1f} ms, "
          f"median {statistics.median(decided) * 1000:.1f} ms, max {max(decided) * 1000:.1f} ms")
if signed_after:
    print(f"decision -> first signed answer naming the secondary (A and its RRSIG, asked with DO every ms; "
          f"{names or 'the example'} names): min {min(signed_after) * 1000:.1f} ms, "
          f"median {statistics.median(signed_after) * 1000:.1f} ms, max {max(signed_after) * 1000:.1f} ms "
          f"(goal < 50 ms)")
PY
