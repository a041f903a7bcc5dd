// A Cognito-shaped OpenID provider for the browser suite, built on the `oidc-provider`
// package (an identity provider we did not write).
//
// What makes it "Cognito-shaped" (what the sidecar's login contract expects):
// - ID tokens signed RS256 with a key generated at start; JWT header exactly {alg, kid};
//   JWKS at `jwks_uri`;
// - claims token_use = "id", sub (a UUID), cognito:username, cognito:groups (array),
//   email, email_verified; aud = the client id as a plain string; integer iat/exp;
//   the authorize request's nonce echoed;
// - authorization code flow with PKCE S256 required, one public client
//   (token_endpoint_auth_method "none"), consent granted without a page;
// - refresh tokens issued without offline_access and not rotated (Cognito's default);
// - a Cognito-style logout endpoint at /logout (`client_id` + `logout_uri`), which
//   oidc-provider's own end_session (RP-initiated logout, with a confirmation form and
//   post_logout_redirect_uri) is not. The shim ends the IdP session and redirects to
//   `logout_uri` only if it is one of the client's registered sign-out URLs.
//
// The sign-in (interaction) page is ours, with stable element ids: #username,
// #password, #sign-in, #cancel (answers access_denied), #error.
//
// Use: `const idp = await startIdp({ redirectUris, logoutUris })`, or run
// `node idp.mjs REDIRECT_URI [LOGOUT_URI]` to try it by hand.

import crypto from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';

import Provider from 'oidc-provider';

export const CLIENT_ID = 'browser-suite-client';

