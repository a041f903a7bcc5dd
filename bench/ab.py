#!/usr/bin/env python3
"""A/B throughput of two sidecar builds on the same backend, interleaved so that
machine noise hits both alike:

    python3 bench/ab.py BASELINE_BINARY CANDIDATE_BINARY [rounds] [scenario ...]

scenarios: reused (default), public, fresh. Each round runs every scenario for
BENCH_DURATION seconds (default 10) against A, then B, alternating which goes first.
Prints req/s and CPU seconds per 100k requests per round and the medians.
(Build the candidate in its own CARGO_TARGET_DIR from a patched copy of the crate.)
"""

import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver as d  # noqa: E402


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(64)
    bins = {"A": sys.argv[1], "B": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    scenarios = sys.argv[4:] or ["reused"]
    os.makedirs(os.path.join(d.WORK, "tmp"), exist_ok=True)
    d.fixtures()
    token = open(os.path.join(d.FIX, "token.txt")).read().strip()
    auth = f"Authorization: Bearer {token}"
    tokens_file = os.path.join(d.FIX, "tokens.txt")
    ports = {k: d.free_port() for k in ("backend", "jwks", "sidecar", "admin")}
    conf = d.write(os.path.join(d.WORK, "ab-backend.conf"), d.nginx_conf(
        "ab-backend",
        d.BACKEND_SERVERS.format(backend=ports["backend"], jwks=ports["jwks"], fix=d.FIX)))
    backend = d.start("ab-backend", ["nginx", "-c", conf, "-e", os.path.join(d.WORK, "ab-backend.stderr")])
    d.wait_port(ports["backend"], backend)
    base = open(os.path.join(d.FIX, "config.toml")).read()
    base = re.sub(r'(?m)^upstream = ".*"$', f'upstream = "http://127.0.0.1:{ports["backend"]}"', base)
    base = re.sub(r'(?m)^jwks_url = ".*"$', f'jwks_url = "http://127.0.0.1:{ports["jwks"]}/jwks.json"', base)
    sc_conf = d.write(os.path.join(d.WORK, "ab-sidecar.toml"),
                      d.sidecar_config(base, ports["sidecar"], ports["admin"]))
    url = lambda p: f"http://127.0.0.1:{ports['sidecar']}{p}"  # noqa: E731
    results = {(s, k): [] for s in scenarios for k in bins}
    for r in range(rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        for k in order:
            sc = d.start(f"ab-{k}", [bins[k], "--config", sc_conf])
            d.wait_ready(ports["admin"], sc)
            for s in scenarios:
                path = "/public/health" if s == "public" else "/api/orders"
                d.wrk(url(path), 1, header=None if s == "public" else auth)
                c0 = d.cpu_ticks([sc.pid])
                res = d.wrk(url(path), d.DURATION, header=auth if s == "reused" else None,
                            script_args=[tokens_file, path] if s == "fresh" else None)
                c1 = d.cpu_ticks([sc.pid])
                cpu = (c1 - c0) / d.CLK_TCK / max(res["requests"], 1) * 1e5
                results[(s, k)].append((res["rps"], cpu))
                d.log(f"round {r + 1} {k} {s}: {res['rps']:.0f} req/s, {cpu:.2f} CPU s/100k")
            d.stop(sc)
    print("\n| scenario | build | req/s (median) | CPU s / 100k (median) | rounds |")
    print("|---|---|---:|---:|---|")
    for s in scenarios:
        for k in bins:
            rps = statistics.median(x[0] for x in results[(s, k)])
            cpu = statistics.median(x[1] for x in results[(s, k)])
            rounds_txt = ", ".join(f"{x[0]:.0f}" for x in results[(s, k)])
            print(f"| {s} | {k} ({os.path.basename(bins[k])}) | {rps:,.0f} | {cpu:.2f} | {rounds_txt} |")
    d.cleanup()


if __name__ == "__main__":
    main()
