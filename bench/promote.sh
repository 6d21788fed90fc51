#!/usr/bin/env bash
# Promotion (failover.mode: promote) under an application that writes:
# over N runs (default 5), each from fresh state, two MariaDB servers on
# loopback (GTID strict mode, semi-synchronous AFTER_SYNC both ways, the
# secondary a read-only replica), stand-in web sites and the release
# binary on config/example-mysql.yaml in promote mode (promote_after 3 s,
# fence_after 1 s, a flag file for the primary too). A writer inserts a
# row every ~10 ms as the application user, at the secondary if it takes
# it, else at the primary, and keeps every acknowledged id with its time.
# The primary's web site then fails while its database stays reachable,
# so the promotion is automatic with the old primary verified fenced.
# Measured from the first failing web check of the primary:
#   - read-only service: www.example.com answering the secondary (dig);
#   - writes at the secondary: the first write acknowledged there;
# then, once the old primary is rejoined and its site healthy again, from
# the fail-back request (POST /api/v1/failback, a planned switchover):
#   - DNS answering the primary again, the first write acknowledged at the
#     primary, and the longest gap between acknowledged writes;
# and at the end, acknowledged ids missing at the final primary (goal 0).
# Prints a line per run and min/median/max of each figure.
#   usage: [PROMOTE_LOGS=DIR] bench/promote.sh [RUNS]
# PROMOTE_LOGS keeps each run's controller and server logs in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
need=()
command -v dig >/dev/null || need+=(bind9-dnsutils)
{ [ -x /usr/sbin/mariadbd ] || [ -x /usr/bin/mariadbd ]; } || need+=(mariadb-server)
command -v mariadb >/dev/null || need+=(mariadb-client)
source bench/prelude.sh

python3 - "$work" "$runs" "${PROMOTE_LOGS:-}" <<'PY'
import http.server, json, os, re, select, shutil, signal, socket, statistics, subprocess, sys, threading, time
import urllib.request

work, runs, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PRIMARY, SECONDARY = "192.0.2.10", "198.51.100.10"
ADMIN_PASSWORD, APP_PASSWORD, REPL_PASSWORD = "admin-secret-4711", "app-secret-0815", "repl-secret"
PROMOTE_AFTER = 3
mariadbd = next(p for p in ("/usr/sbin/mariadbd", "/usr/bin/mariadbd") if os.path.exists(p))

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def pidfile(name, pid):
    # One PID a line: the shell's trap kills it if Python cannot.
    with open(f"{work}/{name}.pid", "w") as f:
        f.write(f"{pid}\n")

def forget(name):
    try:
        os.remove(f"{work}/{name}.pid")
    except FileNotFoundError:
        pass

