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
