#!/usr/bin/env bash
# The randomized fault search of tests/nemesis.rs, run long: three nodes
# each in a network namespace of its own, a three-member etcd, stand-in
# sites and a slow application flag; fault schedules drawn from SEED (the
# clock's when not given) for SECONDS (default 600). Prints the
# schedules run, the faults applied, the changes of active site, the
# longest time to converge after a heal, and every invariant violation
# with the seed and schedule that replays it. Needs root (namespaces,
# iptables).
#   usage: bench/nemesis.sh [SECONDS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
seed=${2:-}
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
release_build=no
source bench/prelude.sh

export NEMESIS_SECONDS="$seconds"
[ -z "$seed" ] || export NEMESIS_SEED="$seed"
cargo test --locked --quiet --test nemesis -- --ignored --nocapture \
  long_random_fault_schedules_keep_every_invariant 2>&1 | tee "$work/nemesis.log" \
  | grep -E '^(nemesis:|I[1-6]:|seed |replay:|test result)' || true
grep -q '^nemesis: .* 0 violations' "$work/nemesis.log"
