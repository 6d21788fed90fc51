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



def knot_config(work, name, port, zone_file, signing=False, transfer=False):
    """Writes work/NAME.conf: a Knot on 127.0.0.1@PORT serving example.com
    from work/zones/ZONE_FILE, one worker of each kind. With `signing`, it
    signs the zone as geofailover does by default: a CSK, ECDSA P-256,
    NSEC, 14 days of validity refreshed 7 days before, CDS/CDNSKEY
    published. With `transfer`, 127.0.0.1 may transfer it. Returns the
    config's path."""
    os.makedirs(f"{work}/{name}/db")
    policy = """policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
    cds-cdnskey-publish: always
""" if signing else ""
    acl = """acl:
  - id: local
    address: 127.0.0.1
    action: transfer
""" if transfer else ""
    sign_template = "    dnssec-signing: on\n    dnssec-policy: csk\n" if signing else ""
    zone_acl = "    acl: local\n" if transfer else ""
    path = f"{work}/{name}.conf"
    with open(path, "w") as f:
        f.write(f"""server:
  listen: 127.0.0.1@{port}
  rundir: {work}/{name}
  user: root
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: {work}/{name}/db
{acl}{policy}template:
  - id: default
    storage: {work}/zones
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
{sign_template}zone:
  - domain: example.com
    file: {zone_file}
{zone_acl}""")
    return path
