#!/usr/bin/env python3
"""Memory soak for cognito-sidecar (issue 15, "Resource bounds: nobody can exhaust the
sidecar").

Memory soak
-----------
Proves (or disproves) that the DEFAULT configuration's worst-case memory stays under
the shipped Kubernetes memory limit (128 MiB, deploy/kubernetes/base/deployment.yaml)
while an attacker holds as much of the sidecar as it lets itself be held. For every
attack it starts a fresh sidecar (all `limits.*` at their defaults unless --set says
otherwise) in front of a local Python backend (asyncio, a subprocess of this script:
/big streams 8 MiB, /slow-upload reads 4 KiB/s, /ws answers 101 and holds, /jwks.json
serves the pool's keys), waits for /readyz, records the baseline RSS, then runs the
attack for --seconds from many loopback source addresses (127.0.0.2-127.0.0.254, so
`limits.max_connections_per_ip` is not what saves it) with more connections than
`limits.max_connections` (read from `cognito-sidecar check-config`). It samples VmRSS
of the sidecar every 100 ms, reads VmHWM at the end, checks that a legitimate client
(fresh connection from 127.0.0.1, GET /public/legit) still gets an answer while the
attack is still holding its connections, closes the attackers, records the RSS after,
and stops the sidecar. Peak = max(VmRSS samples, VmHWM). An attack fails if its peak
exceeds --limit-mib or the sidecar died; the script then exits 1.

Attacks (--only NAME): tls-half-open, idle-keepalive, h2-stalled-streams,
slow-uploads, h2-uploads, websockets, big-headers (see ATTACKS below). The
h2-stalled-streams attacker keeps at most 2000 streams waiting for response headers, so
every stream it opens really reaches the stalled state (answered, body stuck on a zero
window) instead of queueing in front of the Python backend; --abort-mib (1024) ends an
attack early once the sidecar is far past the limit.

    python3 bench/soak.py                                   # all attacks, defaults
    python3 bench/soak.py --only h2-stalled-streams --seconds 10
    python3 bench/soak.py --set limits.max_connections=1024 # compare a setting

--set key=value is passed as COGNITO_SIDECAR_<KEY> (nested keys joined by "__").
Results are printed and written to bench/SOAK.md (one section per combination of
--set/--only; a rerun replaces its own section). Python 3.11 standard library only,
plus the `openssl` CLI for a throwaway certificate. If the binary is missing it runs
`cargo build --release --locked --bin cognito-sidecar`. A whole default run takes
about 4 minutes on 2 cores. Best run as root (or with a high hard RLIMIT_NOFILE):
the script raises the open-file limit for itself, the backend and the sidecar.
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import heapq
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shlex
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BINARY = os.path.join("target", "release", "cognito-sidecar")
DEFAULT_OUTPUT = os.path.join(ROOT, "bench", "SOAK.md")
MIB = 1024 * 1024

BIG_BYTES = 8 * MIB
UPLOAD_LENGTH = 1024 * MIB
SLOW_READ_BYTES = 4096  # the backend reads this much of an upload per second
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(*a):
    print(*a, flush=True)


def raise_nofile(want=1 << 20):
    """Raises RLIMIT_NOFILE to `want` (root can raise the hard limit), else to the
    hard limit. Returns the soft limit now in force (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = min(want, int(f.read()))
    except OSError:
        pass
    for lim in ((max(want, hard), max(want, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- backend


def jwks_document():
    # A well-formed 2048-bit RS256 key (nobody signs with it: every route is public).
    n = bytearray([0xC5] * 256)
    n[-1] |= 1
    b64 = base64.urlsafe_b64encode(bytes(n)).rstrip(b"=").decode()
    return json.dumps(
        {"keys": [{"kty": "RSA", "kid": "soak", "use": "sig", "alg": "RS256", "n": b64, "e": "AQAB"}]}
    ).encode()


async def backend_main(port_file):
    stats = {
        "open": 0,
        "requests": 0,
        "big_started": 0,
        "big_bytes": 0,
        "uploads_started": 0,
        "upload_bytes": 0,
        "ws_open": 0,
        "ws_total": 0,
    }
    jwks = jwks_document()
    chunk = b"x" * 65536

    def head(status, headers, body=b""):
        lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def handle(reader, writer):
        stats["open"] += 1
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
                hdrs = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                stats["requests"] += 1
                path = target.split("?", 1)[0]
                if path == "/jwks.json":
                    writer.write(head("200 OK", [("content-type", "application/json"), ("content-length", len(jwks))], jwks))
                elif path == "/stats":
                    body = json.dumps(stats).encode()
                    writer.write(head("200 OK", [("content-type", "application/json"), ("content-length", len(body))], body))
                elif path.startswith("/big"):
                    stats["big_started"] += 1
                    writer.write(head("200 OK", [("content-type", "application/octet-stream"), ("content-length", BIG_BYTES)]))
                    for _ in range(BIG_BYTES // len(chunk)):
                        writer.write(chunk)
                        await writer.drain()
                        stats["big_bytes"] += len(chunk)
                elif path.startswith("/slow-upload"):
                    stats["uploads_started"] += 1
                    if hdrs.get("expect", "").lower() == "100-continue":
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    remaining = int(hdrs.get("content-length", "-1"))
                    while remaining != 0:
                        want = SLOW_READ_BYTES if remaining < 0 else min(SLOW_READ_BYTES, remaining)
                        data = await reader.read(want)
                        if not data:
                            return
                        stats["upload_bytes"] += len(data)
                        if remaining > 0:
                            remaining -= len(data)
                        await asyncio.sleep(1)
                    body = b"uploaded\n"
                    writer.write(head("200 OK", [("content-length", len(body))], body))
                elif path.startswith("/ws") and hdrs.get("upgrade", "").lower() == "websocket":
                    key = hdrs.get("sec-websocket-key", "")
                    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
                    writer.write(
                        head("101 Switching Protocols", [("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", accept)])
                    )
                    await writer.drain()
                    stats["ws_open"] += 1
                    stats["ws_total"] += 1
                    try:
                        while await reader.read(65536):
                            pass
                    finally:
                        stats["ws_open"] -= 1
                    return
                else:
                    body = b"ok\n"
                    writer.write(head("200 OK", [("content-type", "text/plain"), ("content-length", len(body))], body))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, OSError):
            pass
        finally:
            stats["open"] -= 1
            try:
                writer.close()
            except Exception:
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=65535, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)
    async def dump_stats():
        # The parent reads this file: a backend drowning in connections still reports.
        while True:
            with open(port_file + ".stats.tmp", "w") as f:
                json.dump(stats, f)
            os.replace(port_file + ".stats.tmp", port_file + ".stats")
            await asyncio.sleep(0.5)

    asyncio.get_running_loop().create_task(dump_stats())
    async with server:
        await server.serve_forever()


class Backend:
    def __init__(self, workdir):
        self.port_file = os.path.join(workdir, "backend.port")
        for leftover in (self.port_file, self.port_file + ".stats"):
            if os.path.exists(leftover):
                os.remove(leftover)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-backend", self.port_file],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, "backend.log"), "wb"),
        )
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("backend did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stats(self):
        try:
            with open(self.port_file + ".stats") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            return {"error": str(e)}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# --------------------------------------------------------------------------- sidecar


def tls_files(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return cert, key


def config_text(port, admin, backend_port, tls):
    tls_section = ""
    if tls:
        tls_section = f'[tls]\ncert_file = "{tls[0]}"\nkey_file = "{tls[1]}"\n'
    return f"""# written by bench/soak.py: every limits.* key at its default
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
upstream = "http://127.0.0.1:{backend_port}"
log_level = "warn"
log_format = "text"

{tls_section}
[shutdown]
drain_timeout_seconds = 2

[[pools]]
name = "soak"
id = "us-east-1_SoakPool1"
client_ids = ["soak"]
token_use = ["access"]
jwks_url = "http://127.0.0.1:{backend_port}/jwks.json"

[[routes]]
path = "/big"
auth = "public"
[[routes]]
path = "/slow-upload"
auth = "public"
[[routes]]
path = "/ws"
auth = "public"
websocket = true
[[routes]]
path = "/public/"
auth = "public"
"""


def sidecar_env(sets):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COGNITO_SIDECAR_")}
    for item in sets:
        key, _, value = item.partition("=")
        env["COGNITO_SIDECAR_" + key.strip().upper().replace(".", "__")] = value
    env.pop("RUST_LOG", None)
    return env


def effective_limits(binary, cfg_path, env):
    """`check-config` prints the effective settings (Rust Debug format): pick the limits."""
    out = subprocess.run([binary, "check-config", "--config", cfg_path], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"check-config failed:\n{out.stdout}{out.stderr}")
    found = {}
    for key in ("max_connections", "max_header_bytes", "h2_max_concurrent_streams", "max_headers"):
        m = re.search(rf"\b{key}: (\d+)", out.stdout)
        if m:
            found[key] = int(m.group(1))
    return found


class Sidecar:
    def __init__(self, binary, workdir, backend_port, env, tls, name):
        self.port, self.admin = free_port(), free_port()
        self.cfg = os.path.join(workdir, "sidecar.toml")
        with open(self.cfg, "w") as f:
            f.write(config_text(self.port, self.admin, backend_port, tls))
        self.log_path = os.path.join(workdir, f"sidecar-{name}.log")
        self.proc = subprocess.Popen(
            [binary, "--config", self.cfg, "run"], env=env,
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"),
        )
        self.pid = self.proc.pid
        deadline = time.time() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited at start ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"sidecar not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def status(self):
        """(VmRSS, VmHWM) in KiB, or None once the process is gone."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                text = f.read()
        except OSError:
            return None
        rss = re.search(r"VmRSS:\s+(\d+)", text)
        hwm = re.search(r"VmHWM:\s+(\d+)", text)
        if not rss:
            return None
        return int(rss.group(1)), int(hwm.group(1)) if hwm else 0

    def metrics(self, timeout=2):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=timeout)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        out = {}
        for name in ("cognito_sidecar_open_connections", "cognito_sidecar_requests_in_flight",
                     "cognito_sidecar_websocket_sessions"):
            m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
            if m:
                out[name] = float(m.group(1))
        m = re.findall(r'^cognito_sidecar_connections_rejected_total\{[^}]*\} ([0-9.e+]+)$', text, re.M)
        out["rejected"] = sum(float(x) for x in m)
        m = re.findall(r'^cognito_sidecar_upstream_errors_total\{[^}]*\} ([0-9.e+]+)$', text, re.M)
        out["upstream_errors"] = sum(float(x) for x in m)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Sampler(threading.Thread):
    """VmRSS of the sidecar every 100 ms (and VmHWM)."""

    def __init__(self, sidecar):
        super().__init__(daemon=True)
        self.sc = sidecar
        self.stop_ev = threading.Event()
        self.samples = []  # (t, rss KiB)
        self.rss = 0
        self.hwm = 0
        self.gone = False
        self.t0 = time.monotonic()
        self.next_fds = 0.0
        self.max_fds = 0
        self.metrics = MetricsScraper(sidecar, self.stop_ev)

    def run(self):
        self.metrics.start()
        while not self.stop_ev.is_set():
            st = self.sc.status()
            now = time.monotonic()
            if st is None or self.sc.proc.poll() is not None:
                self.gone = True
                return
            self.rss, self.hwm = st[0], max(self.hwm, st[1])
            self.samples.append((now - self.t0, st[0]))
            if now >= self.next_fds:
                self.next_fds = now + 1.0
                try:
                    self.max_fds = max(self.max_fds, len(os.listdir(f"/proc/{self.sc.pid}/fd")))
                except OSError:
                    pass
            self.stop_ev.wait(0.1)

    def peak(self):
        return max([s[1] for s in self.samples] + [self.hwm])


class MetricsScraper(threading.Thread):
    """The admin /metrics about every second: open connections, requests in flight."""

    def __init__(self, sidecar, stop_ev):
        super().__init__(daemon=True)
        self.sc, self.stop_ev = sidecar, stop_ev
        self.latest = {}
        self.timeline = []
        self.max = {}
        self.failures = 0

    def run(self):
        while not self.stop_ev.is_set():
            try:
                m = self.sc.metrics(timeout=5)
                self.latest = m
                self.timeline.append((time.monotonic(), m))
                for k, v in m.items():
                    self.max[k] = max(self.max.get(k, 0), v)
            except Exception:  # noqa: BLE001
                self.failures += 1
            self.stop_ev.wait(1.0)


# --------------------------------------------------------------------------- HTTP/2


def h2_frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(index, value):
    """Literal header field without indexing, indexed name (RFC 7541 6.2.2)."""
    v = value.encode()
    return hpack_int(index, 4, 0x00) + hpack_int(len(v), 7, 0x00) + v


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


# --------------------------------------------------------------------------- engine


class Conn:
    """One attacker connection; attacks subclass it."""

    def __init__(self, eng, sock, idx):
        self.eng, self.sock, self.idx = eng, sock, idx
        self.out = bytearray()
        self.connected = False
        self.events = 0
        self.closed = False

    # hooks
    def on_connected(self):
        pass

    def on_data(self, data):
        pass

    def on_writable(self):
        pass

    def on_timer(self):
        pass

    def wants_write(self):
        return bool(self.out)

    # helpers
    def send(self, data):
        self.out += data
        self.flush()

    def flush(self):
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.eng.close(self, by_server=True)
                return
            del self.out[:n]
        self.eng.update(self)

    def schedule(self, delay):
        self.eng.schedule(self, delay)


class Engine:
    def __init__(self, host, port, target, make_conn, stats, batch=256):
        self.host, self.port, self.target = host, port, target
        self.make_conn = make_conn
        self.stats = stats
        self.sel = selectors.EpollSelector()
        self.live = set()
        self.timers = []
        self.seq = 0
        self.n = 0
        self.batch = batch
        self.open_paused_until = 0.0

    def open_one(self):
        src = f"127.0.0.{2 + self.n % 253}"
        idx = self.n
        self.n += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
            rc = s.connect_ex((self.host, self.port))
        except OSError as e:
            s.close()
            self.stats["connect_errors"] = self.stats.get("connect_errors", 0) + 1
            self.stats["last_connect_error"] = str(e)
            self.open_paused_until = time.monotonic() + 0.2
            return
        self.stats["attempted"] += 1
        if rc not in (0, 115):  # EINPROGRESS
            s.close()
            self.stats["connect_errors"] = self.stats.get("connect_errors", 0) + 1
            self.stats["last_connect_error"] = os.strerror(rc)
            return
        c = self.make_conn(self, s, idx)
        self.live.add(c)
        c.events = selectors.EVENT_WRITE
        self.sel.register(s, c.events, c)

    def update(self, c):
        if c.closed:
            return
        ev = selectors.EVENT_READ if c.connected else selectors.EVENT_WRITE
        if c.connected and c.wants_write():
            ev |= selectors.EVENT_WRITE
        if ev != c.events:
            c.events = ev
            self.sel.modify(c.sock, ev, c)

    def close(self, c, by_server=False):
        if c.closed:
            return
        c.closed = True
        self.live.discard(c)
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        if by_server:
            self.stats["closed_by_peer"] += 1

    def schedule(self, c, delay):
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, c))

    def step(self, reopen=True):
        now = time.monotonic()
        if reopen and now >= self.open_paused_until:
            k = 0
            can_open = getattr(self.make_conn, "can_open", None)
            while len(self.live) < self.target and k < self.batch and (can_open is None or can_open(self)):
                self.open_one()
                k += 1
        timeout = 0.05
        if self.timers:
            timeout = max(0.0, min(timeout, self.timers[0][0] - now))
        for key, mask in self.sel.select(timeout):
            c = key.data
            if c.closed:
                continue
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.stats["connect_errors"] = self.stats.get("connect_errors", 0) + 1
                    self.stats["last_connect_error"] = os.strerror(err)
                    self.close(c)
                    continue
                c.connected = True
                self.stats["established"] += 1
                c.on_connected()
                self.update(c)
                continue
            if mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(262144)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    self.close(c, by_server=True)
                    continue
                if data:
                    self.stats["bytes_received"] += len(data)
                    c.on_data(data)
            if not c.closed and mask & selectors.EVENT_WRITE:
                c.flush()
                if not c.closed:
                    c.on_writable()
                    self.update(c)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, c = heapq.heappop(self.timers)
            if not c.closed:
                c.on_timer()

    def close_all(self):
        for c in list(self.live):
            self.close(c)
        self.sel.close()


# --------------------------------------------------------------------------- attacks


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsHalfOpen(Conn):
    """Even connections send nothing; odd ones half a ClientHello. Then silence."""

    HELLO = None

    def on_connected(self):
        if self.idx % 2:
            if TlsHalfOpen.HELLO is None:
                TlsHalfOpen.HELLO = client_hello()
            self.send(TlsHalfOpen.HELLO[: len(TlsHalfOpen.HELLO) // 2])
            self.eng.stats["half_hellos"] += 1
        else:
            self.eng.stats["silent"] += 1


class IdleKeepalive(Conn):
    def on_connected(self):
        self.send(b"GET /public/idle HTTP/1.1\r\nHost: soak\r\n\r\n")
        self.got = False

    def on_data(self, data):
        if not self.got and data.startswith(b"HTTP/1.1 "):
            self.got = True
            st = self.eng.stats
            st["responses"] += 1
            code = data[9:12].decode(errors="replace")
            st.setdefault("statuses", {})
            st["statuses"][code] = st["statuses"].get(code, 0) + 1


class H2Base(Conn):
    my_settings = ()

    def on_connected(self):
        self.buf = bytearray()
        self.server_settings_seen = False
        self.max_streams = 100
        self.peer_initial_window = 65535
        self.max_frame = 16384
        self.next_sid = 1
        self.active = {}  # sid -> stream window
        self.conn_window = 65535
        payload = b"".join(struct.pack(">HI", k, v) for k, v in self.my_settings)
        self.send(H2_PREFACE + h2_frame(SETTINGS, 0, 0, payload))

    def on_data(self, data):
        self.buf += data
        st = self.eng.stats
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[9 : 9 + length])
            del self.buf[: 9 + length]
            if ftype == SETTINGS and not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    k, v = struct.unpack(">HI", payload[i : i + 6])
                    if k == 3:
                        self.max_streams = v
                        st["server_max_streams"] = v
                    elif k == 4:
                        delta = v - self.peer_initial_window
                        self.peer_initial_window = v
                        st["server_initial_window"] = v
                        for s in self.active:
                            self.active[s] += delta
                    elif k == 5:
                        self.max_frame = v
                self.out += h2_frame(SETTINGS, ACK, 0)
                if not self.server_settings_seen:
                    self.server_settings_seen = True
                    self.open_streams()
            elif ftype == PING and not flags & ACK:
                self.out += h2_frame(PING, ACK, 0, payload)
            elif ftype == HEADERS:
                st["response_headers"] += 1
                if flags & END_STREAM:
                    self.stream_done(sid)
            elif ftype == DATA:
                st["response_data_bytes"] += length
                if flags & END_STREAM:
                    self.stream_done(sid)
            elif ftype == RST_STREAM:
                st["rst_received"] += 1
                self.stream_done(sid)
            elif ftype == GOAWAY:
                st["goaway_received"] += 1
                self.goaway = True
            elif ftype == WINDOW_UPDATE:
                inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                if sid == 0:
                    self.conn_window += inc
                elif sid in self.active:
                    self.active[sid] += inc
                st["window_updates"] += 1
        self.after_frames()
        self.flush()

    def stream_done(self, sid):
        if self.active.pop(sid, None) is not None:
            self.eng.stats["streams_ended"] += 1
            if not getattr(self, "goaway", False):
                self.open_streams()

    def gated(self):
        return False

    def open_streams(self):
        st = self.eng.stats
        while len(self.active) < self.max_streams and self.next_sid < 2**31 - 1:
            if self.gated():
                return
            sid = self.next_sid
            self.next_sid += 2
            self.out += self.request_frames(sid)
            self.active[sid] = self.peer_initial_window
            st["headers_sent"] += 1

    def after_frames(self):
        pass


class H2Stalled(H2Base):
    # INITIAL_WINDOW_SIZE 0, MAX_CONCURRENT_STREAMS 1000, ENABLE_PUSH 0
    my_settings = ((4, 0), (3, 1000), (2, 0))
    # Streams whose response has not started yet, across all connections: beyond this,
    # new streams (and connections) wait, so that every stream opened really reaches
    # the stalled state (response HEADERS sent, body stuck on a zero window) instead of
    # piling up in front of the (Python) backend.
    PENDING_MAX = 2000
    WAITING = []

    @staticmethod
    def pending(st):
        return st["headers_sent"] - st["response_headers"] - st["rst_received"]

    @classmethod
    def can_open(cls, eng):
        return cls.pending(eng.stats) < cls.PENDING_MAX and not cls.WAITING

    def gated(self):
        if self.pending(self.eng.stats) >= self.PENDING_MAX:
            if self not in self.WAITING:
                self.WAITING.append(self)
            return True
        return False

    def after_frames(self):
        st = self.eng.stats
        while self.WAITING and self.pending(st) < self.PENDING_MAX:
            c = self.WAITING.pop(0)
            if not c.closed:
                c.open_streams()
                c.flush()

    def request_frames(self, sid):
        block = b"\x82\x86" + hpack_literal(4, "/big") + hpack_literal(1, "soak")
        return h2_frame(HEADERS, END_STREAM | END_HEADERS, sid, block)


class H2Upload(H2Base):
    my_settings = ((2, 0),)
    ZEROS = b"\0" * 16384

    def request_frames(self, sid):
        block = (
            b"\x83\x86"
            + hpack_literal(4, "/slow-upload")
            + hpack_literal(1, "soak")
            + hpack_literal(28, str(UPLOAD_LENGTH))
        )
        return h2_frame(HEADERS, END_HEADERS, sid, block)

    def after_frames(self):
        self.pump()

    def on_writable(self):
        self.pump()
        self.flush()

    def pump(self):
        st = self.eng.stats
        if not getattr(self, "server_settings_seen", False):
            return
        progress = True
        while progress and self.conn_window > 0 and len(self.out) < 262144:
            progress = False
            for sid, w in self.active.items():
                if w <= 0 or self.conn_window <= 0:
                    continue
                n = min(self.max_frame, w, self.conn_window, 16384)
                self.out += h2_frame(DATA, 0, sid, self.ZEROS[:n])
                self.active[sid] = w - n
                self.conn_window -= n
                st["data_bytes_sent"] += n
                progress = True
                if len(self.out) >= 262144:
                    break


class SlowUpload(Conn):
    CHUNK = b"\0" * 65536

    def on_connected(self):
        self.send(f"POST /slow-upload HTTP/1.1\r\nHost: soak\r\nContent-Length: {UPLOAD_LENGTH}\r\n\r\n".encode())
        self.sent = 0

    def wants_write(self):
        return True

    def on_writable(self):
        st = self.eng.stats
        while self.sent < UPLOAD_LENGTH:
            try:
                n = self.sock.send(self.CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.eng.close(self, by_server=True)
                return
            self.sent += n
            st["body_bytes_sent"] += n
            if n < len(self.CHUNK):
                return

    def on_data(self, data):
        if data.startswith(b"HTTP/1.1 "):
            code = data[9:12].decode(errors="replace")
            st = self.eng.stats
            st.setdefault("statuses", {})
            st["statuses"][code] = st["statuses"].get(code, 0) + 1


class WebSocket(Conn):
    def on_connected(self):
        key = base64.b64encode(os.urandom(16)).decode()
        self.send(
            (
                "GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.got = False

    def on_data(self, data):
        if not self.got:
            self.got = True
            st = self.eng.stats
            code = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/1.1 ") else "?"
            st.setdefault("statuses", {})
            st["statuses"][code] = st["statuses"].get(code, 0) + 1
            if code == "101":
                st["upgraded"] += 1


class BigHeaders(Conn):
    """Trickles a request head of about max_header_bytes - 2 KiB over HEAD_SECONDS in
    small steps, never finishing it."""

    HEAD = b""
    STEP_SECONDS = 0.5
    HEAD_SECONDS = 8.0

    @classmethod
    def prepare(cls, max_header_bytes, max_headers):
        size = max_header_bytes - 2048
        lines = min(max_headers - 4, 60)
        per = size // lines
        head = b"GET /public/big-headers HTTP/1.1\r\nHost: soak\r\n"
        i = 0
        while len(head) + per < size:
            name = f"X-Soak-{i:03d}: ".encode()
            head += name + b"a" * (per - len(name) - 2) + b"\r\n"
            i += 1
        cls.HEAD = head  # no final CRLF: the head never completes
        steps = int(cls.HEAD_SECONDS / cls.STEP_SECONDS)
        cls.PIECE = len(head) // steps + 1

    def on_connected(self):
        self.pos = 0
        self.tick()

    def tick(self):
        if self.pos >= len(self.HEAD):
            return
        piece = self.HEAD[self.pos : self.pos + self.PIECE]
        self.pos += len(piece)
        self.eng.stats["head_bytes_sent"] += len(piece)
        if self.pos >= len(self.HEAD):
            self.eng.stats["heads_nearly_complete"] += 1
        self.send(piece)
        if not self.closed:
            self.schedule(self.STEP_SECONDS)

    def on_timer(self):
        self.tick()

    def on_data(self, data):
        if data.startswith(b"HTTP/1.1 "):
            code = data[9:12].decode(errors="replace")
            st = self.eng.stats
            st.setdefault("statuses", {})
            st["statuses"][code] = st["statuses"].get(code, 0) + 1


ATTACKS = {
    "tls-half-open": dict(cls=TlsHalfOpen, tls=True, per="connection",
                          desc="TLS on; TCP connections that send nothing (even) or half a ClientHello (odd)"),
    "idle-keepalive": dict(cls=IdleKeepalive, tls=False, per="connection",
                           desc="HTTP/1.1: one GET /public/idle, read the answer, stay idle"),
    "h2-stalled-streams": dict(cls=H2Stalled, tls=False, per="stream",
                               desc="h2c: INITIAL_WINDOW_SIZE=0, as many GET /big (8 MiB) streams as allowed, never WINDOW_UPDATE"),
    "slow-uploads": dict(cls=SlowUpload, tls=False, per="connection",
                         desc="HTTP/1.1 POST /slow-upload, Content-Length 1 GiB, body as fast as the socket takes; backend reads 4 KiB/s"),
    "h2-uploads": dict(cls=H2Upload, tls=False, per="stream",
                       desc="h2c: as many POST /slow-upload streams as allowed, DATA up to every window granted"),
    "websockets": dict(cls=WebSocket, tls=False, per="connection",
                       desc="WebSocket upgrades on a public websocket route (101), held open"),
    "big-headers": dict(cls=BigHeaders, tls=False, per="connection",
                        desc="request heads of max_header_bytes - 2 KiB trickled over 8 s, never completed"),
}


# --------------------------------------------------------------------------- one run


def legit_request(port, tls, timeout):
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.settimeout(max(0.1, timeout - (time.monotonic() - t0)))
        s.sendall(b"GET /public/legit HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        if data.startswith(b"HTTP/"):
            return data.split(b" ", 2)[1].decode(), time.monotonic() - t0
        return "closed", time.monotonic() - t0
    except socket.timeout:
        return "timeout", time.monotonic() - t0
    except OSError as e:
        return f"error ({e.strerror or e})", time.monotonic() - t0


def run_attack(name, args, workdir, limits, env):
    spec = ATTACKS[name]
    backend = Backend(workdir)
    sidecar = None
    tls = tls_files(workdir) if spec["tls"] else None
    res = {"name": name, "desc": spec["desc"], "per": spec["per"]}
    try:
        sidecar = Sidecar(args.binary, workdir, backend.port, env, tls, name)
        time.sleep(0.5)
        res["baseline_kib"] = sidecar.status()[0]
        keys = ["attempted", "established", "closed_by_peer", "bytes_received", "half_hellos", "silent",
                "responses", "headers_sent", "response_headers", "response_data_bytes", "rst_received",
                "goaway_received", "window_updates", "streams_ended", "data_bytes_sent", "body_bytes_sent",
                "upgraded", "head_bytes_sent", "heads_nearly_complete"]
        stats = {k: 0 for k in keys}
        if name == "big-headers":
            BigHeaders.prepare(limits.get("max_header_bytes", 65536), limits.get("max_headers", 100))
        sampler = Sampler(sidecar)
        sampler.start()
        eng = Engine("127.0.0.1", sidecar.port, args.connections, spec["cls"], stats)
        limit_kib = args.limit_mib * 1024
        abort_kib = args.abort_mib * 1024
        t0 = time.monotonic()
        end = t0 + args.seconds
        crossed = None
        aborted = False
        legit = {}
        legit_thread = None
        while True:
            eng.step(reopen=not aborted)
            now = time.monotonic()
            if sampler.gone:
                break
            if crossed is None and sampler.rss > limit_kib:
                crossed = {"t": round(now - t0, 1), "at": now, "established": stats["established"],
                           "headers_sent": stats["headers_sent"], "response_headers": stats["response_headers"]}
            if not aborted and sampler.rss > abort_kib:
                aborted = True
                end = min(end, now)
            if legit_thread is None and now >= end:
                def check():
                    legit["status"], legit["latency"] = legit_request(sidecar.port, bool(tls), args.legit_timeout)
                legit_thread = threading.Thread(target=check, daemon=True)
                legit_thread.start()
            if legit_thread is not None and not legit_thread.is_alive():
                break
        res["attack_seconds"] = round(time.monotonic() - t0, 1)
        res["open_at_end"] = len(eng.live)
        st = sidecar.status()
        if st:
            sampler.hwm = max(sampler.hwm, st[1])
        try:
            res["metrics_at_end"] = sidecar.metrics()
        except Exception:  # noqa: BLE001
            res["metrics_at_end"] = {}
        res["backend"] = backend.stats()
        eng.close_all()
        time.sleep(args.after_seconds)
        st = sidecar.status()
        res["after_kib"] = st[0] if st else None
        if st:
            sampler.hwm = max(sampler.hwm, st[1])
        sampler.stop_ev.set()
        sampler.join()
        res["peak_kib"] = sampler.peak()
        res["hwm_kib"] = sampler.hwm
        res["samples"] = len(sampler.samples)
        res["metrics_failures"] = sampler.metrics.failures
        res["max_fds"] = sampler.max_fds
        res["accepted_peak"] = int(sampler.metrics.max.get("cognito_sidecar_open_connections", 0))
        res["in_flight_peak"] = int(sampler.metrics.max.get("cognito_sidecar_requests_in_flight", 0))
        res["ws_sessions_peak"] = int(sampler.metrics.max.get("cognito_sidecar_websocket_sessions", 0))
        res["stats"] = stats
        res["legit"] = legit
        if crossed:
            # The first /metrics scrape after the crossing says how much was held.
            later = [m for (t, m) in sampler.metrics.timeline if t >= crossed["at"]]
            m = later[0] if later else sampler.metrics.latest
            crossed["accepted"] = m.get("cognito_sidecar_open_connections", 0)
            crossed["in_flight"] = m.get("cognito_sidecar_requests_in_flight", 0)
            crossed["ws"] = m.get("cognito_sidecar_websocket_sessions", 0)
        res["crossed"] = crossed
        res["aborted"] = aborted
        res["died"] = sidecar.proc.poll() is not None
        res["exit_code"] = sidecar.proc.returncode
    finally:
        if sidecar is not None:
            sidecar.stop()
        backend.stop()
    with open(sidecar.log_path, errors="replace") as f:
        text = f.read()
    res["log_counts"] = {
        "accept failed": text.count("accept failed"),
        "upstream request failed": text.count("upstream request failed"),
        "Too many open files": text.count("Too many open files"),
    }
    res["panicked"] = "panicked" in text
    res["log_tail"] = sidecar.log_tail(5)
    res["pass"] = res["peak_kib"] <= limit_kib and not res["died"] and not res["panicked"]
    return res


# --------------------------------------------------------------------------- report


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def detail(r):
    s = r["stats"]
    b = r.get("backend", {})
    n = r["name"]
    parts = []
    if n == "tls-half-open":
        parts.append(f"{s['silent']} silent + {s['half_hellos']} half ClientHellos")
    elif n == "idle-keepalive":
        parts.append(f"{s['responses']} GETs answered {s.get('statuses', {})}")
    elif n in ("h2-stalled-streams", "h2-uploads"):
        parts.append(f"server max streams {s.get('server_max_streams', '?')}, HEADERS sent {s['headers_sent']}, "
                     f"response HEADERS {s['response_headers']}, RST {s['rst_received']}, GOAWAY {s['goaway_received']}")
        if n == "h2-stalled-streams":
            parts.append(f"response DATA {s['response_data_bytes']} B; backend /big started {b.get('big_started')}, "
                         f"sent {b.get('big_bytes', 0) / MIB:.0f} MiB")
        else:
            parts.append(f"server initial window {s.get('server_initial_window', '?')}, DATA sent "
                         f"{s['data_bytes_sent'] / MIB:.1f} MiB; backend uploads started {b.get('uploads_started')}, "
                         f"received {b.get('upload_bytes', 0) / MIB:.1f} MiB")
    elif n == "slow-uploads":
        parts.append(f"body sent {s['body_bytes_sent'] / MIB:.1f} MiB; backend uploads started "
                     f"{b.get('uploads_started')}, received {b.get('upload_bytes', 0) / MIB:.1f} MiB; "
                     f"answers {s.get('statuses', {})}")
    elif n == "websockets":
        parts.append(f"{s['upgraded']} upgraded (101) {s.get('statuses', {})}; peak bridged sessions "
                     f"{r['ws_sessions_peak']}; backend open WebSockets at end {b.get('ws_open')}")
    elif n == "big-headers":
        parts.append(f"head {len(BigHeaders.HEAD)} B each, {s['head_bytes_sent'] / MIB:.1f} MiB sent, "
                     f"{s['heads_nearly_complete']} heads fully trickled; answers {s.get('statuses', {})}")
    parts.append(f"established {s['established']}, closed by the sidecar {s['closed_by_peer']}")
    if s.get("connect_errors"):
        parts.append(f"connect errors {s['connect_errors']} ({s.get('last_connect_error')})")
    parts.append(f"peak in-flight requests {r['in_flight_peak']}")
    if r.get("metrics_failures"):
        parts.append(f"{r['metrics_failures']} /metrics scrapes timed out")
    grown = (r["peak_kib"] - r["baseline_kib"]) * 1024
    units = r["accepted_peak"] if r["per"] == "connection" else r["in_flight_peak"]
    if n == "websockets":
        units = max(units, r["ws_sessions_peak"])
    if units:
        parts.append(f"~{grown / units / 1024:.1f} KiB per {r['per']} ({units} {r['per']}s)")
    if r["crossed"]:
        c = r["crossed"]
        parts.append(f"crossed the limit at t={c['t']} s (next scrape: {int(c['accepted'])} connections open"
                     + (f", {int(c['in_flight'])} requests in flight" if r["per"] == "stream" else "")
                     + (f", {int(c['ws'])} WebSocket sessions" if n == "websockets" else "") + ")")
    logged = {k: v for k, v in r.get("log_counts", {}).items() if v}
    if logged:
        parts.append("sidecar log: " + ", ".join(f"{v}x {k!r}" for k, v in logged.items()))
    if r["aborted"]:
        parts.append("attack stopped early: RSS passed --abort-mib")
    if r["died"]:
        parts.append(f"SIDECAR DIED (exit {r['exit_code']})")
    if r["panicked"]:
        parts.append("panic in the sidecar log")
    return "; ".join(parts)


def table(results, limit_mib):
    rows = ["| attack | conns attempted | accepted (peak open) | sidecar fds (peak) | baseline MiB | peak MiB "
            "| after MiB | legit client | result |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        lg = r["legit"]
        legit = f"{lg.get('status', '?')} in {lg.get('latency', 0) * 1000:.0f} ms"
        verdict = "PASS" if r["pass"] else "**FAIL**"
        if r["died"]:
            verdict += " (died)"
        rows.append(
            f"| {r['name']} | {r['stats']['attempted']} | {r['accepted_peak']} | {r['max_fds']} | {mib(r['baseline_kib'])} "
            f"| {mib(r['peak_kib'])} | {mib(r['after_kib'])} | {legit} | {verdict} (limit {limit_mib}) |"
        )
    return "\n".join(rows)


def machine():
    kernel = platform.release()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            model = m.group(1).strip() if m else ""
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s+(\d+)", f.read())
            mem = f", {int(m.group(1)) // 1024 // 1024} GiB RAM" if m else ""
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}){mem}, Linux {kernel}"


def write_report(path, key, results, args, limits, command, nofile):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "?"
    lines = [
        f"<!-- soak:{key} -->",
        f"## {key}",
        "",
        f"- date: {now}",
        f"- command: `{command}`",
        f"- binary: `{args.binary}` ({version})",
        f"- machine: {machine()}; RLIMIT_NOFILE {nofile}",
        f"- effective limits: " + ", ".join(f"{k} = {v}" for k, v in sorted(limits.items()))
        + (f"; overrides: {', '.join(args.set)}" if args.set else "; all limits.* at their defaults"),
        f"- {args.connections} attacker connections per attack from 127.0.0.2-127.0.0.254, "
        f"{args.seconds} s each; RSS sampled every 100 ms; peak = max(VmRSS samples, VmHWM); "
        f"legit client = fresh connection from 127.0.0.1, GET /public/legit, {args.legit_timeout} s timeout, "
        "made while the attack still holds its connections; RSS after = "
        f"{args.after_seconds} s after the attackers closed.",
        "",
        table(results, args.limit_mib),
        "",
    ]
    for r in results:
        lines.append(f"- **{r['name']}** ({r['desc']}): {detail(r)}.")
    lines += ["", f"<!-- /soak:{key} -->", ""]
    section = "\n".join(lines)
    header = (
        "# Memory soak (issue 15)\n\n"
        "Written by `python3 bench/soak.py` (see its top comment). Each attack runs against a "
        "fresh sidecar with a minimal configuration that leaves every `limits.*` key at its "
        "default unless the section says otherwise; the limit is the shipped Kubernetes memory "
        "limit (deploy/kubernetes/base/deployment.yaml). One section per `--set`/`--only` "
        "combination; a rerun replaces its own section.\n\n"
    )
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    pat = re.compile(rf"<!-- soak:{re.escape(key)} -->.*?<!-- /soak:{re.escape(key)} -->\n?", re.S)
    if pat.search(old):
        new = pat.sub(lambda _: section, old)
    else:
        body = old if old.startswith("# Memory soak") else header
        new = body.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(new)


# --------------------------------------------------------------------------- main


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-backend":
        raise_nofile()
        asyncio.run(backend_main(sys.argv[2]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=DEFAULT_BINARY)
    p.add_argument("--limit-mib", type=int, default=128)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--only", action="append", choices=sorted(ATTACKS), help="run only this attack (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra configuration key, e.g. limits.max_connections=1024 (repeatable)")
    p.add_argument("--connections", type=int, help="attacker connections (default: max_connections + 10%%)")
    p.add_argument("--abort-mib", type=int, default=1024,
                   help="stop an attack early once the sidecar's RSS passes this (protects the machine)")
    p.add_argument("--legit-timeout", type=float, default=5)
    p.add_argument("--after-seconds", type=float, default=2)
    p.add_argument("--output", default=DEFAULT_OUTPUT)
    args = p.parse_args()
    command = "python3 bench/soak.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])

    os.chdir(ROOT)
    if not os.path.exists(args.binary):
        log(f"{args.binary} missing: cargo build --release --locked --bin cognito-sidecar")
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "cognito-sidecar"], check=True)
    args.binary = os.path.abspath(args.binary)
    nofile = raise_nofile()
    env = sidecar_env(args.set)
    workdir = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "soak")
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, "probe.toml")
    with open(probe, "w") as f:
        f.write(config_text(free_port(), free_port(), free_port(), None))
    limits = effective_limits(args.binary, probe, env)
    max_conn = limits.get("max_connections", 10000)
    if args.connections is None:
        args.connections = max_conn + max(64, max_conn // 10)
    need = args.connections + 1000
    if nofile < need:
        log(f"warning: RLIMIT_NOFILE is {nofile}, below the {need} sockets wanted; fewer connections will open")
    names = args.only or list(ATTACKS)
    key = ("defaults" if not args.set else " ".join(args.set)) + (f" only={','.join(names)}" if args.only else "")
    log(f"soak: {args.binary}; limits {limits}; {args.connections} connections, {args.seconds:g} s per attack; "
        f"limit {args.limit_mib} MiB; RLIMIT_NOFILE {nofile}")
    results = []
    for name in names:
        log(f"== {name}: {ATTACKS[name]['desc']}")
        r = run_attack(name, args, workdir, limits, env)
        results.append(r)
        lg = r["legit"]
        log(f"   baseline {mib(r['baseline_kib'])} MiB, peak {mib(r['peak_kib'])} MiB, after "
            f"{mib(r['after_kib'])} MiB; accepted {r['accepted_peak']}; legit {lg.get('status')} in "
            f"{lg.get('latency', 0) * 1000:.0f} ms -> {'PASS' if r['pass'] else 'FAIL'}")
        log(f"   {detail(r)}")
        if r["died"] or r["panicked"]:
            log("   sidecar log tail:\n" + r["log_tail"])
    log("")
    log(table(results, args.limit_mib))
    write_report(args.output, key, results, args, limits, command, nofile)
    log(f"\nwritten to {os.path.relpath(args.output, ROOT)}")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
