// The pieces the browser suite starts: an echo backend, a TCP front for the sidecar,
// the sidecar binary itself, the demo, and headless Chromium. Everything listens on
// 127.0.0.1 with ports chosen by the OS; readiness is awaited, never slept for.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..');
export const ARTIFACTS = path.join(REPO, 'target', 'browser');

export const SIDECAR_BIN = path.resolve(
  HERE,
  process.env.COGNITO_SIDECAR_BIN ?? path.join('..', 'target', 'debug', 'cognito-sidecar'),
);
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

async function closeServer(server) {
  server.closeAllConnections?.();
  await new Promise((resolve) => { server.close(() => resolve()); });
}

/**
 * The backend: answers every request with what it received (method, url, headers).
 * Browsers (Accept: text/html) get it as a page with the JSON in <pre id="echo">;
 * everything else gets application/json. Every request is recorded in `requests`.
 */
export async function startEcho() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(seen);
      const json = JSON.stringify(seen, null, 2);
      let body;
      let type;
      if ((req.headers.accept ?? '').includes('text/html')) {
        const who = req.headers['x-auth-username'] ?? '(anonymous)';
        type = 'text/html; charset=utf-8';
        body = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>echo backend</title><style>body{font-family:sans-serif;margin:2em}
pre{background:#f4f4f4;padding:1em;font-size:12px}</style></head><body>
<h1>Backend page</h1><p id="who">Signed in as <b>${escapeHtml(who)}</b></p>
<pre id="echo">${escapeHtml(json)}</pre></body></html>`;
      } else {
        type = 'application/json';
        body = json;
      }
      res.writeHead(200, {
        'content-type': type,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      res.end(body);
    });
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => closeServer(server),
  };
}

/**
 * A plain TCP front on 127.0.0.1:0 that pipes each connection to `target` (a unix
 * socket path). The sidecar's `external_url` must be known before it starts, and a
 * port-0 proxy listener does not tell its port, so the sidecar listens on a unix
 * socket and the browser talks to this front, whose port the OS chose. Bytes pass
 * unchanged (Host, Origin, cookies): to HTTP it is the same as talking to the
 * sidecar directly.
 */
export async function startFront() {
  const sockets = new Set();
  let target;
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => { client.destroy(); upstream.destroy(); };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', () => { sockets.delete(client); upstream.end(); });
    upstream.on('close', () => { sockets.delete(upstream); client.end(); });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    setTarget(t) { target = t; },
    async close() {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

/** Polls `url` until it answers 200 or `ms` pass. */
export async function waitForOk(url, ms = 30_000, child = undefined) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`process exited (${child.exitCode}) before ${url} was ready`);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((resolve) => { setTimeout(resolve, 50); });
  }
  throw new Error(`${url} not ready after ${ms} ms: ${last}`);
}

/** Collects a child's output; `waitFor(re)` resolves with the first match in it. */
function watchOutput(stream) {
  let text = '';
  const waiters = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    text += chunk;
    for (const w of [...waiters]) {
      const m = text.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    get text() { return text; },
    waitFor(re, ms, child) {
      const m = text.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const w = { re, resolve };
        waiters.push(w);
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no ${re} in output after ${ms} ms:\n${text.slice(-4000)}`));
        }, ms);
        const done = (v) => { clearTimeout(timer); return v; };
        w.resolve = (v) => resolve(done(v));
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before ${re} appeared:\n${text.slice(-4000)}`));
        });
      });
    },
  };
}

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const hard = setTimeout(() => child.kill('SIGKILL'), 5000);
  return exited.then(() => clearTimeout(hard));
}

export function sidecarPresent() {
  return fs.existsSync(SIDECAR_BIN);
}

const tomlString = (s) => JSON.stringify(String(s));

// The sidecar's environment: no inherited COGNITO_SIDECAR_* overrides or RUST_LOG (the
// start line must be logged); SIDECAR_RUST_LOG sets RUST_LOG for debugging.
function sidecarEnv() {
  const env = { ...process.env, NO_COLOR: '1' };
  for (const k of Object.keys(env)) {
    if (k.startsWith('COGNITO_SIDECAR_') || k === 'RUST_LOG') delete env[k];
  }
  if (process.env.SIDECAR_RUST_LOG) env.RUST_LOG = process.env.SIDECAR_RUST_LOG;
  return env;
}

/** A configuration with only the pool (no [login]): what `verify-token` needs. */
export function verifyConfig({ idp, pool }) {
  return `# written by browser-tests/suite.mjs (verify-token only)
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:9"

[[pools]]
name = "oidcprov"
id = ${tomlString(pool)}
issuer = ${tomlString(idp.issuer)}
jwks_url = ${tomlString(idp.jwksUrl)}
allow_insecure_jwks = true
client_ids = [${tomlString(idp.clientId)}]
token_use = ["id"]
leeway_seconds = 0
`;
}

/** The sidecar configuration for the suite (TOML text). */
export function sidecarConfig({ socket, echo, idp, front, keysFile, pool }) {
  return `# written by browser-tests/suite.mjs