// Users: username -> { password, sub, groups, email }.
export const USERS = {
  alice: {
    password: 'alice-pass',
    sub: '8f1c2d3e-0a1b-4c5d-9e6f-a1b2c3d4e5f6',
    groups: ['admins'],
    email: 'alice@example.com',
  },
  bob: {
    password: 'bob-pass',
    sub: '0b0b0b0b-1c1c-4d2d-8e3e-4f4f4f4f4f4f',
    groups: ['users'],
    email: 'bob@example.com',
  },
};

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label{display:block;margin:.5em 0}
#error{color:#b00}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, clientId, error) {
  return page('Sign in', `
<p>Signing in to <code>${escapeHtml(clientId)}</code> (test identity provider).</p>
${error ? `<p id="error">${escapeHtml(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <label>Username <input id="username" name="username" autofocus required></label>
  <label>Password <input id="password" name="password" type="password" required></label>
  <button id="sign-in" type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button id="cancel" type="submit">Cancel</button>
</form>`);
}

async function readForm(req, limit = 16 * 1024) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/**
 * Starts the identity provider on 127.0.0.1 (port chosen by the OS).
 *
 * @param {object} opts
 * @param {string[]} opts.redirectUris  the sidecar's `<external_url><callback_path>`
 * @param {string[]} [opts.logoutUris]  allowed `logout_uri`s (`<external_url><after_sign_out_path>`)
 * @param {number} [opts.idTokenTtl]    ID (and access) token lifetime in seconds
 * @param {string} [opts.clientId]
 * @returns the issuer, the endpoints, counters and close()
 */
export async function startIdp({
  redirectUris,
  logoutUris = [],
  idTokenTtl = Number(process.env.IDP_ID_TOKEN_TTL ?? 300),
  clientId = CLIENT_ID,
} = {}) {
  if (!redirectUris?.length) throw new Error('startIdp: redirectUris required');
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `browser-suite-${crypto.randomBytes(6).toString('hex')}`;
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

  // What the suite can assert about: requests seen per endpoint.
  const counts = { authorize: 0, token: 0, tokenByGrant: {}, logout: 0, login: 0 };

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: logoutUris,
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [jwk] },
    // Cognito puts the profile claims in the ID token itself.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub', 'token_use', 'cognito:username', 'cognito:groups'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    features: {
      devInteractions: { enabled: false },
      // Keep the answers to the authorize request on the redirect (no response_mode jwt etc.)
      rpInitiatedLogout: { enabled: false },
    },
    pkce: { required: () => true },
    responseTypes: ['code'],
    ttl: {
      IdToken: idTokenTtl,
      AccessToken: idTokenTtl,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    // Cognito issues a refresh token on every code exchange and does not rotate it
    // by default; the sidecar keeps the old one when a refresh answer has none.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: false,
    // Consent is granted without a page: the one client is first-party.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(String(ctx.oidc.params.scope ?? 'openid'));
      await grant.save();
      return grant;
    },
    findAccount: async (_ctx, id) => {
      const entry = Object.entries(USERS).find(([, u]) => u.sub === id);
      if (!entry) return undefined;
      const [username, user] = entry;
      return {
        accountId: id,
        async claims(use) {
          return {
            sub: user.sub,
            ...(use === 'id_token' ? { token_use: 'id' } : {}),
            'cognito:username': username,
            'cognito:groups': user.groups,
            email: user.email,
            email_verified: true,
            preferred_username: username,
          };
        },
      };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Identity provider error',
        `<pre id="idp-error">${escapeHtml(JSON.stringify(out, null, 2))}</pre>`);
    },
  });
  const handler = provider.callback();

  async function interaction(req, res, url) {
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
    if (!m) return send(res, 404, 'text/plain', 'not found');
    const [, uid, action] = m;
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (e) {
      return send(res, 400, 'text/html; charset=utf-8',
        page('Sign-in expired', `<p id="error">${escapeHtml(e.message)}</p>`));
    }
    if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch');
    const clientId = details.params.client_id;
    if (!action && req.method === 'GET') {
      if (details.prompt.name !== 'login') {
        // Consent is never asked (loadExistingGrant grants); anything else is a bug here.
        return send(res, 500, 'text/plain', `unexpected prompt ${details.prompt.name}`);
      }
      return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, clientId));
    }
    if (req.method !== 'POST') return send(res, 405, 'text/plain', 'method not allowed');
    if (action === 'abort') {
      return provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
    }
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const user = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
    if (!user || form.get('password') !== user.password) {
      return send(res, 200, 'text/html; charset=utf-8',
        loginPage(uid, clientId, 'Incorrect username or password.'));
    }
    counts.login += 1;
    return provider.interactionFinished(req, res, {
      login: { accountId: user.sub },
    }, { mergeWithLastSubmission: false });
  }

  // Cognito's /logout: client_id + logout_uri (must be registered), ends the IdP
  // session, 302 to logout_uri.
  async function logout(req, res, url) {
    counts.logout += 1;
    const q = url.searchParams;
    if (q.get('client_id') !== clientId) {
      return send(res, 400, 'text/plain', 'logout: unknown client_id');
    }
    const target = q.get('logout_uri');
    if (!target || !logoutUris.includes(target)) {
      return send(res, 400, 'text/plain', 'logout: logout_uri is not registered');
    }
    const ctx = provider.createContext(req, res);
    const session = await provider.Session.get(ctx);
    if (session.accountId) await session.destroy();
    const expired = ['_session', '_session.sig', '_session.legacy', '_session.legacy.sig']
      .map((n) => `${n}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
    res.writeHead(302, { location: target, 'set-cookie': expired, 'cache-control': 'no-store' });
    res.end();
    return undefined;
  }

  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    const fail = (e) => {
      console.error('idp: request failed', e);
      if (!res.headersSent) send(res, 500, 'text/plain', 'idp error');
      else res.destroy();
    };
    if (url.pathname.startsWith('/interaction/')) {
      interaction(req, res, url).catch(fail);
      return;
    }
    if (url.pathname === '/logout') {
      logout(req, res, url).catch(fail);
      return;
    }
    if (url.pathname === '/auth') counts.authorize += 1;
    if (url.pathname === '/token') counts.token += 1;
    handler(req, res);
  });

  // Every token answer, so tests can tell when a session's ID token expires and
  // whether a refresh happened.
  const issued = [];
  provider.on('grant.success', (ctx) => {
    const g = ctx.oidc.params?.grant_type ?? 'unknown';
    counts.tokenByGrant[g] = (counts.tokenByGrant[g] ?? 0) + 1;
    const body = ctx.body ?? {};
    issued.push({
      grant: g,
      idToken: body.id_token,
      hasRefreshToken: typeof body.refresh_token === 'string',
      at: Date.now(),
    });
  });
  provider.on('server_error', (_ctx, err) => console.error('idp: server_error', err));

  // The endpoints as the discovery document names them.
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();

  return {
    issuer,
    clientId,
    kid,
    provider,
    counts,
    issued,
    authorizeUrl: discovery.authorization_endpoint,
    tokenUrl: discovery.token_endpoint,
    jwksUrl: discovery.jwks_uri,
    logoutUrl: `${issuer}/logout`,
    discovery,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

// `node idp.mjs REDIRECT_URI [LOGOUT_URI]`: run it by hand.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [redirect, logoutUri] = process.argv.slice(2);
  if (!redirect) {
    console.error('usage: node idp.mjs REDIRECT_URI [LOGOUT_URI]');
    process.exit(64);
  }
  const idp = await startIdp({ redirectUris: [redirect], logoutUris: logoutUri ? [logoutUri] : [] });
  console.log(JSON.stringify({
    issuer: idp.issuer,
    client_id: idp.clientId,
    authorize_url: idp.authorizeUrl,
    token_url: idp.tokenUrl,
    jwks_url: idp.jwksUrl,
    logout_url: idp.logoutUrl,
    users: Object.fromEntries(Object.entries(USERS).map(([u, v]) => [u, v.password])),
  }, null, 2));
}
