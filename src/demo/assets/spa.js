// The demo single-page app: authorization code flow with PKCE (RFC 7636, S256) done
// in the browser with WebCrypto and fetch, tokens in sessionStorage (this tab only),
// and bearer calls to /api/whoami through the sidecar. No external scripts.
"use strict";

(() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const idp = meta("idp");
  const clientId = meta("client-id");
  const redirectUri = location.origin + "/spa/";
  const TOKENS = "demo-spa-tokens";
  const PENDING = "demo-spa-pending";
  const $ = (id) => document.getElementById(id);

  const b64url = (bytes) => {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const randomValue = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challengeOf = async (verifier) =>
    b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  // The payload of a JWT, unverified: display and nonce check only (the sidecar
  // verifies the signature on every call).
  const claimsOf = (jwt) => {
    const b64 = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  };
  const read = (key) => {
    try {
      return JSON.parse(sessionStorage.getItem(key));
    } catch {
      return null;
    }
  };

  function render() {
    const t = read(TOKENS);
    const signedIn = Boolean(t && t.id_token);
    $("sign-in").disabled = signedIn;
    $("call-api").disabled = !signedIn;
    $("refresh").disabled = !(signedIn && t.refresh_token);
    $("sign-out").disabled = !signedIn;
    if (signedIn) {
      const c = claimsOf(t.id_token);
      $("who").textContent = c["cognito:username"] || c.sub;
      $("groups").textContent = `groups: ${(c["cognito:groups"] || []).join(", ") || "none"}`;
      $("expires").textContent = `(ID token expires ${new Date(c.exp * 1000).toLocaleTimeString()})`;
    } else {
      $("who").textContent = "nobody";
      $("groups").textContent = "";
      $("expires").textContent = "";
    }
    document.body.dataset.state = signedIn ? "signed-in" : "signed-out";
  }

  async function signIn() {
    const pending = { state: randomValue(), nonce: randomValue(), verifier: randomValue() };
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: "openid email profile",
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await challengeOf(pending.verifier),
      code_challenge_method: "S256",
    });
    location.assign(`${idp}/oauth2/authorize?${query}`);
  }

  async function tokenRequest(params) {
    // A form POST without custom headers: a CORS "simple" request; the issuer allows
    // this origin.
    const resp = await fetch(`${idp}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: clientId, ...params }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(`token endpoint refused: ${body.error || resp.status}`);
    return body;
  }

  function store(t, previous) {
    sessionStorage.setItem(TOKENS, JSON.stringify({
      id_token: t.id_token,
      access_token: t.access_token,
      refresh_token: t.refresh_token || (previous && previous.refresh_token),
    }));
  }

  async function completeSignIn(params) {
    const pending = read(PENDING);
    sessionStorage.removeItem(PENDING);
    history.replaceState(null, "", redirectUri);
    if (params.get("error")) throw new Error(`sign-in ended: ${params.get("error")}`);
    if (!pending || params.get("state") !== pending.state) {
      throw new Error("state mismatch: sign in again");
    }
    const t = await tokenRequest({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri,
      code_verifier: pending.verifier,
    });
    if (claimsOf(t.id_token).nonce !== pending.nonce) throw new Error("nonce mismatch");
    store(t, null);
    $("status").textContent = "Signed in.";
  }

  async function refresh() {
    const t = read(TOKENS);
    if (!t || !t.refresh_token) throw new Error("no refresh token: sign in again");
    store(await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token }), t);
    $("status").textContent = `Tokens refreshed at ${new Date().toLocaleTimeString()}.`;
  }

  async function callApi() {
    let t = read(TOKENS);
    if (!t) throw new Error("sign in first");
    // Refresh a token that expires within five seconds.
    if (claimsOf(t.id_token).exp * 1000 - Date.now() < 5000) {
      await refresh();
      t = read(TOKENS);
    }
    const resp = await fetch("/api/whoami", { headers: { Authorization: `Bearer ${t.id_token}` } });
    const text = await resp.text();
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON: shown as is
    }
    $("result").dataset.status = String(resp.status);
    $("result").textContent = `HTTP ${resp.status}\n${shown}`;
  }

  function signOut() {
    sessionStorage.removeItem(TOKENS);
    const query = new URLSearchParams({ client_id: clientId, logout_uri: redirectUri });
    location.assign(`${idp}/logout?${query}`);
  }

  const action = (f) => async () => {
    $("error").textContent = "";
    try {
      await f();
    } catch (e) {
      $("error").textContent = String((e && e.message) || e);
    }
    render();
  };

  $("sign-in").addEventListener("click", action(signIn));
  $("call-api").addEventListener("click", action(callApi));
  $("refresh").addEventListener("click", action(refresh));
  $("sign-out").addEventListener("click", action(signOut));

  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    action(() => completeSignIn(params))();
  } else {
    render();
  }
})();
