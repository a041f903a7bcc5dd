#!/usr/bin/env python3
"""Instruction counts per request, by function: the sidecar under
`valgrind --tool=callgrind`, driven by wrk for a few seconds per scenario.

    python3 bench/callgrind.py [reused|public|fresh ...]   (after bench/run.sh built)

Instruction counts do not depend on what else the machine is doing, so they show a
code change's effect where wall-clock numbers are noise. For each scenario it prints
the instructions per request (user space, whole process), malloc calls per request,
and the top functions by inclusive and by self cost. Output and raw profiles go to
target/bench/callgrind/.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver as d  # noqa: E402

OUT = os.path.join(d.BENCH_DIR, "callgrind")
SECONDS = int(os.environ.get("CALLGRIND_SECONDS", "8"))

# Functions whose inclusive cost per request is reported (regex on the symbol).
WATCH = [
    ("whole request (proxy::handle)", r"^cognito_sidecar::proxy::handle::\{\{closure\}\}$"),
    ("decision (auth::authorize_cached)", r"^cognito_sidecar::auth::authorize_cached$"),
    ("  cache key SHA-256 (TokenCache::digest)", r"^cognito_sidecar::cache::TokenCache::digest$"),
    ("  is_b64token", r"^cognito_sidecar::auth::is_b64token$"),
    ("  path::canonicalize", r"^cognito_sidecar::path::canonicalize$"),
    ("  token::parse", r"^cognito_sidecar::token::parse$"),
    ("  RSA verify (Unverified::verify)", r"^cognito_sidecar::token::Unverified::verify$"),
    ("  Claims::from_payload", r"^cognito_sidecar::token::Claims::from_payload$"),
    ("  cache insert (TokenCache::insert)", r"^cognito_sidecar::cache::TokenCache::insert$"),
    ("    cache weigher (ByMemory::weight)", r"ByMemory as quick_cache::.*>::weight$"),
    ("  jsonwebtoken::crypto::verify", r"^jsonwebtoken::crypto::verify$"),
    ("    RSA key built from (n, e) (build_rsa)", r"build_rsa$"),
    ("    Montgomery context set-up (BN_MONT_CTX_set)", r"BN_MONT_CTX_set$"),
    ("    RSA public operation (rsa_default_verify_raw)", r"rsa_default_verify_raw$|RSA_verify_raw$"),
    ("headers::check_request", r"^cognito_sidecar::headers::check_request$"),
    ("headers::strip_inbound", r"^cognito_sidecar::headers::strip_inbound$"),
    ("headers::inject_identity", r"^cognito_sidecar::headers::inject_identity$"),
    ("headers::set_forwarding", r"^cognito_sidecar::headers::set_forwarding$"),
    ("headers::strip_response", r"^cognito_sidecar::headers::strip_response$"),
    ("proxy::request_id", r"^cognito_sidecar::proxy::request_id$"),
    ("proxy::logging (metrics + access log)", r"^cognito_sidecar::proxy::logging$"),
    ("upstream client (Client::send_request)", r"hyper_util::client::legacy::client::Client<.*>::send_request::\{\{closure\}\}$"),
    ("upstream client (conn::http1::SendRequest::send_request)",
     r"hyper::client::conn::http1::SendRequest<.*>::send_request(::\{\{closure\}\})?$"),
    ("tracing event dispatch", r"^tracing_core::event::Event::dispatch$"),
    ("prometheus MetricVec::with_label_values", r"MetricVec<.*>>::with_label_values$"),
    ("malloc", r"^malloc$"),
    ("free", r"^free$"),
    ("realloc", r"^realloc$"),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def parse_calls(path):
    """Total calls to each function name from a raw callgrind file."""
    names = {}
    calls = {}
    cur_cfn = None
    with open(path) as f:
        for line in f:
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    cur_cfn = names.get(m.group(1))
            elif line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls=") and cur_cfn:
                n = int(line.split("=")[1].split()[0])
                calls[cur_cfn] = calls.get(cur_cfn, 0) + n
                cur_cfn = None
    return calls


def annotate(path, inclusive):
    out = run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
               "--threshold=100", path]).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(?:\?\?\?:|[^\s:]+\.\w+:)?(.+?)(?:\s+\[[^\]]*\])?$", line)
        if m and not line.strip().startswith("--"):
            try:
                ir = int(m.group(1).replace(",", ""))
            except ValueError:
                continue
            rows.append((ir, m.group(2).strip()))
    return rows


def main():
    scenarios = sys.argv[1:] or ["public", "reused", "fresh"]
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(os.path.join(d.WORK, "tmp"), exist_ok=True)
    meta, _ = d.fixtures()
    token = open(os.path.join(d.FIX, "token.txt")).read().strip()
    auth = f"Authorization: Bearer {token}"
    tokens_file = os.path.join(d.FIX, "tokens.txt")
    ports = {k: d.free_port() for k in ("backend", "jwks", "sidecar", "admin")}
    conf = d.write(os.path.join(d.WORK, "cg-backend.conf"), d.nginx_conf(
        "cg-backend",
        d.BACKEND_SERVERS.format(backend=ports["backend"], jwks=ports["jwks"], fix=d.FIX)))
    backend = d.start("cg-backend", ["nginx", "-c", conf, "-e", os.path.join(d.WORK, "cg-backend.stderr")])
    d.wait_port(ports["backend"], backend)
    base = open(os.path.join(d.FIX, "config.toml")).read()
    base = re.sub(r'(?m)^upstream = ".*"$', f'upstream = "http://127.0.0.1:{ports["backend"]}"', base)
    base = re.sub(r'(?m)^jwks_url = ".*"$', f'jwks_url = "http://127.0.0.1:{ports["jwks"]}/jwks.json"', base)
    sc_conf = d.write(os.path.join(d.WORK, "cg-sidecar.toml"),
                      d.sidecar_config(base, ports["sidecar"], ports["admin"]))
    prefix = os.path.join(OUT, "cg.out")
    sc = d.start("cg-sidecar", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p",
                                d.SIDECAR, "--config", sc_conf])
    d.wait_ready(ports["admin"], sc, timeout=120)
    vg_pid = sc.pid
    url = lambda p: f"http://127.0.0.1:{ports['sidecar']}{p}"  # noqa: E731
    report = []
    for n, scen in enumerate(scenarios, start=1):
        path = "/public/health" if scen == "public" else "/api/orders"
        header = auth if scen in ("reused",) else None
        script = [tokens_file, path] if scen == "fresh" else None
        # warm: pools, cache, lazy statics
        d.wrk(url(path), 2, header=header or (auth if scen == "fresh" else None))
        run(["callgrind_control", "-z", str(vg_pid)])
        res = d.wrk(url(path), SECONDS, header=header, script_args=script)
        run(["callgrind_control", "-d", f"scenario-{scen}", str(vg_pid)])
        time.sleep(0.5)
        dumps = sorted((f for f in os.listdir(OUT) if re.match(rf"cg\.out\.{vg_pid}\.{n}$", f)))
        if not dumps:
            d.die(f"no callgrind dump for {scen}: {os.listdir(OUT)}")
        dump = os.path.join(OUT, dumps[-1])
        reqs = res["requests"]
        total = annotate(dump, True)
        total_ir = max((ir for ir, name in total if name.startswith("PROGRAM TOTALS")), default=None)
        if total_ir is None:
            out = run(["callgrind_annotate", dump]).stdout
            m = re.search(r"^([\d,]+).*PROGRAM TOTALS", out, re.M)
            total_ir = int(m.group(1).replace(",", "")) if m else 0
        calls = parse_calls(dump)
        lines = [f"## {scen}: {reqs} requests, {total_ir / reqs:,.0f} instructions per request "
                 f"(whole process, user space)\n"]
        lines.append("| function | instructions / request (inclusive) | calls / request |")
        lines.append("|---|---:|---:|")
        incl = {name: ir for ir, name in total}
        for label, pat in WATCH:
            rx = re.compile(pat)
            ir = sum(v for k, v in incl.items() if rx.search(k))
            c = sum(v for k, v in calls.items() if rx.search(k))
            if ir or c:
                lines.append(f"| {label} | {ir / reqs:,.0f} | {c / reqs:.1f} |")
        lines.append("\nTop self cost:\n")
        lines.append("| instructions / request | % | function |\n|---:|---:|---|")
        for ir, name in annotate(dump, False)[:32]:
            if name.startswith("PROGRAM TOTALS") or ir >= 0.99 * total_ir:
                continue  # totals, and thread entry points callgrind charges everything to
            short = name if len(name) < 120 else name[:117] + "..."
            lines.append(f"| {ir / reqs:,.0f} | {100 * ir / total_ir:.1f} | `{short}` |")
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        report.append(text)
    d.stop(sc, wait=30)
    d.cleanup()
    with open(os.path.join(OUT, f"report-{os.path.basename(d.SIDECAR)}.md"), "w") as f:
        f.write("\n".join(report))


if __name__ == "__main__":
    main()
