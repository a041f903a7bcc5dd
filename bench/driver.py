#!/usr/bin/env python3
"""Benchmark driver for cognito-sidecar. Run it through `bash bench/run.sh`, which
installs the peers and builds the binaries first; this script only orchestrates.

It starts (all on 127.0.0.1, ports picked here, servers pinned to one core and the
load generators to the other):
  - backend:  nginx `return 200` with a small JSON body, plus the JWKS as a static file
  - nginx:    plain reverse proxy to the backend, no auth (upstream keep-alive)
  - haproxy:  2.6 verifying RS256 with jwt_verify (+ alg, iss and exp checks)
  - sidecar:  cognito-sidecar with the configuration from examples/bench_fixtures.rs
  - floors:   bare hyper proxies: examples/hyper_floor.rs (the sidecar's stack) and
              examples/hyper_floor_lean.rs (the leanest hyper design measured)
and, for the two-core scenario, a second backend, nginx with 2 workers and a second
sidecar, all on both cores with nothing pinned,
then verifies every proxy's answers (200 valid / 401 tampered ...), measures the
scenarios and writes BENCHMARKS.md. Everything it started is stopped on exit.

Settings (environment):
  BENCH_DURATION=10         seconds per wrk scenario
  BENCH_ROUNDS=3            rounds of the throughput scenarios (interleaved, order
                            reversed every other round; the median round is reported)
  BENCH_TWO_CORE_ROUNDS=3   rounds of the two-core scenario (0 skips it)
  BENCH_CONNECTIONS=64      wrk / loadgen connections
  BENCH_RATE=2000           fixed-rate scenario, requests per second
  BENCH_RATE_DURATION=15    fixed-rate scenario, seconds (after a 2 s warm-up)
  BENCH_SOAK_SECONDS=60     soak at load (the issue's 10-minute soak: 600)
  BENCH_TOKENS=200000       distinct tokens for the no-reuse scenario and the soak
  BENCH_IDLE_CONNECTIONS=10000
  BENCH_PROFILE=1           perf sampling of the sidecar under load (if perf works)
  BENCH_MICRO=1             criterion micro-benchmarks (cargo bench --bench decision)
  BENCH_ACCESS_LOG=1        extra scenario: sidecar with the access log on
  BENCH_OUTPUT=BENCHMARKS.md
  BENCH_SIDECAR=path       another sidecar binary (A/B comparison of a change)

`python3 bench/driver.py --report-only` rewrites BENCHMARKS.md from the last run's
target/bench/run/results.json (after editing bench/PROFILE.md).
"""

import atexit
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REL = os.path.join(TARGET, "release")
# BENCH_SIDECAR: measure another build of the sidecar (A/B of a change).
SIDECAR = os.environ.get("BENCH_SIDECAR", os.path.join(REL, "cognito-sidecar"))
LOADGEN = os.path.join(REL, "examples", "loadgen")
FIXTURES_BIN = os.path.join(REL, "examples", "bench_fixtures")
FLOOR = os.path.join(REL, "examples", "hyper_floor")
FLOOR_LEAN = os.path.join(REL, "examples", "hyper_floor_lean")
BENCH_DIR = os.path.join(TARGET, "bench")
FIX = os.path.join(BENCH_DIR, "fixtures")
WORK = os.path.join(BENCH_DIR, "run")
LUA = os.path.join(ROOT, "bench", "fresh_tokens.lua")
PROFILE_NOTES = os.path.join(ROOT, "bench", "PROFILE.md")


def env_int(name, default):
    return int(os.environ.get(name, default))


DURATION = env_int("BENCH_DURATION", 10)
ROUNDS = max(1, env_int("BENCH_ROUNDS", 3))
TWO_CORE_ROUNDS = env_int("BENCH_TWO_CORE_ROUNDS", 3)
CONNS = env_int("BENCH_CONNECTIONS", 64)
RATE = env_int("BENCH_RATE", 2000)
RATE_DURATION = env_int("BENCH_RATE_DURATION", 15)
SOAK = env_int("BENCH_SOAK_SECONDS", 60)
TOKENS = env_int("BENCH_TOKENS", 200000)
IDLE_CONNS = env_int("BENCH_IDLE_CONNECTIONS", 10000)
PROFILE = env_int("BENCH_PROFILE", 1)
MICRO = env_int("BENCH_MICRO", 1)
ACCESS_LOG = env_int("BENCH_ACCESS_LOG", 1)
FIXTURE_MAX_AGE = env_int("BENCH_FIXTURE_MAX_AGE", 1800)
OUTPUT = os.environ.get("BENCH_OUTPUT", os.path.join(ROOT, "BENCHMARKS.md"))

NPROC = os.cpu_count() or 1
LOAD_CPU = "0"
SERVER_CPU = "1" if NPROC > 1 else "0"
# The two-core scenario: everything (load generator, backend, proxy) on these two CPUs,
# nothing pinned within them.
BOTH_CPUS = "0,1" if NPROC > 1 else "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

STARTED = []  # Popen objects we started, stopped in reverse order on exit


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg):
    log("FATAL: " + msg)
    sys.exit(1)


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


def stop(p, sig=signal.SIGTERM, wait=5.0):
    """Stops one process we started (and its process group: nginx workers)."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    if p in STARTED:
        STARTED.remove(p)


def cleanup():
    for p in reversed(list(STARTED)):
        stop(p)


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping everything")
    cleanup()
    sys.exit(130)


def start(name, cmd, cpu=SERVER_CPU, quiet=False):
    """Starts a server pinned to `cpu`, output to WORK/name.log (or /dev/null)."""
    out = subprocess.DEVNULL if quiet else open(os.path.join(WORK, f"{name}.log"), "wb")
    p = subprocess.Popen(
        ["taskset", "-c", cpu] + cmd,
        stdout=out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    p.bench_name = name
    STARTED.append(p)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            die(f"{proc.bench_name} exited with {proc.returncode}; see {WORK}/{proc.bench_name}.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    die(f"{proc.bench_name} did not listen on {port}")


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(admin_port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            die(f"{proc.bench_name} exited; see {WORK}/{proc.bench_name}.log")
        try:
            if get(admin_port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    die(f"{proc.bench_name} not ready")


# ---------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def tree(pid):
    """The process and its children (nginx master + workers)."""
    return [pid] + children(pid)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pids, key="VmRSS"):
    return sum(status_kb(p, key) for p in pids) / 1024.0


def reset_peak(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass


# ---------------------------------------------------------------------------
# load generators
# ---------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk(url, seconds, header=None, script_args=None, cpu=LOAD_CPU):
    cmd = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency"]
    if header:
        cmd += ["-H", header]
    if script_args:
        cmd += ["-s", LUA]
    cmd.append(url)
    if script_args:
        cmd += ["--"] + script_args
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    res = {"raw": out, "non2xx": 0, "socket_errors": 0}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            res["rps"] = float(s.split()[1])
        elif re.match(r"^\d+ requests in", s):
            res["requests"] = int(s.split()[0])
        elif s.startswith("Non-2xx or 3xx responses:"):
            res["non2xx"] = int(s.split()[-1])
        elif s.startswith("Socket errors:"):
            res["socket_errors"] = sum(int(x) for x in re.findall(r"\d+", s))
        elif re.match(r"^(50|75|90|99)%\s", s):
            pct, val = s.split()
            res["p" + pct.rstrip("%")] = to_ms(val)
        elif s.startswith("FRESH_TOKENS"):
            res["fresh"] = dict(kv.split("=") for kv in s.split()[1:])
    if "rps" not in res:
        die(f"wrk failed on {url}:\n{out}")
    return res


def loadgen_rate(url, header=None):
    cmd = [
        "taskset", "-c", LOAD_CPU, LOADGEN, "rate", "--url", url, "--rate", str(RATE),
        "--duration", str(RATE_DURATION), "--warmup", "2", "--connections", str(CONNS),
    ]
    if header:
        cmd += ["--header", header]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# configuration files
# ---------------------------------------------------------------------------

NGINX_COMMON = """
worker_processes {workers};
daemon off;
master_process on;
user root;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp/{name}-body;
    proxy_temp_path {work}/tmp/{name}-proxy;
    fastcgi_temp_path {work}/tmp/{name}-fastcgi;
    uwsgi_temp_path {work}/tmp/{name}-uwsgi;
    scgi_temp_path {work}/tmp/{name}-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
{servers}
}}
"""

BACKEND_SERVERS = """
    server {{
        listen 127.0.0.1:{backend} backlog=4096;
        default_type application/json;
        location / {{ return 200 '{{"ok":true,"service":"orders","items":[{{"id":1,"qty":2}}]}}\\n'; }}
    }}
    server {{
        listen 127.0.0.1:{jwks};
        location = /jwks.json {{ default_type application/json; alias {fix}/jwks.json; }}
    }}
