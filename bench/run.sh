#!/usr/bin/env bash
# cognito-sidecar benchmark suite: one command, writes BENCHMARKS.md.
#
#   bash bench/run.sh                          # about 12 minutes on 2 cores (+ the build)
#   BENCH_SOAK_SECONDS=600 bash bench/run.sh   # with the issue's 10-minute soak (~22)
#
# What it does:
#   1. installs what it needs with apt if missing (nginx-light, haproxy, wrk; root or
#      sudo), without starting their system services;
#   2. builds: cargo build --release --locked --bin cognito-sidecar --examples
#      (examples/bench_fixtures.rs, examples/loadgen.rs);
#   3. runs bench/driver.py: fixtures (RSA key, JWKS, PEM key, realistic Cognito token,
#      200k distinct tokens), a local nginx backend + JWKS server, the sidecar, nginx
#      (plain proxy), HAProxy 2.6 (jwt_verify) and two bare hyper proxies
#      (examples/hyper_floor.rs, the stack's floor; examples/hyper_floor_lean.rs, the
#      raised floor); correctness checks; throughput (BENCH_ROUNDS interleaved rounds),
#      a two-core scenario (nginx with 2 workers vs the sidecar, nothing pinned),
#      fixed-rate latency, memory, cold start, soak, perf profile, criterion
#      micro-benchmarks; writes BENCHMARKS.md with the issue 6 and issue 14 target
#      tables. Load generators run on CPU 0 and servers on CPU 1 (taskset), except in
#      the two-core scenario. Everything listens on 127.0.0.1, on ports picked at run time.
#
# Everything the run starts is stopped when it ends (also on Ctrl-C). Work files go to
# target/bench/. Settings: environment variables listed in bench/driver.py.
# Related tools (not run here): bench/callgrind.py (instructions per request, by
# function), bench/ab.py (A/B throughput of two builds); see bench/PROFILE.md.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# --- 1. tools -----------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    log "installing ${need[*]}"
    # Debian starts services on install; a policy-rc.d that says no keeps the
    # packages' own nginx/haproxy from starting (only if none exists already).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
    if [ "$created_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

# --- 2. build -----------------------------------------------------------------
log "building (release)"
cargo build --release --locked --bin cognito-sidecar --examples

# --- 3. run -------------------------------------------------------------------
# 10,000 idle connections need more than 10,000 descriptors in the holder and the
# sidecar: raise the soft limit to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
    log "warning: open-file limit $(ulimit -n) is below 10,100; the idle-connection scenario will hold fewer"
fi

driver_pid=""
stop_driver() {
    if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
}
trap stop_driver EXIT INT TERM HUP

python3 bench/driver.py &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
exit "$status"