def stop(proc, name, grace=20):
    """SIGTERM, then SIGKILL after `grace` seconds; by PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    forget(name)

def wait(condition, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False

# --- stand-in web sites -------------------------------------------------
web = {"primary": free_port(), "secondary": free_port()}
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

for name, port in web.items():
    site(name, port)

# --- MariaDB ------------------------------------------------------------
class Server:
    """A fresh mariadbd in its own folder under `work`, on a loopback port."""
    OPTIONS = ["--user=root", "--skip-name-resolve", "--gtid-strict-mode=ON", "--log-slave-updates=ON",
               "--innodb-buffer-pool-size=16M", "--skip-slave-start",
               "--rpl-semi-sync-master-enabled=ON", "--rpl-semi-sync-slave-enabled=ON",
               "--rpl-semi-sync-master-wait-point=AFTER_SYNC", "--rpl-semi-sync-master-timeout=2000"]

    def __init__(self, name, server_id):
        self.name, self.server_id, self.port = name, server_id, free_port()
        self.dir = f"{work}/{name}-db"
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.socket = f"{self.dir}/sock"
        failures = ""
        for _ in range(3):  # mariadb-install-db gives up now and then under load
            shutil.rmtree(f"{self.dir}/data", ignore_errors=True)
            out = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir}/data",
                                  "--auth-root-authentication-method=normal", "--user=root"],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                break
            failures += out.stdout + out.stderr
        else:
            raise RuntimeError(f"mariadb-install-db failed three times: {failures[-2000:]}")
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={self.dir}/data", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.dir}/mariadbd.pidfile",
             f"--log-bin={self.dir}/binlog", f"--server-id={server_id}"] + self.OPTIONS,
            stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/error.log", "a"))
        pidfile(f"mariadbd-{name}", self.proc.pid)
        if not wait(lambda: self.root("SELECT 1")[0], 30, 0.1):
            raise RuntimeError(f"mariadbd {name} did not start: {open(f'{self.dir}/error.log').read()[-2000:]}")

    def root(self, sql):
        out = subprocess.run(["mariadb", "--no-defaults", "-N", "-B", f"--socket={self.socket}", "-uroot",
                              "-e", sql], capture_output=True, text=True)
        return out.returncode == 0, (out.stdout if out.returncode == 0 else out.stderr).strip()

    def must(self, sql):
        ok, out = self.root(sql)
        if not ok:
            raise RuntimeError(f"{self.name}: {sql}: {out}")
        return out

    def ids(self):
        return {int(l) for l in self.must("SELECT id FROM app.orders").split()}

    def stop(self):
        stop(self.proc, f"mariadbd-{self.name}", 30)

def pair():
    primary, secondary = Server("primary", 1), Server("secondary", 2)
    # As tests/common/mariadb.rs's Pair and tests/promotion.rs's grants.
    primary.must(f"""
        CREATE DATABASE app;
        CREATE TABLE app.orders (id INT PRIMARY KEY, note VARCHAR(64));
        CREATE USER 'repl'@'%' IDENTIFIED BY '{REPL_PASSWORD}';
        GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
        CREATE USER 'app'@'%' IDENTIFIED BY '{APP_PASSWORD}';
        GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO 'app'@'%';
        CREATE USER 'geofailover'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
        GRANT READ_ONLY ADMIN, SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, BINLOG ADMIN ON *.* TO 'geofailover'@'%';
        GRANT SELECT ON mysql.* TO 'geofailover'@'%';
        GRANT PROCESS, CONNECTION ADMIN, RELOAD ON *.* TO 'geofailover'@'%';""")
    secondary.must(f"""
        CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='repl',
          MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
        START SLAVE;""")
    catch_up(primary, secondary)
    # A replica is read-only (the operator's setting before any failover).
    secondary.must("SET GLOBAL read_only = ON")
    return primary, secondary

def catch_up(source, replica):
    position = source.must("SELECT @@gtid_binlog_pos")
    waited = replica.must(f"SELECT MASTER_GTID_WAIT('{position}', 30)")
    if waited != "0":
        raise RuntimeError(f"{replica.name} did not reach {position}")

# --- the application ----------------------------------------------------
class Client:
    """A persistent `mariadb` client as the application user, fed on stdin.
    Each write is `INSERT ...; SELECT tag, ROW_COUNT();`: acknowledged when
    the row count 1 comes back. A lost connection (the client does not
    reconnect in batch mode), an exit or 5 s without an answer end the
    process; the next write starts another."""
    def __init__(self, name, port):
        self.name, self.port, self.proc = name, port, None

    def start(self):
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", "-N", "-B", "-n", "--force", "-h127.0.0.1", f"-P{self.port}",
             "-uapp", f"-p{APP_PASSWORD}", "--connect-timeout=2"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pidfile(f"client-{self.name}", self.proc.pid)
        self.out, self.err = b"", b""

    def close(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            forget(f"client-{self.name}")
            self.proc = None

    def write(self, id, timeout=5.0):
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.start()
        tag = f"w{id}"
        try:
            self.proc.stdin.write(f"INSERT INTO app.orders VALUES ({id}, 'order {id}'); SELECT '{tag}', ROW_COUNT();\n".encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return False
        deadline = time.monotonic() + timeout
        fds = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}
        while True:
            left = deadline - time.monotonic()
            ready = select.select(list(fds), [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.close()
                return False
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    self.close()
                    return False
                if fds[fd] == "out":
                    self.out += data
                    *lines, self.out = self.out.split(b"\n")
                    for line in lines:
                        parts = line.decode(errors="replace").split("\t")
                        if parts[0] == tag:
                            return parts[-1].strip() == "1"
                else:
                    self.err += data
                    *lines, self.err = self.err.split(b"\n")
                    # 2000s: client errors (connection lost or refused).
                    if any(re.match(rb"ERROR 20\d\d", l) for l in lines):
                        self.close()
                        return False

class Writer:
    """One write every ~10 ms: at the secondary if it takes it, else at the
    primary; each attempt with an id of its own. Keeps (id, time of the
    acknowledgement, site) of every acknowledged write."""
    def __init__(self, primary, secondary):
        self.clients = [Client("secondary", secondary.port), Client("primary", primary.port)]
        self.acks, self.next, self.halt = [], 1, False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.halt:
            for client in self.clients:
                id, self.next = self.next, self.next + 1
                if client.write(id):
                    self.acks.append((id, time.monotonic(), client.name))
                    break
            time.sleep(0.01)

    def at(self, where, after=0.0):
        return [a for a in list(self.acks) if a[2] == where and a[1] > after]

    def stop(self):
        self.halt = True
        self.thread.join()
        for c in self.clients:
            c.close()
        return list(self.acks)

# --- the controller -----------------------------------------------------
def config(state, primary, secondary, dns_port, api_port):
    text = open("config/example-mysql.yaml").read()
    text = (text.replace("state_dir: ../state", f"state_dir: {state}")
            .replace("path: ../state/READONLY", f"path: {state}/READONLY")
            .replace("../zones/", os.path.abspath("zones") + "/")
            .replace("127.0.0.1:5353", f"127.0.0.1:{dns_port}")
            .replace("127.0.0.1:8053", f"127.0.0.1:{api_port}")
            .replace("127.0.0.1:3306", f"127.0.0.1:{primary.port}")
            .replace("127.0.0.1:3307", f"127.0.0.1:{secondary.port}")
            .replace("127.0.0.1:18081", f"127.0.0.1:{web['primary']}")
            .replace("127.0.0.1:18082", f"127.0.0.1:{web['secondary']}"))
    # As tests/promotion.rs's promote_mode.
    edits = [
        ("  flag_clear_margin: 1s",
         f"  flag_clear_margin: 1s\n  mode: promote\n  promote_after: {PROMOTE_AFTER}s\n  fence_after: 1s\n"),
        ("    max_lag: 5s                  # fail-back needs the secondary this close",
         "    max_lag: 5s\n    user: repl\n    password_env: GEOFAILOVER_REPL_PASSWORD"),
        ("      app_accounts: [\"app@%\"]\n  - name: secondary",
         f"      app_accounts: [\"app@%\"]\n    read_only:\n      flag_file:\n        path: {state}/PRIMARY-READONLY\n"
         f"        content: \"read-only\\n\"\n  - name: secondary"),
    ]
    for old, new in edits:
        if old not in text:
            raise RuntimeError(f"config/example-mysql.yaml changed: no {old!r}")
        text = text.replace(old, new)
    path = f"{work}/example-mysql.yaml"
    open(path, "w").write(text)
    return path

class Controller:
    def __init__(self, path, state, dns_port, api_port):
        self.state, self.dns_port, self.api = state, dns_port, f"http://127.0.0.1:{api_port}"
        self.log = f"{work}/serve.log"
        env = dict(os.environ, GEOFAILOVER_DB_PASSWORD=ADMIN_PASSWORD, GEOFAILOVER_REPL_PASSWORD=REPL_PASSWORD)
        self.proc = subprocess.Popen(["target/release/geofailover", "serve", "--config", path],
                                     stderr=open(self.log, "w"), stdout=subprocess.DEVNULL, env=env)
        pidfile("serve", self.proc.pid)

    def status(self):
        try:
            with urllib.request.urlopen(f"{self.api}/api/v1/status", timeout=2) as r:
                return json.load(r)
        except Exception:
            return {}

    def stage(self):
        return ((self.status().get("promotion") or {}).get("stage"))

    def post(self, path, body):
        token = open(f"{self.state}/api.token").read().strip()
        req = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def events(self):
        token = open(f"{self.state}/api.token").read().strip()
        req = urllib.request.Request(f"{self.api}/api/v1/events?since=0", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def www(self):
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.dns_port), "+short", "+time=1", "+tries=1",
                              "www.example.com", "A"], capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        stop(self.proc, "serve")

# --- one run ------------------------------------------------------------
class RunFailed(Exception):
    pass

def run_once(run):
    for name in web:
        try:
            os.remove(f"{work}/{name}.down")
        except FileNotFoundError:
            pass
    first_fail.clear()
    state = f"{work}/state"
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    primary = secondary = controller = writer = None
    try:
        primary, secondary = pair()
        dns_port, api_port = free_port(), free_port()
        controller = Controller(config(state, primary, secondary, dns_port, api_port), state, dns_port, api_port)
        c = controller
        def need(ok, what):
            if not ok:
                raise RunFailed(what)
        def ready():
            st = c.status()
            return ([s.get("health") for s in st.get("sites", [])] == ["healthy", "healthy"]
                    and (st.get("promotion") or {}).get("rpo_zero") is True)
        need(wait(ready, 60, 0.1), f"sites not healthy or RPO not 0: {json.dumps(c.status().get('promotion'))}")
        need(wait(lambda: c.www() == PRIMARY, 20), "www.example.com does not answer the primary")
        writer = Writer(primary, secondary)
        need(wait(lambda: len(writer.at("primary")) >= 30, 20), "the writer gets no writes acknowledged at the primary")

        # The primary's web site fails; its database stays reachable.
        open(f"{work}/primary.down", "w").close()
        need(wait(lambda: c.www() == SECONDARY, 30, 0.005), "www.example.com never answered the secondary")
        dns_secondary = time.monotonic()
        need(wait(lambda: writer.at("secondary"), 60), f"no write acknowledged at the secondary; promotion: "
             f"{json.dumps(c.status().get('promotion'))}")
        failed = first_fail["primary"]
        first_secondary = writer.at("secondary")[0][1]
        last_primary = max((a[1] for a in writer.at("primary") if a[1] < first_secondary), default=failed)
        need(wait(lambda: c.stage() == "rejoined", 60, 0.05), f"the old primary never rejoined: "
             f"{json.dumps(c.status().get('promotion'))}")

        # The primary's site healthy again; the fail-back once its pre-checks pass.
        os.remove(f"{work}/primary.down")
        def accepted():
            code, reply = c.post("/api/v1/failback", {"dry_run": True})
            return code == 200 and isinstance(reply, dict) and reply.get("accepted") is True
        need(wait(accepted, 60, 0.2),
             f"fail-back pre-checks never passed: {json.dumps(c.status().get('failback_prechecks'))}")
        requested = time.monotonic()
        code, reply = c.post("/api/v1/failback", {"operator": "bench"})
        need(code == 200, f"fail-back refused: {code} {reply}")
        need(wait(lambda: c.www() == PRIMARY, 60, 0.005), "www.example.com never answered the primary again")
        dns_primary = time.monotonic()
        need(wait(lambda: writer.at("primary", requested), 60), "no write acknowledged at the primary after the fail-back")
        back = writer.at("primary", requested)[0][1]
        need(wait(lambda: c.stage() == "read_only", 60, 0.05), f"the switchover never finished: "
             f"{json.dumps(c.status().get('promotion'))}")
        need(wait(lambda: len(writer.at("primary", back)) >= 20, 30), "writes did not go on at the primary")
        acks = writer.stop()
        writer = None

        # The longest time without an acknowledged write around the switchover.
        times = [a[1] for a in acks]
        window = max(b - a for a, b in zip(times, times[1:]) if b > requested)
        at_primary = primary.ids()
        lost = [a[0] for a in acks if a[0] not in at_primary]
        catch_up(primary, secondary)
        at_secondary = secondary.ids()
        missing_secondary = [a[0] for a in acks if a[0] not in at_secondary]
        stopped = None
        for e in c.events():
            m = re.search(r"writes stopped for (\d+) ms", json.dumps(e))
            if m:
                stopped = int(m.group(1)) / 1000
        return {
            "read_only": dns_secondary - failed,
            "writes_secondary": first_secondary - failed,
            "promotion_gap": first_secondary - last_primary,
            "dns_back": dns_primary - requested,
            "writes_back": back - requested,
            "window": window,
            "journal_window": stopped,
            "acked": len(acks),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "missing_secondary": len(missing_secondary),
            "read_only_primary": primary.must("SELECT @@read_only"),
            "read_only_secondary": secondary.must("SELECT @@read_only"),
        }
    finally:
        if writer:
            writer.stop()
        if controller:
            controller.stop()
        for db in (primary, secondary):
            if db:
                db.stop()
        if keep:
            dest = f"{keep}/run{run + 1}"
            os.makedirs(dest, exist_ok=True)
            for src, name in ((f"{work}/serve.log", "serve.log"), (f"{work}/example-mysql.yaml", "example-mysql.yaml"),
                              (f"{work}/primary-db/error.log", "primary-mariadbd.log"),
                              (f"{work}/secondary-db/error.log", "secondary-mariadbd.log")):
                if os.path.exists(src):
                    shutil.copy(src, f"{dest}/{name}")

results, failures = [], []
print(f"{runs} runs; promote_after {PROMOTE_AFTER} s, fence_after 1 s, web checks interval 1 s x fall 3, "
      f"semi-sync AFTER_SYNC (timeout 2000 ms); times from the primary's first failing web check", flush=True)
header = (f"{'run':>3}  {'read-only':>9}  {'writes@2nd':>10}  {'gap':>6}  {'fb->DNS':>7}  {'fb->writes':>10}  "
          f"{'window':>6}  {'(journal)':>9}  {'acked':>5}  {'lost':>4}")
print(header, flush=True)
for run in range(runs):
    try:
        r = run_once(run)
    except (RunFailed, RuntimeError) as e:
        log = open(f"{work}/serve.log").read() if os.path.exists(f"{work}/serve.log") else ""
        print(f"{run + 1:3}  FAILED: {e}\n--- the controller's log, last 60 lines:\n"
              + "\n".join(log.splitlines()[-60:]), flush=True)
        failures.append(run + 1)
        continue
    results.append(r)
    jw = f"{r['journal_window']:.3f}" if r["journal_window"] is not None else "-"
    print(f"{run + 1:3}  {r['read_only']:8.3f}s  {r['writes_secondary']:9.3f}s  {r['promotion_gap']:5.3f}s  "
          f"{r['dns_back']:6.3f}s  {r['writes_back']:9.3f}s  {r['window']:5.3f}s  {jw:>8}s  {r['acked']:5}  {r['lost']:4}"
          + (f"  lost ids {r['lost_ids']}" if r["lost"] else "")
          + (f"  ({r['missing_secondary']} missing at the secondary)" if r["missing_secondary"] else "")
          + ("" if (r["read_only_primary"], r["read_only_secondary"]) == ("0", "1")
             else f"  read_only primary {r['read_only_primary']} secondary {r['read_only_secondary']}"),
          flush=True)

def summary(label, key, unit="s"):
    values = [r[key] for r in results if r[key] is not None]
    if not values:
        return
    f = (lambda v: f"{v:.3f} s") if unit == "s" else (lambda v: f"{v}")
    print(f"{label}: min {f(min(values))}, median {f(statistics.median(values))}, max {f(max(values))}")

print()
print(f"runs: {len(results)} of {runs}" + (f"; failed: {failures}" if failures else ""))
if results:
    summary("read-only service (first failing check -> DNS answers the secondary)", "read_only")
    summary(f"writes at the secondary (first failing check -> first write acknowledged there; promote_after {PROMOTE_AFTER} s)",
            "writes_secondary")
    summary("writes stopped by the promotion (last acknowledged at the primary -> first at the secondary)", "promotion_gap")
    summary("fail-back request -> DNS answers the primary", "dns_back")
    summary("fail-back request -> first write acknowledged at the primary", "writes_back")
    summary("write window of the switchover back (longest gap between acknowledged writes)", "window")
    summary("the same window as the controller's journal reports it", "journal_window")
    summary("acknowledged writes lost (goal 0)", "lost", unit="n")
sys.exit(1 if failures else 0)
PY
