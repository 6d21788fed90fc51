"""What the benchmarks that run servers side by side share: each server in
a process group of its own (so every process it forks is counted and
stopped), its CPU time and RSS read from /proc."""

import os
import subprocess


def start(work, procs, name, argv, cwd=None):
    """Starts `argv` pinned to core 1, its stderr in work/NAME.log."""
    p = subprocess.Popen(["taskset", "-c", "1"] + argv, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=open(f"{work}/{name}.log", "w"), start_new_session=True)
    procs.append(p)
    return p


def group_pids(p):
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getpgid(int(pid)) == p.pid:
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


def cpu_seconds(p):
    """Process-level utime + stime: every thread, finished ones too."""
    total = 0
    for pid in group_pids(p):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(p):
    total = 0
    for pid in group_pids(p):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def knot_signing_config(work, port, zone_file):
    """Writes work/knot-dnssec.conf: a Knot on 127.0.0.1@PORT signing
    example.com (work/zones/ZONE_FILE) as geofailover does by default: a
    CSK, ECDSA P-256, NSEC, 14 days of validity refreshed 7 days before,
    CDS/CDNSKEY published; one worker of each kind. Returns its path."""
    os.makedirs(f"{work}/knot-dnssec/db")
    path = f"{work}/knot-dnssec.conf"
    with open(path, "w") as f:
        f.write(f"""server:
  listen: 127.0.0.1@{port}
  rundir: {work}/knot-dnssec
  user: root
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: {work}/knot-dnssec/db
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
    cds-cdnskey-publish: always
template:
  - id: default
    storage: {work}/zones
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    dnssec-signing: on
    dnssec-policy: csk
zone:
  - domain: example.com
    file: {zone_file}
""")
    return path
