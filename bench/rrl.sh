#!/usr/bin/env bash
# Amplification under response rate limiting: one source (127.0.0.2)
# floods www.example.com A (and, as a reflection attack would, ANY at the
# apex) at RATE queries a second for SECONDS, against geofailover and
# against Knot with its RRL module, both at rate 20 and slip 2 and with
# the same zone (geofailover's loopback exemption turned off); prints,
# per server, queries sent, responses received (full and truncated) and
# bytes out / bytes in for the flooding source.
#   usage: bench/rrl.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
seconds=${2:-5}
need=()
[ -x /usr/sbin/knotd ] || need+=(knot)
source bench/prelude.sh

python3 - "$work" "$rate" "$seconds" <<'PY'
import os, socket, struct, subprocess, sys, time

work, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
repo = os.getcwd()
os.makedirs(f"{work}/zones")
zone = open("zones/example.com.zone").read()
open(f"{work}/zones/example.com.zone", "w").write(zone + "www 30 IN A 192.0.2.10\nwww 30 IN AAAA 2001:db8:10::10\n")

cfg = open("config/example.yaml").read()
cfg = (cfg.replace("127.0.0.1:5353", "127.0.0.1:15600").replace("127.0.0.1:8053", "127.0.0.1:15690")
       .replace("state_dir: ../state", f"state_dir: {work}/gf-state").replace("../zones/", f"{repo}/zones/")
       .replace("127.0.0.1:18081", "127.0.0.1:15691").replace("127.0.0.1:18082", "127.0.0.1:15692")
       .replace("dns:\n", "dns:\n  rrl:\n    rate: 20\n    slip: 2\n    exempt: []\n", 1))
open(f"{work}/gf.yaml", "w").write(cfg)
os.makedirs(f"{work}/knot")
open(f"{work}/knot.conf", "w").write(f"""server:
  listen: 127.0.0.1@15601
  rundir: {work}/knot
  user: root
database:
  storage: {work}/knot/db
mod-rrl:
  - id: default
    rate-limit: 20
    slip: 2
template:
  - id: default
    storage: {work}/zones
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    global-module: mod-rrl/default
zone:
  - domain: example.com
    file: example.com.zone
""")

def start(name, argv):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(f"{work}/{name}.log", "w"))
    open(f"{work}/{name}.pid", "w").write(f"{p.pid}\n")
    return p

def query(qid, name, qtype):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", qtype, 1)
    # EDNS, offering 4096 bytes, as an amplifier's spoofed queries do.
    return q + b"\0" + struct.pack(">HHIH", 41, 4096, 0, 0)

def wait(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    for _ in range(300):
        try:
            s.sendto(query(1, "example.com", 6), ("127.0.0.1", port))
            s.recv(4096)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing answers on {port}; see {work}")

def drain(s, seen):
    # Every response waiting, counted (TC set or not) and measured.
    while True:
        try:
            r = s.recv(65535)
        except BlockingIOError:
            return
        seen["received"] += 1
        seen["bytes_in"] += len(r)
        seen["truncated" if r[2] & 0x02 else "full"] += 1

def flood(port, qtype, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.2", 0))
    s.setblocking(False)
    sent = bytes_out = 0
    seen = {"received": 0, "full": 0, "truncated": 0, "bytes_in": 0}
    start_t = time.monotonic()
    n = 0
    while time.monotonic() - start_t < seconds:
        due = int((time.monotonic() - start_t) * rate)
        while n < due:
            q = query(n & 0xFFFF, name, qtype)
            try:
                s.sendto(q, ("127.0.0.1", port))
                sent += 1
                bytes_out += len(q)
            except BlockingIOError:
                pass
            n += 1
        drain(s, seen)
        time.sleep(0.0005)
    time.sleep(0.3)
    drain(s, seen)
    return sent, seen["received"], seen["full"], seen["truncated"], bytes_out, seen["bytes_in"]

start("geofailover", ["target/release/geofailover", "serve", "--config", f"{work}/gf.yaml"])
start("knot", ["knotd", "-c", f"{work}/knot.conf"])
wait(15600)
wait(15601)
print(f"one source (127.0.0.2) at {rate} queries a second for {seconds} s; rate 20, slip 2 on both")
print(f"{'server':12} {'query':18} {'sent':>7} {'received':>9} {'full':>6} {'TC':>6} {'bytes out':>10} {'bytes in':>10} {'amplification':>14}")
for qtype, name, label in [(1, "www.example.com", "www A"), (255, "example.com", "apex ANY")]:
    for server, port in [("geofailover", 15600), ("Knot", 15601)]:
        sent, received, full, truncated, out_b, in_b = flood(port, qtype, name)
        print(f"{server:12} {label:18} {sent:>7} {received:>9} {full:>6} {truncated:>6} {out_b:>10} {in_b:>10} {in_b / out_b:>13.2f}x")
        time.sleep(16)  # the window passes before the next flood
PY