listen = ${tomlString(`unix:${socket}`)}
admin_listen = "127.0.0.1:0"
upstream = ${tomlString(echo.url)}
log_format = "json"
log_level = "info,access=warn"

[[pools]]
name = "oidcprov"
id = ${tomlString(pool)}
issuer = ${tomlString(idp.issuer)}
jwks_url = ${tomlString(idp.jwksUrl)}
allow_insecure_jwks = true
client_ids = [${tomlString(idp.clientId)}]
token_use = ["id"]
# The suite's ID tokens live a few seconds; no leeway, so they expire when they say.
leeway_seconds = 0

[login]
client_id = ${tomlString(idp.clientId)}
authorize_url = ${tomlString(idp.authorizeUrl)}
token_url = ${tomlString(idp.tokenUrl)}
logout_url = ${tomlString(idp.logoutUrl)}
external_url = ${tomlString(front.url)}
after_sign_out_path = "/public/signed-out"
session_keys_file = ${tomlString(keysFile)}
rate_limit_per_minute = 6000

[[routes]]
path = "/public/"
auth = "public"

[[routes]]
path = "/"
auth = "login"
`;
}

/**
 * Starts the sidecar in front of `echo`, signing in at `idp`, reached by browsers
 * through `front`. Resolves once the admin /readyz answers 200.
 */
export async function startSidecar({ echo, idp, front, pool }) {
  const dir = tempDir('browser-suite-sidecar');
  const keysFile = path.join(dir, 'session-keys');
  fs.writeFileSync(keysFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const socket = path.join(dir, 'proxy.sock');
  const configFile = path.join(dir, 'sidecar.toml');
  const configText = sidecarConfig({ socket, echo, idp, front, keysFile, pool });
  fs.writeFileSync(configFile, configText);
  front.setTarget(socket);

  const child = spawn(SIDECAR_BIN, ['--config', configFile, 'run'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: sidecarEnv(),
  });
  const out = watchOutput(child.stdout);
  const err = watchOutput(child.stderr);
  child.stderr.on('data', (c) => { if (process.env.SIDECAR_LOG) process.stderr.write(c); });
  let admin;
  try {
    // The start line names the admin address the OS chose.
    const m = await err.waitFor(/"admin_addr":"(127\.0\.0\.1:\d+)"/, 30_000, child);
    admin = `http://${m[1]}`;
    await waitForOk(`${admin}/readyz`, 30_000, child);
  } catch (e) {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    admin,
    configFile,
    configText,
    child,
    get logs() { return err.text + out.text; },
    async close() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `cognito-sidecar demo` on ports the OS chooses and reads what it prints:
 * the proxy URL, the browser sign-in URL, the SPA URL and the demo users' passwords.
 */
export async function startDemo() {
  const child = spawn(SIDECAR_BIN, [
    'demo', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: sidecarEnv() });
  const out = watchOutput(child.stdout);
  const err = watchOutput(child.stderr);
  // The demo prints its whole guide at once, ending with how to stop it.
  await out.waitFor(/Ctrl-C/, 60_000, child);
  const printed = out.text;
  return {
    printed: parseDemoOutput(printed),
    text: printed,
    child,
    get logs() { return err.text + out.text; },
    close: () => stopChild(child),
  };
}

/**
 * Reads the demo's printed guide. The contract: a line with the browser URL
 * (`http://127.0.0.1:PORT/`), one with the SPA URL (`.../spa/`), and lines naming
 * `alice` and `bob` with their passwords.
 */
export function parseDemoOutput(text) {
  const proxy = text.match(/proxy on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  const spa = text.match(/http:\/\/127\.0\.0\.1:\d+\/spa\//)?.[0];
  // A bare origin URL ending in "/" (not a curl target with a longer path).
  const browser = text.match(/http:\/\/127\.0\.0\.1:\d+\/(?=[\s"'),.;]|$)/m)?.[0];
  const passwords = {};
  for (const user of ['alice', 'bob']) {
    for (const line of text.split('\n')) {
      if (!new RegExp(`\\b${user}\\b`).test(line) || /curl /.test(line)) continue;
      const m = line.match(/password\W*?[:=]?\s*["'`]?([^\s"'`,;)]+)/i)
        ?? line.match(new RegExp(`\\b${user}\\s*[/:]\\s*["'\`]?([^\\s"'\`,;)]+)`));
      if (m) { passwords[user] = m[1]; break; }
    }
  }
  return { proxy, browser, spa, passwords };
}

/** Headless Chromium from Debian, with a fresh profile (Playwright makes a temp one). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Decodes a JWT's header and payload (no verification: the sidecar does that). */
export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  const part = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: part(h), payload: part(p) };
}

/** Runs `cognito-sidecar --config FILE verify-token -` with `token` on stdin. */
export async function verifyToken(configFile, token, extra = []) {
  const child = spawn(SIDECAR_BIN, ['--config', configFile, 'verify-token', ...extra, '-'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: sidecarEnv(),
  });
  const out = watchOutput(child.stdout);
  const err = watchOutput(child.stderr);
  child.stdin.end(token);
  const [code] = await once(child, 'exit');
  return { code, stdout: out.text, stderr: err.text };
}
