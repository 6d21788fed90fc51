#!/usr/bin/env bash
# Health checks at scale: the release binary with 2,000 checks at a 1 s
# interval (1,000 http against a local asyncio web server, 1,000 tcp
# against a local listener), measured over a window after they all run:
# the controller's share of one core and its RSS. With PERF_DATA=FILE,
# perf also records a profile of the controller over the window.
#   usage: bench/probes.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
need=()
source bench/prelude.sh

python3 - "$work" "$seconds" <<'PY'
import asyncio, os, signal, subprocess, sys, threading, time

work, seconds = sys.argv[1], int(sys.argv[2])
HTTP, TCP = 15591, 15592
served = {"http": 0}

async def http(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            served["http"] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await writer.drain()
            break
    finally:
        writer.close()

async def tcp(reader, writer):
    writer.close()

async def listeners():
    await asyncio.start_server(http, "127.0.0.1", HTTP, backlog=4096)
    await asyncio.start_server(tcp, "127.0.0.1", TCP, backlog=4096)
    await asyncio.Event().wait()

threading.Thread(target=lambda: asyncio.run(listeners()), daemon=True).start()
time.sleep(0.5)

def checks(kind, n):
    out = []
    for i in range(n):
        if kind == "http":
            body = f"        http:\n          url: http://127.0.0.1:{HTTP}/health/{i}\n"
        else:
            body = f"        tcp:\n          address: 127.0.0.1:{TCP}\n"
        out.append(f"      - name: {kind}{i}\n{body}        interval: 1s\n        timeout: 1s\n")
    return "".join(out)

repo = os.getcwd()
config = f"""state_dir: {work}/state
dns:
  listen: [127.0.0.1:15590]
zones:
  - name: example.com
    file: {repo}/zones/example.com.zone
failover:
  records:
    - name: www.example.com
      type: A
sites:
  - name: primary
    role: primary
    addresses:
      www.example.com: [192.0.2.10]
    checks:
{checks("http", 1000)}  - name: secondary
    role: secondary
    addresses:
      www.example.com: [198.51.100.10]
    checks:
{checks("tcp", 1000)}"""
open(f"{work}/config.yaml", "w").write(config)
p = subprocess.Popen(["target/release/geofailover", "serve", "--config", f"{work}/config.yaml"],
                     stderr=open(f"{work}/serve.log", "w"))

def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

try:
    time.sleep(5)  # every check has started (jitter < 1 s) and settled
    c0, t0, h0 = cpu(), time.monotonic(), served["http"]
    if os.environ.get("PERF_DATA"):
        # A profile of the controller over the window (it costs CPU too).
        subprocess.Popen(["perf", "record", "-g", "-o", os.environ["PERF_DATA"], "-p", str(p.pid), "--",
                          "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    c1, t1, h1 = cpu(), time.monotonic(), served["http"]
    share = (c1 - c0) / (t1 - t0)
    print(f"2,000 checks at 1 s (1,000 http + 1,000 tcp), {seconds} s window:")
    print(f"  http checks answered per second: {(h1 - h0) / (t1 - t0):.0f}")
    print(f"  controller CPU: {share * 100:.1f} % of one core")
    print(f"  controller RSS: {rss():.1f} MB")
finally:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=20)
PY