"""

PROXY_SERVERS = """
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

HAPROXY_CFG = """
global
    nbthread 1
    maxconn 8000
    pidfile {work}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:{port}
    # RS256 only, the pool's issuer, not expired, and a valid signature
    # (the key file is loaded at start-up).
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless {{ var(txn.jwt_alg) -m str RS256 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {iss} }}
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.jwt_alg,"{fix}/pubkey.pem") -m int 1 }}
    default_backend be

backend be
    server s1 127.0.0.1:{backend}
"""


def nginx_conf(name, servers, workers=1):
    """An nginx configuration (work files under WORK) with `workers` worker processes."""
    return NGINX_COMMON.format(work=WORK, name=name, servers=servers, workers=workers)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def sidecar_config(base_text, listen, admin, log_level="warn"):
    t = re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{listen}"', base_text)
    t = re.sub(r'(?m)^admin_listen = ".*"$', f'admin_listen = "127.0.0.1:{admin}"', t)
    t = re.sub(r'(?m)^log_level = ".*"$', f'log_level = "{log_level}"', t)
    return t


# ---------------------------------------------------------------------------
# environment facts
# ---------------------------------------------------------------------------


def cmd_out(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (r.stdout + r.stderr).strip()
    except OSError:
        return "n/a"


def machine_facts():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    os_name = "unknown"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    commit = cmd_out(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"])
    dirty = cmd_out(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": NPROC,
        "cpu": model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "loadavg": os.getloadavg(),
        "rustc": cmd_out(["rustc", "-V"]),
        "nginx": cmd_out(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": cmd_out(["haproxy", "-v"]).splitlines()[0],
        "wrk": cmd_out(["wrk", "-v"]).splitlines()[0],
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "sidecar": cmd_out([SIDECAR, "--version"]),
    }


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


def fixtures():
    meta_path = os.path.join(FIX, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        age = time.time() - meta["created_at"]
        if age < FIXTURE_MAX_AGE and meta["tokens"] >= TOKENS:
            log(f"reusing fixtures in {FIX} ({meta['tokens']} tokens, {age:.0f}s old)")
            return meta, False
    log(f"generating fixtures: RSA key, realistic token, {TOKENS} distinct tokens ...")
    t = time.time()
    subprocess.run([FIXTURES_BIN, "--out", FIX, "--tokens", str(TOKENS)], check=True)
    log(f"fixtures generated in {time.time() - t:.1f}s")
    with open(meta_path) as f:
        return json.load(f), True


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(cleanup)
    os.environ.pop("RUST_LOG", None)  # would override the configuration's log_level
    for tool in (SIDECAR, LOADGEN, FIXTURES_BIN, FLOOR, FLOOR_LEAN):
        if not os.path.exists(tool):
            die(f"{tool} missing: run bench/run.sh (it builds them)")
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not shutil.which(tool):
            die(f"{tool} not installed: run bench/run.sh (it installs it)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "tmp"))
    os.makedirs(FIX, exist_ok=True)
    facts = machine_facts()
    log(f"machine: {facts['nproc']} cpu ({facts['cpu']}), load average {facts['loadavg']}")
    meta, generated = fixtures()
    R = {"facts": facts, "rounds": ROUNDS, "meta": meta, "fixtures_generated": generated,
         "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    token = open(os.path.join(FIX, "token.txt")).read().strip()
    tampered = open(os.path.join(FIX, "token_tampered.txt")).read().strip()
    nogroup = open(os.path.join(FIX, "token_nogroup.txt")).read().strip()
    tokens_file = os.path.join(FIX, "tokens.txt")
    with open(tokens_file) as f:
        first_fresh = f.readline().strip()
    auth = f"Authorization: Bearer {token}"
    bearer = {"Authorization": f"Bearer {token}"}

    ports = {k: free_port() for k in ("backend", "jwks", "nginx", "haproxy", "sidecar", "admin",
                                      "floor", "floor_lean")}
    log(f"ports: {ports}")

    # -- backend + JWKS ----------------------------------------------------
    conf = write(
        os.path.join(WORK, "backend.conf"),
        nginx_conf("backend", BACKEND_SERVERS.format(backend=ports["backend"], jwks=ports["jwks"], fix=FIX)),
    )
    backend = start("backend", ["nginx", "-c", conf, "-e", os.path.join(WORK, "backend.stderr.log")])
    wait_port(ports["backend"], backend)
    wait_port(ports["jwks"], backend)

    # -- sidecar -----------------------------------------------------------
    jwks_url = f"http://127.0.0.1:{ports['jwks']}/jwks.json"
    subprocess.run(
        [FIXTURES_BIN, "--out", FIX, "--config-only", "--listen", f"127.0.0.1:{ports['sidecar']}",
         "--admin", f"127.0.0.1:{ports['admin']}", "--upstream", f"127.0.0.1:{ports['backend']}",
         "--jwks-url", jwks_url],
        check=True, capture_output=True,
    )
    base_config = open(os.path.join(FIX, "config.toml")).read()
    sc_conf = write(os.path.join(WORK, "sidecar.toml"), base_config)
    sidecar = start("sidecar", [SIDECAR, "--config", sc_conf])
    wait_ready(ports["admin"], sidecar)
    time.sleep(1.0)
    R["sidecar_threads"] = status_kb(sidecar.pid, "Threads")
    R["rss_idle_main"] = rss_mib([sidecar.pid])

    # -- nginx plain proxy -------------------------------------------------
    conf = write(
        os.path.join(WORK, "nginx.conf"),
        nginx_conf("nginx", PROXY_SERVERS.format(backend=ports["backend"], port=ports["nginx"])),
    )
    nginx = start("nginx", ["nginx", "-c", conf, "-e", os.path.join(WORK, "nginx.stderr.log")])
    wait_port(ports["nginx"], nginx)

    # -- haproxy + jwt_verify ----------------------------------------------
    conf = write(
        os.path.join(WORK, "haproxy.cfg"),
        HAPROXY_CFG.format(work=WORK, port=ports["haproxy"], backend=ports["backend"], fix=FIX,
                           iss=meta["issuer"]),
    )
    check = subprocess.run(["haproxy", "-c", "-f", conf], capture_output=True, text=True)
    if check.returncode != 0:
        die("haproxy configuration invalid:\n" + check.stdout + check.stderr)
    haproxy = start("haproxy", ["haproxy", "-db", "-f", conf])
    wait_port(ports["haproxy"], haproxy)

    # -- bare hyper proxy (the floor under the sidecar) ----------------------
    floor = start("hyper-floor", [FLOOR, "--listen", f"127.0.0.1:{ports['floor']}",
                                  "--upstream", f"127.0.0.1:{ports['backend']}"])
    wait_port(ports["floor"], floor)
    # The raised floor: one current_thread runtime per CPU it may use (here: one).
    floor_lean = start("hyper-floor-lean", [FLOOR_LEAN, "--listen", f"127.0.0.1:{ports['floor_lean']}",
                                            "--upstream", f"127.0.0.1:{ports['backend']}"])
    wait_port(ports["floor_lean"], floor_lean)

    # -- correctness before measuring ---------------------------------------
    checks = [
        ("bare hyper proxy", ports["floor"], "/api/orders", {}, 200),
        ("lean hyper proxy", ports["floor_lean"], "/api/orders", {}, 200),
        ("backend", ports["backend"], "/api/orders", {}, 200),
        ("nginx", ports["nginx"], "/api/orders", {}, 200),
        ("haproxy: valid token", ports["haproxy"], "/api/orders", bearer, 200),
        ("haproxy: tampered signature", ports["haproxy"], "/api/orders",
         {"Authorization": f"Bearer {tampered}"}, 401),
        ("haproxy: no token", ports["haproxy"], "/api/orders", {}, 401),
        ("sidecar: valid token", ports["sidecar"], "/api/orders", bearer, 200),
        ("sidecar: tampered signature", ports["sidecar"], "/api/orders",
         {"Authorization": f"Bearer {tampered}"}, 401),
        ("sidecar: no token", ports["sidecar"], "/api/orders", {}, 401),
        ("sidecar: fresh token", ports["sidecar"], "/api/orders",
         {"Authorization": f"Bearer {first_fresh}"}, 200),
        ("sidecar: public route", ports["sidecar"], "/public/health", {}, 200),
        ("sidecar: group route, member", ports["sidecar"], "/admin/orders", bearer, 200),
        ("sidecar: group route, not a member", ports["sidecar"], "/admin/orders",
         {"Authorization": f"Bearer {nogroup}"}, 403),
    ]
    R["checks"] = []
    for name, port, path, headers, want in checks:
        got, _ = get(port, path, headers)
        R["checks"].append((name, want, got))
        if got != want:
            die(f"correctness check failed: {name}: want {want}, got {got}")
    log(f"correctness: {len(checks)} checks passed")

    backend_pids = tree(backend.pid)
    servers = {
        "direct": backend_pids,
        "nginx": tree(nginx.pid),
        "haproxy": [haproxy.pid],
        "sidecar": [sidecar.pid],
        "floor": [floor.pid],
        "floor_lean": [floor_lean.pid],
    }
    url = lambda k, path: f"http://127.0.0.1:{ports[k]}{path}"  # noqa: E731

    def measure(label, server, target_url, header=None, script_args=None, warm=True,
                proc_pids=None):
        pids = proc_pids or servers[server]
        be = [] if server == "direct" else backend_pids
        return measure_wrk(label, target_url, pids, be, header=header, script_args=script_args,
                           warm_header=auth if warm else None)

    # -- throughput scenarios ---------------------------------------------
    T = measure_rounds(measure, [
        ("direct", "direct to backend (no proxy)", "direct", url("backend", "/api/orders"), {}),
        ("nginx", "nginx reverse proxy, no auth", "nginx", url("nginx", "/api/orders"), {}),
        ("floor", "bare hyper proxy, no auth (examples/hyper_floor.rs)", "floor",
         url("floor", "/api/orders"), {}),
        ("floor_lean", "raised floor: lean hyper proxy, no auth (examples/hyper_floor_lean.rs)",
         "floor_lean", url("floor_lean", "/api/orders"), {}),
        ("haproxy", "HAProxy 2.6 + jwt_verify (RS256)", "haproxy", url("haproxy", "/api/orders"),
         {"header": auth}),
        ("reused", "sidecar, same token (cache hit)", "sidecar", url("sidecar", "/api/orders"),
         {"header": auth}),
        ("public", "sidecar, public route (no token)", "sidecar", url("sidecar", "/public/health"), {}),
        ("group", "sidecar, group-check route /admin/", "sidecar", url("sidecar", "/admin/orders"),
         {"header": auth}),
        ("fresh", "sidecar, new token every request", "sidecar", url("sidecar", "/api/orders"),
         {"script_args": [tokens_file, "/api/orders"]}),
    ], ROUNDS)
    R["rss_after_load_main"] = rss_mib([sidecar.pid])
    R["throughput"] = T

    # -- access log on (same binary, log_level = info, JSON to /dev/null) ----
    if ACCESS_LOG:
        p_l, a_l = free_port(), free_port()
        conf = write(os.path.join(WORK, "sidecar-accesslog.toml"),
                     sidecar_config(base_config, p_l, a_l, "info"))
        # The access log goes to stderr: /dev/null, so only formatting and writing count.
        logged = start("sidecar-accesslog", [SIDECAR, "--config", conf], quiet=True)
        wait_ready(a_l, logged)
        stop(sidecar)  # one sidecar on the server core at a time
        T["accesslog"] = measure("sidecar, same token, access log on", "sidecar",
                                 url_for(p_l, "/api/orders"), header=auth,
                                 proc_pids=[logged.pid])
        stop(logged)
        sidecar = start("sidecar", [SIDECAR, "--config", sc_conf])
        wait_ready(ports["admin"], sidecar)
        servers["sidecar"] = [sidecar.pid]

    # -- two cores, nothing pinned: nginx with 2 workers vs the sidecar's default runtime --
    R["two_cores"] = two_cores(base_config, auth) if TWO_CORE_ROUNDS > 0 and NPROC > 1 else None

    # -- fixed rate -----------------------------------------------------------
    L = {}
    for key, port, hdr in (
        ("direct", ports["backend"], None),
        ("nginx", ports["nginx"], None),
        ("floor", ports["floor"], None),
        ("haproxy", ports["haproxy"], auth),
        ("sidecar", ports["sidecar"], auth),
    ):
        L[key] = loadgen_rate(url_for(port, "/api/orders"), hdr)
        c, s = L[key]["corrected"], L[key]["service"]
        log(f"fixed rate {RATE}/s {key}: achieved {L[key]['achieved_rate']:.0f}/s, "
            f"p50 {c['p50_ms']:.3f} p99 {c['p99_ms']:.3f} p99.9 {c['p999_ms']:.3f} ms "
            f"(service p99 {s['p99_ms']:.3f}), non-2xx {L[key]['non2xx']}, errors {L[key]['errors']}")
    R["latency"] = L

    # -- profile ----------------------------------------------------------------
    R["profile"] = profile(sidecar, url("sidecar", "/api/orders"), auth, tokens_file) if PROFILE else None

    # -- soak (main sidecar, new token every request, list cycling) ----------
    R["soak"] = soak(sidecar, url("sidecar", "/api/orders"), tokens_file)

    # The same idle connections held by nginx, for comparison.
    R["nginx_idle"] = hold_peer("nginx", ports["nginx"], tree(nginx.pid))
    stop(nginx)
    R["floor_idle"] = hold_peer("bare hyper proxy", ports["floor"], [floor.pid])
    stop(floor)
    R["floor_lean_idle"] = hold_peer("lean hyper proxy", ports["floor_lean"], [floor_lean.pid])

    # Free the server core for the memory and start-up measurements.
    for p in (haproxy, floor_lean):
        stop(p)

    # -- memory: idle and 10,000 idle keep-alive connections -------------------
    R["memory"] = memory(base_config, tokens_file, auth, sidecar)

    # -- cold start ---------------------------------------------------------------
    p_c, a_c = free_port(), free_port()
    conf = write(os.path.join(WORK, "sidecar-cold.toml"), sidecar_config(base_config, p_c, a_c))
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, LOADGEN, "coldstart", "--admin", f"127.0.0.1:{a_c}",
         "--runs", "7", "--", "taskset", "-c", SERVER_CPU, SIDECAR, "--config", conf],
        capture_output=True, text=True, check=True,
    ).stdout
    R["coldstart"] = json.loads(out.strip().splitlines()[-1])
    log(f"cold start to ready: {R['coldstart']}")

    cleanup()

    # -- micro-benchmarks -----------------------------------------------------
    R["micro"] = micro() if MICRO else None

    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    write(OUTPUT, report(R))
    log(f"wrote {OUTPUT}")


def url_for(port, path):
    return f"http://127.0.0.1:{port}{path}"


def measure_wrk(label, target_url, pids, backend_pids, header=None, script_args=None,
                warm_header=None, cpu=LOAD_CPU):
    """One wrk scenario (after a 1 s warm-up with `warm_header`, if given): wrk's numbers
    plus CPU seconds per 100k requests of `pids` and `backend_pids`, and peak RSS."""
    if warm_header is not None:
        wrk(target_url, 1, header=header if not script_args else warm_header, cpu=cpu)
    reset_peak(pids)
    c0, b0 = cpu_ticks(pids), cpu_ticks(backend_pids)
    res = wrk(target_url, DURATION, header=header, script_args=script_args, cpu=cpu)
    c1, b1 = cpu_ticks(pids), cpu_ticks(backend_pids)
    reqs = max(res.get("requests", 1), 1)
    res["cpu_100k"] = (c1 - c0) / CLK_TCK / reqs * 1e5
    res["backend_cpu_100k"] = (b1 - b0) / CLK_TCK / reqs * 1e5 if backend_pids else None
    res["peak_rss"] = rss_mib(pids, "VmHWM")
    res["label"] = label
    log(f"{label}: {res['rps']:.0f} req/s, p50 {res.get('p50', 0):.2f} ms, "
        f"p99 {res.get('p99', 0):.2f} ms, cpu {res['cpu_100k']:.2f} s/100k, "
        f"peak RSS {res['peak_rss']:.1f} MiB, non-2xx {res['non2xx']}, "
        f"socket errors {res['socket_errors']}")
    if res["non2xx"] or res["socket_errors"]:
        log(f"WARNING: {label}: {res['non2xx']} non-2xx answers and {res['socket_errors']} "
            "socket errors: its numbers do not measure the proxy's work")
    return res


MEDIAN_KEYS = ("rps", "cpu_100k", "backend_cpu_100k", "p50", "p75", "p90", "p99", "peak_rss")


def measure_rounds(measure, scenarios, rounds):
    """Runs `scenarios` (key, label, server, url, kwargs) `rounds` times, in reverse
    order every other round so that drift hits all alike. Each key gets the median of
    every numeric column over its rounds (errors: the sum) and the rounds' req/s and
    CPU figures."""
    runs = {key: [] for key, *_ in scenarios}
    for r in range(rounds):
        if rounds > 1:
            log(f"throughput round {r + 1}/{rounds}")
        for key, label, server, target, kw in (scenarios if r % 2 == 0 else scenarios[::-1]):
            runs[key].append(measure(label, server, target, **kw))
    return {key: combine_rounds(rs) for key, rs in runs.items()}


def combine_rounds(rs):
    out = dict(rs[len(rs) // 2])
    for k in MEDIAN_KEYS:
        vals = [x[k] for x in rs if x.get(k) is not None]
        if vals:
            out[k] = statistics.median(vals)
    out["non2xx"] = sum(x["non2xx"] for x in rs)
    out["socket_errors"] = sum(x["socket_errors"] for x in rs)
    out["requests"] = sum(x.get("requests", 0) for x in rs)
    out["rounds_rps"] = [x["rps"] for x in rs]
    out["rounds_cpu_100k"] = [x["cpu_100k"] for x in rs]
    if any("fresh" in x for x in rs):
        f = [x["fresh"] for x in rs if "fresh" in x]
        out["fresh"] = {"count": f[0].get("count", "0"),
                        "sent": str(sum(int(x.get("sent", 0)) for x in f)),
                        "wraps": str(max(int(x.get("wraps", 0)) for x in f))}
    out.pop("raw", None)
    return out


def two_cores(base_config, auth):
    """Two cores, nothing pinned: the load generator, a backend (nginx, 2 workers) and
    the proxy under test share CPUs BOTH_CPUS. nginx (2 workers, plain proxy) and a
    sidecar with its default runtime (sized to the 2 CPUs it may use) are measured in
    interleaved rounds with the same wrk settings as the one-core scenarios."""
    log(f"two cores, nothing pinned: {TWO_CORE_ROUNDS} rounds of nginx (2 workers) and the sidecar")
    p = {k: free_port() for k in ("backend", "jwks", "nginx", "sidecar", "admin")}
    conf = write(os.path.join(WORK, "backend2.conf"), nginx_conf(
        "backend2", BACKEND_SERVERS.format(backend=p["backend"], jwks=p["jwks"], fix=FIX), workers=2))
    backend = start("backend2", ["nginx", "-c", conf, "-e", os.path.join(WORK, "backend2.stderr.log")],
                    cpu=BOTH_CPUS)
    wait_port(p["backend"], backend)
    conf = write(os.path.join(WORK, "nginx2.conf"), nginx_conf(
        "nginx2", PROXY_SERVERS.format(backend=p["backend"], port=p["nginx"]), workers=2))
    ngx = start("nginx2", ["nginx", "-c", conf, "-e", os.path.join(WORK, "nginx2.stderr.log")],
                cpu=BOTH_CPUS)
    wait_port(p["nginx"], ngx)
    text = sidecar_config(base_config, p["sidecar"], p["admin"])
    text = re.sub(r'(?m)^upstream = ".*"$', f'upstream = "http://127.0.0.1:{p["backend"]}"', text)
    sc = start("sidecar2", [SIDECAR, "--config", write(os.path.join(WORK, "sidecar2.toml"), text)],
               cpu=BOTH_CPUS)
    wait_ready(p["admin"], sc)
    time.sleep(0.5)
    bearer = {"Authorization": auth.split(": ", 1)[1]}
    for name, port, hdr in (("nginx, 2 workers", p["nginx"], {}), ("sidecar, 2 cores", p["sidecar"], bearer)):
        got, _ = get(port, "/api/orders", hdr)
        if got != 200:
            die(f"two-core scenario: {name} answered {got}, want 200")
    res = {"sidecar_threads": status_kb(sc.pid, "Threads"),
           "nginx_workers": len(tree(ngx.pid)) - 1, "rounds": TWO_CORE_ROUNDS}
    be = tree(backend.pid)
    targets = {
        "nginx": ("nginx, 2 workers, no auth (two cores, nothing pinned)",
                  url_for(p["nginx"], "/api/orders"), tree(ngx.pid), None),
        "sidecar": ("sidecar, same token, default runtime (two cores, nothing pinned)",
                    url_for(p["sidecar"], "/api/orders"), [sc.pid], auth),
    }
    runs = {k: [] for k in targets}
    for r in range(TWO_CORE_ROUNDS):
        for k in (("nginx", "sidecar") if r % 2 == 0 else ("sidecar", "nginx")):
            label, target, pids, hdr = targets[k]
            runs[k].append(measure_wrk(label, target, pids, be, header=hdr, warm_header=auth,
                                       cpu=BOTH_CPUS))
    for k in targets:
        res[k] = combine_rounds(runs[k])
    for proc in (sc, ngx, backend):
        stop(proc)
    return res


def profile(sidecar, target_url, auth, tokens_file):
    """perf samples (cpu-clock) of the sidecar under a reused-token and a fresh-token
    load: flat profile by shared object and by symbol."""
    if not shutil.which("perf"):
        return {"error": "perf not installed"}
    probe = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", os.path.join(WORK, "probe.data"),
                            "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return {"error": "perf record does not work here: " + probe.stderr.strip()[-200:]}
    out = {}
    for name, header, script in (("reused", auth, None), ("fresh", None, [tokens_file, "/api/orders"])):
        data = os.path.join(WORK, f"perf-{name}.data")
        load = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", "-d8s"]
            + (["-H", header] if header else [])
            + (["-s", LUA] if script else [])
            + [target_url]
            + (["--"] + script if script else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(1.5)
        subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-p", str(sidecar.pid),
                        "-o", data, "--", "sleep", "5"], capture_output=True)
        load.wait()
        by = {}
        for sort in ("dso", "symbol"):
            rep = subprocess.run(
                ["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                 "--percent-limit", "0.7"],
                capture_output=True, text=True,
            ).stdout
            rows = []
            for line in rep.splitlines():
                m = re.match(r"^\s+([\d.]+)%\s+(.*)$", line)
                if m:
                    rows.append((float(m.group(1)), re.sub(r"\s+", " ", m.group(2)).strip()))
            by[sort] = rows[:25]
        out[name] = by
    log("profile collected")
    return out


def soak(sidecar, target_url, tokens_file):
    log(f"soak: {SOAK}s at load (new token every request, list cycling)")
    pid = sidecar.pid
    reset_peak([pid])
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", f"-d{SOAK}s", "--latency",
           "-s", LUA, target_url, "--", tokens_file, "/api/orders"]
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    samples = []
    t0 = time.time()
    step = max(1.0, SOAK / 60.0)
    while load.poll() is None:
        samples.append((round(time.time() - t0, 1), rss_mib([pid])))
        time.sleep(step)
    out = load.stdout.read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    samples.append((round(time.time() - t0, 1), rss_mib([pid])))
    # "start" is the first sample after 10% of the soak: the cache and pools have filled.
    warm = [s for s in samples if s[0] >= SOAK * 0.1] or samples
    res = {
        "seconds": SOAK,
        "rps": float(rps.group(1)) if rps else None,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "rss_start": warm[0][1],
        "rss_end": samples[-1][1],
        "rss_min": min(s[1] for s in warm),
        "rss_max": max(s[1] for s in warm),
        "peak": rss_mib([pid], "VmHWM"),
        "samples": samples,
    }
    log(f"soak: {res['rps']} req/s, RSS {res['rss_start']:.1f} -> {res['rss_end']:.1f} MiB "
        f"(max {res['rss_max']:.1f})")
    return res


def hold(port, pids, header=None):
    """Opens IDLE_CONNS keep-alive connections (one request each), returns RSS facts."""
    before = rss_mib(pids)
    cmd = ["taskset", "-c", LOAD_CPU, LOADGEN, "hold", "--addr", f"127.0.0.1:{port}",
           "--connections", str(IDLE_CONNS), "--path", "/api/orders", "--seconds", "60"]
    if header:
        cmd += ["--header", header]
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = holder.stdout.readline().strip()
    parts = line.split()
    res = {"before": before, "hold_report": line,
           "held": int(parts[1]) if len(parts) > 1 and parts[0] == "HELD" else 0}
    time.sleep(1.0)
    res["with_conns"] = rss_mib(pids)
    res["with_conns_peak"] = rss_mib(pids, "VmHWM")
    holder.stdin.close()
    rest = holder.stdout.read()
    holder.wait()
    m = re.search(r"STILL_OPEN (\d+)", rest)
    res["still_open"] = int(m.group(1)) if m else None
    if res["held"]:
        res["kib_per_conn"] = (res["with_conns"] - before) * 1024 / res["held"]
    return res


def hold_peer(name, port, pids):
    res = hold(port, pids)
    log(f"{name} holding {res['held']} idle connections: {res['before']:.1f} -> "
        f"{res['with_conns']:.1f} MiB")
    return res


def memory(base_config, tokens_file, auth, main_sidecar):
    """A fresh sidecar: RSS idle, then holding IDLE_CONNS idle keep-alive connections."""
    stop(main_sidecar)
    p_m, a_m = free_port(), free_port()
    conf = write(os.path.join(WORK, "sidecar-mem.toml"), sidecar_config(base_config, p_m, a_m))
    sc = start("sidecar-mem", [SIDECAR, "--config", conf])
    wait_ready(a_m, sc)
    time.sleep(2.0)
    res = {"idle": rss_mib([sc.pid]), "idle_peak": rss_mib([sc.pid], "VmHWM")}
    res.update(hold(p_m, [sc.pid], auth))
    time.sleep(1.0)
    res["after_release"] = rss_mib([sc.pid])
    log(f"memory: idle {res['idle']:.1f} MiB; holding {res['held']} connections "
        f"{res['with_conns']:.1f} MiB (peak {res['with_conns_peak']:.1f}), "
        f"after release {res['after_release']:.1f} MiB")
    stop(sc)
    return res


def micro():
    log("criterion micro-benchmarks (cargo bench --bench decision) ...")
    r = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", "decision", "--", "--noplot"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout)[-1500:]}
    rows = []
    name = None
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+/\S+)\s*(time:.*)?$", line)
        if m and "/" in line.split()[0]:
            name = m.group(1)
        t = re.search(r"time:\s+\[([\d.]+ \S+) ([\d.]+ \S+) ([\d.]+ \S+)\]", line)
        if t and name:
            rows.append((name, t.group(2), t.group(1), t.group(3)))
            name = None
    log(f"micro-benchmarks: {len(rows)} results")
    return {"rows": rows}


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------


def fmt(v, nd=2):
    return "n/a" if v is None else f"{v:.{nd}f}"


def met(ok):
    return "**met**" if ok else "**not met**"


def report(R):
    f = R["facts"]
    T = R["throughput"]
    L = R["latency"]
    M = R["memory"]
    S = R["soak"]
    C = R["coldstart"]
    meta = R["meta"]
    now = R.get("when") or datetime.datetime.fromtimestamp(
        os.path.getmtime(os.path.join(WORK, "results.json")), datetime.timezone.utc
    ).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    w = out.append
    w("# Benchmarks\n")
    w(f"Measured by `bash bench/run.sh` on {now}. Every number below comes from that one "
      "run on this machine; ratios compare the sidecar with peers measured in the same run. "
      "The file is rewritten by each run (the analysis under [Profile](#profile) is kept "
      "in `bench/PROFILE.md` and included).\n")
    w("## How to run\n")
    w("```sh\nbash bench/run.sh                        # about 12 minutes; writes BENCHMARKS.md\n"
      "BENCH_SOAK_SECONDS=600 bash bench/run.sh # with the issue's 10-minute soak (about 22)\n```\n")
    w("`bench/run.sh` installs what it needs (Debian `nginx-light`, `haproxy`, `wrk`), builds "
      "`cargo build --release --locked --bin cognito-sidecar --examples`, generates fixtures "
      "(`examples/bench_fixtures.rs`: an RSA-2048 key, JWKS, PEM public key, a realistic "
      "Cognito access token, and distinct tokens for the no-reuse scenario), starts every "
      "server on `127.0.0.1` on ports it picks, checks each proxy's answers, measures, "
      "writes this file and stops everything it started. Settings are environment "
      "variables listed at the top of `bench/driver.py` (`BENCH_DURATION`, "
      "`BENCH_SOAK_SECONDS`, `BENCH_TOKENS`, `BENCH_PROFILE`, `BENCH_MICRO`, ...). "
      "Benchmarks are not part of `cargo test` and nothing asserts timings.\n")
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    w(f"| CPU | {f['nproc']} × {f['cpu']} |")
    w(f"| memory | {f['mem_gib']} GiB |")
    w(f"| OS, kernel | {f['os']}, Linux {f['kernel']} |")
    w(f"| load average at start | {', '.join(f'{x:.2f}' for x in f['loadavg'])} |")
    w(f"| cognito-sidecar | {f['sidecar']}, commit {f['commit']} |")
    w(f"| rustc | {f['rustc']} |")
    w(f"| nginx | {f['nginx']} |")
    w(f"| HAProxy | {f['haproxy']} |")
    w(f"| wrk | {f['wrk']} |")
    w("")
    w("## Set-up\n")
    w(f"- **Pinning**: load generators (`wrk`, `examples/loadgen.rs`) on CPU {LOAD_CPU}; every "
      f"server (backend, proxy under test, JWKS) on CPU {SERVER_CPU} with `taskset`. Each "
      "server runs one worker: nginx `worker_processes 1`, HAProxy `nbthread 1`, the sidecar's "
      f"tokio runtime sizes itself to the one CPU it may use ({R['sidecar_threads']} threads "
      "in total, including tokio's blocking pool). Exception: the two-core scenario "
      "(its own section), where nothing is pinned.")
    w("- **Floors**: two bare hyper 1.x proxies that only forward (no auth, no header "
      "hygiene, no metrics): `examples/hyper_floor.rs`, the sidecar's stack as configured "
      "(multi-thread runtime, hyper-util auto server builder, hyper-util's pooled legacy "
      "client), and the raised floor `examples/hyper_floor_lean.rs` (one current-thread "
      "runtime per CPU over `SO_REUSEPORT`, `hyper::server::conn::http1`, each client "
      "connection owning one lazily opened `hyper::client::conn::http1` upstream "
      "connection: no pool).")
    w("- **Backend**: nginx `return 200` with a 60-byte JSON body; it also serves the JWKS "
      "as a static file. Every proxy keeps upstream connections alive.")
    w("- **nginx**: plain reverse proxy, no auth, `keepalive 256` upstream, access log off.")
    w("- **HAProxy**: `http_auth_bearer` → `jwt_header_query('$.alg')` must be RS256, "
      "`jwt_payload_query('$.iss')` must be the pool's issuer, `exp` not past, and "
      "`jwt_verify(txn.jwt_alg, pubkey.pem)` must return 1; otherwise 401. HAProxy has no "
      "verified-token cache: every request is a full RSA verification.")
    w("- **sidecar**: the configuration written by `examples/bench_fixtures.rs`: one pool "
      "(JWKS from the local nginx), routes `/public/` (public) and `/admin/` "
      "(`groups = [\"admins\"]`), everything else needs a valid token; default verified-token "
      "cache (10,000 entries); `log_level = \"warn\"`, i.e. the access log is off and "
      "warnings/errors still go through the logging layer (realistic but quiet; the cost "
      "of the access log is measured separately below); `limits.max_connections = 20000` "
      "for the idle-connection scenario.")
    w(f"- **Token**: a Cognito-shaped access token: {meta['claims_bytes']} bytes of claims "
      f"(sub, {meta.get('groups', 12)} `cognito:groups`, scope, username, jti, origin_jti, "
      "event_id, device_key, ...), "
      f"{meta['token_bytes']} bytes encoded, RS256 with an RSA-2048 key, 1-hour lifetime. "
      f"The no-reuse scenario cycles through {meta['tokens']:,} distinct tokens (distinct "
      "sub, jti and iat) with a wrk Lua script (`bench/fresh_tokens.lua`).")
    w(f"- **Load**: `wrk -t1 -c{CONNS} -d{DURATION}s --latency`, after a 1 s warm-up; CPU "
      "seconds per 100k requests are utime+stime deltas from `/proc/PID/stat` of the "
      "process(es) named, divided by the requests wrk completed; peak RSS is `VmHWM` "
      "(reset with `/proc/PID/clear_refs` before each scenario).")
    w("- **Noise**: the machine may be shared (see the load average above). Ratios are "
      "computed within one run; wall-clock numbers move by 10-20% between runs on a busy "
      "machine, the instruction counts under [Profile](#profile) do not.")
    w("- **Correctness first**: before measuring, the run checks " + "; ".join(
        f"{n} → {got}" for n, _want, got in R["checks"]) + ".\n")

    w("## Throughput\n")
    rounds = R.get("rounds", 1)
    if rounds > 1:
        w(f"Each scenario ran in {rounds} rounds (every scenario once per round, the order "
          "reversed every other round); each column is the median over the rounds, errors "
          "are summed; \"req/s per round\" shows the spread.\n")
    w("| scenario | req/s | p50 ms | p99 ms | CPU s / 100k req (server) | CPU s / 100k req (backend) | peak RSS MiB (server) | errors | req/s per round |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    order = ["direct", "nginx", "floor", "floor_lean", "haproxy", "reused", "fresh", "public", "group",
             "accesslog"]
    for k in order:
        if k not in T:
            continue
        r = T[k]
        errs = r["non2xx"] + r["socket_errors"]
        per_round = ", ".join(f"{x:,.0f}" for x in r.get("rounds_rps", [r["rps"]]))
        w(f"| {r['label']} | {r['rps']:,.0f} | {fmt(r.get('p50'))} | {fmt(r.get('p99'))} | "
          f"{fmt(r['cpu_100k'])} | {fmt(r['backend_cpu_100k'])} | {fmt(r['peak_rss'], 1)} | {errs} | "
          f"{per_round} |")
    fresh = T["fresh"].get("fresh", {})
    if fresh:
        w(f"\nNo-reuse scenario: {int(fresh.get('sent', 0)):,} requests sent over "
          f"{int(fresh.get('count', 0)):,} distinct tokens, the list wrapped "
          f"{fresh.get('wraps', '?')} time(s)" + (" (no token was sent twice)." if fresh.get("wraps") == "0"
                                                  else " (some tokens were reused: raise BENCH_TOKENS)."))
    w("")
    w(f"## Added latency at a fixed rate ({RATE:,} req/s)\n")
    w(f"`examples/loadgen.rs rate`: open loop, {CONNS} keep-alive connections, request *i* "
      f"due at t0 + i/{RATE}, {RATE_DURATION} s measured after a 2 s warm-up. Latency is "
      "measured from when a request was due (wrk2-style, queueing included); "
      "\"service\" is from when it was actually written. Added = proxy − direct.\n")
    w("| target | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | added p50 ms | added p99 ms |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    d = L["direct"]["corrected"]
    for k, label in (("direct", "direct to backend"), ("nginx", "nginx (no auth)"),
                     ("floor", "bare hyper proxy (no auth)"),
                     ("haproxy", "HAProxy + jwt_verify"), ("sidecar", "sidecar (token, cached)")):
        c = L[k]["corrected"]
        added50 = "" if k == "direct" else f"{c['p50_ms'] - d['p50_ms']:.3f}"
        added99 = "" if k == "direct" else f"{c['p99_ms'] - d['p99_ms']:.3f}"
        w(f"| {label} | {L[k]['achieved_rate']:,.0f} | {c['p50_ms']:.3f} | {c['p90_ms']:.3f} | "
          f"{c['p99_ms']:.3f} | {c['p999_ms']:.3f} | {c['max_ms']:.3f} | "
          f"{L[k]['service']['p99_ms']:.3f} | {added50} | {added99} |")
    w("")
    w("## Memory and start-up\n")
    w("| measurement | value |\n|---|---:|")
    w(f"| RSS idle (fresh process, keys loaded, no traffic) | {M['idle']:.1f} MiB |")
    w(f"| RSS holding {M['held']:,} idle keep-alive connections (one request served on each) | "
      f"{M['with_conns']:.1f} MiB (peak {M['with_conns_peak']:.1f}) |")
    if M.get("kib_per_conn"):
        w(f"| sidecar memory per idle keep-alive connection | {M['kib_per_conn']:.1f} KiB |")
    N = R.get("nginx_idle")
    if N and N.get("held"):
        w(f"| for comparison: nginx (plain proxy, master + 1 worker) holding {N['held']:,} idle "
          f"connections | {N['before']:.1f} → {N['with_conns']:.1f} MiB "
          f"({N.get('kib_per_conn', 0):.1f} KiB per connection) |")
    F = R.get("floor_idle")
    if F and F.get("held"):
        w(f"| for comparison: bare hyper proxy (`examples/hyper_floor.rs`) holding {F['held']:,} idle "
          f"connections | {F['before']:.1f} → {F['with_conns']:.1f} MiB "
          f"({F.get('kib_per_conn', 0):.1f} KiB per connection) |")
    F = R.get("floor_lean_idle")
    if F and F.get("held"):
        w(f"| for comparison: lean hyper proxy (`examples/hyper_floor_lean.rs`, one upstream "
          f"connection per client connection) holding {F['held']:,} idle "
          f"connections | {F['before']:.1f} → {F['with_conns']:.1f} MiB "
          f"({F.get('kib_per_conn', 0):.1f} KiB per connection) |")
    w(f"| RSS after those connections closed | {M['after_release']:.1f} MiB |")
    w(f"| RSS of the main sidecar after the throughput scenarios | {R['rss_after_load_main']:.1f} MiB |")
    w(f"| soak, {S['seconds']} s at load (new token every request): RSS at 10% → end | "
      f"{S['rss_start']:.1f} → {S['rss_end']:.1f} MiB (min {S['rss_min']:.1f}, max {S['rss_max']:.1f}), "
      f"{S['rps'] or 0:,.0f} req/s, {S['non2xx']} errors |")
    runs = ", ".join("failed" if x is None else f"{x:.1f}" for x in C["runs_ms"])
    w(f"| cold start: spawn → first 200 from `/readyz` (JWKS local, polled every 1 ms) | "
      f"median {C['median_ms']:.1f} ms, max {C['max_ms'] or 0:.1f} ms (runs: {runs}) |")
    w("")
    every = max(1, len(S["samples"]) // 12)
    shown = S["samples"][::every] + ([S["samples"][-1]] if (len(S["samples"]) - 1) % every else [])
    w("Soak samples (seconds, RSS MiB): " + ", ".join(f"{t:g}: {r:.1f}" for t, r in shown) + "\n")

    # targets
    w("## Targets (issue 6)\n")
    rows = []
    r_ng = T["reused"]["rps"] / T["nginx"]["rps"]
    rows.append(("throughput with auth (reused token) ≥ nginx plain proxy",
                 f"{T['reused']['rps']:,.0f} vs {T['nginx']['rps']:,.0f} req/s", f"{r_ng:.2f}×", r_ng >= 1.0))
    r_hp = T["reused"]["rps"] / T["haproxy"]["rps"]
    rows.append(("throughput with auth ≥ 2.5 × HAProxy + jwt_verify",
                 f"{T['reused']['rps']:,.0f} vs {T['haproxy']['rps']:,.0f} req/s", f"{r_hp:.2f}×", r_hp >= 2.5))
    r_fr = T["fresh"]["rps"] / T["reused"]["rps"]
    rows.append(("new token every request ≥ 0.8 × reused-token throughput",
                 f"{T['fresh']['rps']:,.0f} vs {T['reused']['rps']:,.0f} req/s", f"{r_fr:.2f}×", r_fr >= 0.8))
    a_sc = L["sidecar"]["corrected"]["p99_ms"] - d["p99_ms"]
    a_ng = L["nginx"]["corrected"]["p99_ms"] - d["p99_ms"]
    rows.append((f"added p99 at {RATE:,} req/s ≤ nginx's added p99",
                 f"sidecar +{a_sc:.3f} ms, nginx +{a_ng:.3f} ms",
                 f"{(a_sc / a_ng if a_ng > 0 else float('inf')):.2f}×", a_sc <= a_ng))
    rows.append(("RSS idle ≤ 20 MiB", f"{M['idle']:.1f} MiB", f"{M['idle'] / 20:.2f}× of limit", M["idle"] <= 20))
    rows.append((f"RSS with 10,000 idle keep-alive connections ≤ 64 MiB",
                 f"{M['with_conns']:.1f} MiB with {M['held']:,} held",
                 f"{M['with_conns'] / 64:.2f}× of limit",
                 M["with_conns"] <= 64 and M["held"] >= 10000))
    growth = S["rss_end"] - S["rss_start"]
    soak_ok = growth <= max(2.0, 0.05 * S["rss_start"])
    rows.append((f"no RSS growth over a 10-minute soak at load (this run: {S['seconds']} s)",
                 f"{S['rss_start']:.1f} → {S['rss_end']:.1f} MiB", f"{growth:+.1f} MiB",
                 soak_ok))
    rows.append(("cold start to ready < 100 ms", f"median {C['median_ms']:.1f} ms",
                 f"{C['median_ms'] / 100:.2f}× of limit", C["median_ms"] < 100))
    w("| target | measured | ratio | |\n|---|---|---:|---|")
    for name, measured, ratio, ok in rows:
        extra = ""
        if name.startswith("no RSS growth") and S["seconds"] < 600:  # default 60 s
            extra = " (60 s run; `BENCH_SOAK_SECONDS=600` for the issue's 10 minutes)"
        w(f"| {name} | {measured} | {ratio} | {met(ok)}{extra} |")
    w("\nGrowth counts as none when the end-of-soak RSS is within 2 MiB or 5% of the RSS at 10% "
      "of the soak (allocator arenas and the token cache fill in the first seconds).\n")
    if "accesslog" in T:
        cost = 1 - T["accesslog"]["rps"] / T["reused"]["rps"]
        w(f"Access log on (`log_level = \"info\"`, JSON to /dev/null): {T['accesslog']['rps']:,.0f} req/s, "
          f"{cost * 100:.0f}% below the quiet configuration, "
          f"{T['accesslog']['cpu_100k']:.2f} vs {T['reused']['cpu_100k']:.2f} CPU s / 100k requests.\n")

    w(targets_issue14(R))
    two = R.get("two_cores")
    if two:
        w("## Two cores, nothing pinned\n")
        w(f"The load generator (`wrk -t1 -c{CONNS} -d{DURATION}s`), a backend (nginx `return 200`, "
          f"{two.get('nginx_workers', 2)} workers) and the proxy under test share CPUs {BOTH_CPUS} "
          f"with nothing pinned within them; {two['rounds']} interleaved rounds, medians. nginx: "
          f"`worker_processes 2`, plain proxy, `keepalive 256` upstream. Sidecar: its default "
          f"runtime sized to the 2 CPUs ({two['sidecar_threads']} threads in total), same token "
          "(cache hit). CPU counts the proxy's processes only.\n")
        w("| scenario | req/s | p50 ms | p99 ms | CPU s / 100k req (proxy) | CPU s / 100k req (backend) | errors | req/s per round |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for k in ("nginx", "sidecar"):
            r = two[k]
            per_round = ", ".join(f"{x:,.0f}" for x in r["rounds_rps"])
            w(f"| {r['label']} | {r['rps']:,.0f} | {fmt(r.get('p50'))} | {fmt(r.get('p99'))} | "
              f"{fmt(r['cpu_100k'])} | {fmt(r['backend_cpu_100k'])} | "
              f"{r['non2xx'] + r['socket_errors']} | {per_round} |")
        w("")

    # micro
    w("## Micro-benchmarks\n")
    if R.get("micro") and R["micro"].get("rows"):
        w("`cargo bench --bench decision` (criterion, 3 s per benchmark; the token is the "
          "realistic one above). Median and 95% interval.\n")
        w("| benchmark | time | interval |\n|---|---:|---|")
        for name, mid, lo, hi in R["micro"]["rows"]:
            w(f"| `{name}` | {mid} | {lo} … {hi} |")
        w("")
    elif R.get("micro"):
        w("criterion failed:\n\n```\n" + R["micro"].get("error", "") + "\n```\n")
    else:
        w("Skipped (`BENCH_MICRO=0`).\n")

    # profile
    w("## Profile\n")
    if os.path.exists(PROFILE_NOTES):
        with open(PROFILE_NOTES) as fh:
            notes = fh.read().strip()
        notes = re.sub(r"^# .*\n+", "", notes)
        w(notes + "\n")
    P = R.get("profile")
    if P and "error" not in P:
        w("### This run: perf samples of the sidecar process\n")
        w("`perf record -e cpu-clock -F 1999 -p PID -- sleep 5` during an 8 s wrk load; flat "
          "profile (self time), entries above 0.7%.\n")
        for name, title in (("reused", "same token (cache hit)"), ("fresh", "new token every request")):
            w(f"**{title}**, by shared object: " + ", ".join(
                f"{dso} {pct:.1f}%" for pct, dso in P[name]["dso"][:6]) + "\n")
            w("| self % | symbol |\n|---:|---|")
            for pct, sym in P[name]["symbol"][:18]:
                sym = re.sub(r"^\[[.k]\]\s+", "", sym)
                sym = re.sub(r"(\s+-)+$", "", sym)
                if len(sym) > 110:
                    sym = sym[:107] + "..."
                w(f"| {pct:.2f} | `{sym.replace('|', '/')}` |")
            w("")
    elif P:
        w(f"perf profile skipped: {P['error']}\n")
    return "\n".join(out) + "\n"


def criterion_us(text):
    """'21.3 µs' (criterion's unit) -> microseconds."""
    m = re.match(r"([\d.]+)\s*(ps|ns|µs|us|ms|s)$", text.strip())
    if not m:
        return None
    scale = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}[m.group(2)]
    return float(m.group(1)) * scale


# RSA-2048 verification alone, from the criterion run: the first name that matches, in
# this order (benchmarks get renamed; the report says which one it used).
RSA_BENCH_PREFIXES = ("verify_parts/rsa2048_verify_parsed_key", "verify_parts/rsa2048_verify_parsed",
                      "verify_parts/rsa2048_verify", "rsa2048_verify")


def rsa_verify_alone(R):
    rows = (R.get("micro") or {}).get("rows") or []
    for prefix in RSA_BENCH_PREFIXES:
        for name, mid, _lo, _hi in rows:
            if name.startswith(prefix) or name.split("/")[-1].startswith(prefix):
                us = criterion_us(mid)
                if us is not None:
                    return name, us
    for name, mid, _lo, _hi in rows:  # anything RSA-2048 that verifies
        if "rsa" in name.lower() and "verify" in name.lower() and criterion_us(mid) is not None:
            return name, criterion_us(mid)
    return None, None


def ratio_row(name, measured, ratio, ok, target):
    return (name, measured, "n/a" if ratio is None else f"{ratio:.2f}×", target,
            "reported" if ok is None else met(ok))


def targets_issue14(R):
    """The issue-14 target table: every row a ratio from this run."""
    T, L, M = R["throughput"], R["latency"], R["memory"]
    rows = []
    ng = T["nginx"]
    r = T["reused"]["rps"] / ng["rps"]
    rows.append(ratio_row("cached token, req/s vs nginx plain proxy (no auth), proxy pinned to one core",
                          f"{T['reused']['rps']:,.0f} vs {ng['rps']:,.0f} req/s", r, r >= 1.0, "≥ 1.0×"))
    r = T["reused"]["cpu_100k"] / ng["cpu_100k"] if ng["cpu_100k"] else None
    rows.append(ratio_row("CPU s per 100k cached requests vs nginx's",
                          f"{T['reused']['cpu_100k']:.2f} vs {ng['cpu_100k']:.2f} s",
                          r, r is not None and r <= 1.2, "≤ 1.2×"))
    for key, what in (("floor", "the bare hyper floor (`examples/hyper_floor.rs`)"),
                      ("floor_lean", "the raised floor (`examples/hyper_floor_lean.rs`)")):
        if key not in T:
            continue
        r = T["public"]["rps"] / T[key]["rps"]
        rows.append(ratio_row(f"public route vs {what}",
                              f"{T['public']['rps']:,.0f} vs {T[key]['rps']:,.0f} req/s", r, r >= 1.0,
                              "≥ 1.0×"))
    if "floor_lean" in T:
        r = T["floor_lean"]["rps"] / T["floor"]["rps"]
        rows.append(ratio_row("— the raised floor vs the old floor (and vs nginx)",
                              f"{T['floor_lean']['rps']:,.0f} vs {T['floor']['rps']:,.0f} req/s; "
                              f"{T['floor_lean']['rps'] / ng['rps']:.2f}× nginx, "
                              f"{T['floor_lean']['cpu_100k']:.2f} CPU s / 100k", r, None, "—"))
    r = T["fresh"]["rps"] / T["reused"]["rps"]
    rows.append(ratio_row("new token per request vs cached",
                          f"{T['fresh']['rps']:,.0f} vs {T['reused']['rps']:,.0f} req/s", r, r >= 0.6,
                          "≥ 0.6×"))
    bench, rsa_us = rsa_verify_alone(R)
    per_req = (T["fresh"]["cpu_100k"] - T["reused"]["cpu_100k"]) * 10  # CPU s / 100k -> µs / req
    if rsa_us is not None:
        rows.append(("— RSA-2048 verify alone (criterion)", f"{rsa_us:.1f} µs (`{bench}`)", "", "—",
                     "reported"))
        rows.append(("— remaining overhead per new token: (CPU per new-token request − CPU per "
                     "cached request) − RSA verify",
                     f"({T['fresh']['cpu_100k'] * 10:.1f} − {T['reused']['cpu_100k'] * 10:.1f}) − "
                     f"{rsa_us:.1f} = {per_req - rsa_us:.1f} µs", "", "—", "reported"))
    else:
        rows.append(("— RSA-2048 verify alone (criterion)",
                     "not measured (BENCH_MICRO=0 or no RSA benchmark found)", "", "—", "reported"))
        rows.append(("— extra CPU per new token (RSA verify not separated)", f"{per_req:.1f} µs", "",
                     "—", "reported"))
    d = L["direct"]["corrected"]["p99_ms"]
    a_sc = L["sidecar"]["corrected"]["p99_ms"] - d
    a_ng = L["nginx"]["corrected"]["p99_ms"] - d
    rows.append(ratio_row(f"added p99 at {RATE:,} req/s vs nginx's added p99",
                          f"sidecar +{a_sc:.3f} ms, nginx +{a_ng:.3f} ms",
                          a_sc / a_ng if a_ng > 0 else None, a_sc <= a_ng, "≤ 1.0×"))
    kib = M.get("kib_per_conn")
    N = R.get("nginx_idle") or {}
    ngx_kib = f"; nginx {N['kib_per_conn']:.1f} KiB" if N.get("kib_per_conn") is not None else ""
    rows.append(("memory per idle keep-alive connection",
                 (f"{kib:.1f} KiB ({M['held']:,} held"
                  + (f", of {IDLE_CONNS:,} asked: not valid" if M["held"] < IDLE_CONNS else "")
                  + f"){ngx_kib}" if kib is not None
                  else f"not measured ({M.get('held', 0)} held)"),
                 "" if kib is None else f"{kib / 10:.2f}× of limit", "≤ 10 KiB",
                 met(kib is not None and kib <= 10)))
    two = R.get("two_cores")
    if two:
        r = two["sidecar"]["rps"] / two["nginx"]["rps"]
        rows.append(ratio_row("two unpinned cores, cached token, vs nginx with 2 workers",
                              f"{two['sidecar']['rps']:,.0f} vs {two['nginx']['rps']:,.0f} req/s "
                              f"({two['sidecar']['cpu_100k']:.2f} vs {two['nginx']['cpu_100k']:.2f} "
                              "CPU s / 100k)", r, r >= 1.0, "≥ 1.0×"))
    else:
        rows.append(("two unpinned cores, cached token, vs nginx with 2 workers",
                     "not measured (BENCH_TWO_CORE_ROUNDS=0 or one CPU)", "n/a", "≥ 1.0×", "**not met**"))
    failed = [r["label"] for r in list(T.values()) + ([two["nginx"], two["sidecar"]] if two else [])
              if r["non2xx"] + r["socket_errors"]]
    warn = ("**Not valid:** these scenarios answered with errors (non-2xx or socket errors), "
            "so their ratios do not measure the proxy's work: " + "; ".join(failed) + ".\n"
            if failed else "")
    out = ["## Targets (issue 14)\n",
           "Ratios from this run (throughput rows: medians over the rounds above; the "
           "two-core row: the section below).\n", warn,
           "| measure | measured | ratio | target | |", "|---|---|---:|---|---|"]
    out += [f"| {a} | {b} | {c} | {d_} | {e} |" for a, b, c, d_, e in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:
        # Rewrite BENCHMARKS.md from the last run's results (e.g. after editing
        # bench/PROFILE.md), without measuring again.
        with open(os.path.join(WORK, "results.json")) as fh:
            write(OUTPUT, report(json.load(fh)))
        log(f"wrote {OUTPUT} from {WORK}/results.json")
    else:
        main()
