//! End to end against cognito-local (npm `cognito-local`), a Cognito emulator by other
//! authors than moto's: tokens it mints for a pool whose id (`local_…`) is no AWS
//! `region_id` go through the sidecar, whose pool sets `issuer` and `jwks_url`.
//!
//! Needs `node` and `(cd tests/cognito-local && npm ci)`, which installs the version
//! pinned there. Without it the test says why it skips and passes, unless
//! `COGNITO_E2E_REQUIRE_COGNITO_LOCAL=1`, in which case it fails.
//!
//! - cognito-local listens on port 0 (`PORT=0`); the test reads the port it got from the
//!   line it logs, so there is no port race.
//! - Its issuer is `TokenConfig.IssuerDomain` + `/` + pool id, and that domain defaults
//!   to `http://$HOST:$PORT`. The test sets it in `.cognito/config.json` to
//!   `http://localhost:9229` (the documented default, and what the compose alternative
//!   uses), so the issuer names another place than the one the keys are fetched from, as
//!   behind compose. The same file turns off the e-mail-as-username default.
//! - It signs every pool with one RSA key shipped inside the npm package, so anyone can
//!   mint tokens it "issued": only the issuer (and the client) tells its pools apart, and
//!   its JWKS must never be trusted outside a developer's machine.
//!
//! One `#[tokio::test]` shares the setup (emulator, pools, users, sidecar); every
//! behaviour is a separately named check, all run, and failures are reported together.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, JwksAnswer, JwksServer, Upstream, cognito_local, start_cognito_local};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The issuer domain cognito-local is configured with (see the module docs).
const ISSUER_DOMAIN: &str = "http://localhost:9229";
/// Meets the default password policy (upper, lower, digit, symbol, 8+).
const PASSWORD: &str = "E2e-Passw0rd!";

// ---------------------------------------------------------------------------
// cognito-local: process and API
// ---------------------------------------------------------------------------

/// The emulator's API (AWS JSON 1.1: `POST /` with `X-Amz-Target`).
struct Api {
    client: reqwest::Client,
    endpoint: String,
}

impl Api {
    async fn call(&self, action: &str, body: Value) -> Result<Value, String> {
        let resp = self
            .client
            .post(format!("{}/", self.endpoint))
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{action}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{action}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{action} answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{action}: {e}: {text:?}"))
    }

    async fn create_pool(&self, name: &str) -> Result<String, String> {
        let r = self
            .call("CreateUserPool", json!({ "PoolName": name }))
            .await?;
        str_at(&r, "/UserPool/Id")
    }

    async fn create_client(&self, pool: &str, name: &str) -> Result<String, String> {
        let r = self
            .call(
                "CreateUserPoolClient",
                json!({
                    "UserPoolId": pool,
                    "ClientName": name,
                    "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH"],
                }),
            )
            .await?;
        str_at(&r, "/UserPoolClient/ClientId")
    }

    /// Creates a confirmed user with a verified e-mail and [`PASSWORD`]; returns `sub`.
    async fn create_user(&self, pool: &str, username: &str) -> Result<String, String> {
        let r = self
            .call(
                "AdminCreateUser",
                json!({
                    "UserPoolId": pool,
                    "Username": username,
                    "MessageAction": "SUPPRESS",
                    "UserAttributes": [
                        { "Name": "email", "Value": format!("{username}@example.com") },
                        { "Name": "email_verified", "Value": "true" },
                    ],
                }),
            )
            .await?;
        self.call(
            "AdminSetUserPassword",
            json!({
                "UserPoolId": pool,
                "Username": username,
                "Password": PASSWORD,
                "Permanent": true,
            }),
        )
        .await?;
        r.pointer("/User/Attributes")
            .and_then(Value::as_array)
            .and_then(|attrs| {
                attrs
                    .iter()
                    .find(|a| a["Name"] == "sub")
                    .and_then(|a| a["Value"].as_str())
            })
            .map(str::to_owned)
            .ok_or_else(|| format!("AdminCreateUser returned no sub: {r}"))
    }

    /// `USER_PASSWORD_AUTH`: a fresh ID and access token.
    async fn sign_in(&self, client: &str, username: &str) -> Result<Tokens, String> {
        let r = self
            .call(
                "InitiateAuth",
                json!({
                    "ClientId": client,
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "AuthParameters": { "USERNAME": username, "PASSWORD": PASSWORD },
                }),
            )
            .await?;
        Ok(Tokens {
            id: str_at(&r, "/AuthenticationResult/IdToken")?,
            access: str_at(&r, "/AuthenticationResult/AccessToken")?,
        })
    }
}

fn str_at(v: &Value, pointer: &str) -> Result<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {pointer} in {v}"))
}

// ---------------------------------------------------------------------------
// What the emulator issued
// ---------------------------------------------------------------------------

struct Tokens {
    id: String,
    access: String,
}

impl Tokens {
    fn both(&self) -> [(&'static str, &str); 2] {
        [("ID", &self.id), ("access", &self.access)]
    }
}

struct Issued {
    pool: String,
    client: String,
    other_client: String,
    foreign_client: String,
    sub: String,
    /// alice before she joined `admins`.
    plain: Tokens,
    /// alice signed in again after joining `admins`.
    admin: Tokens,
    /// alice through an app client the sidecar does not accept.
    other: Tokens,
    /// alice of another pool, through a client the sidecar accepts.
    foreign: Tokens,
}

async fn provision(api: &Api) -> Result<Issued, String> {
    let pool = api.create_pool("sidecar-e2e").await?;
    let client = api.create_client(&pool, "api").await?;
    let other_client = api.create_client(&pool, "other").await?;
    let sub = api.create_user(&pool, "alice").await?;
    let plain = api.sign_in(&client, "alice").await?;
    let other = api.sign_in(&other_client, "alice").await?;

    let foreign_pool = api.create_pool("sidecar-e2e-foreign").await?;
    let foreign_client = api.create_client(&foreign_pool, "api").await?;
    api.create_user(&foreign_pool, "alice").await?;
    let foreign = api.sign_in(&foreign_client, "alice").await?;

    api.call(
        "CreateGroup",
        json!({ "UserPoolId": pool, "GroupName": "admins" }),
    )
    .await?;
    api.call(
        "AdminAddUserToGroup",
        json!({ "UserPoolId": pool, "Username": "alice", "GroupName": "admins" }),
    )
    .await?;
    let admin = api.sign_in(&client, "alice").await?;
    Ok(Issued {
        pool,
        client,
        other_client,
        foreign_client,
        sub,
        plain,
        admin,
        other,
        foreign,
    })
}

/// The sidecar's configuration: one pool, named by cognito-local's own id.
fn sidecar_config(upstream: &Upstream, endpoint: &str, issued: &Issued) -> String {
    let pool = &issued.pool;
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://{upstream}"
log_level = "warn"

# The foreign pool's client id is listed so that its tokens (signed with the same key)
# can only be told apart by their issuer.
[[pools]]
id = "{pool}"
client_ids = ["{client}", "{foreign_client}"]
token_use = ["id", "access"]
issuer = "{ISSUER_DOMAIN}/{pool}"
jwks_url = "{endpoint}/{pool}/.well-known/jwks.json"

[[routes]]
path = "/admin/"
groups = ["admins"]
"#,
        upstream = upstream.addr,
        client = issued.client,
        foreign_client = issued.foreign_client,
    )
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

struct Ctx {
    env: Env,
    issued: Issued,
}

impl Ctx {
    /// `GET path` with `token`; the status, the challenge, and what the backend saw
    /// (`None` if the request did not reach it).
    async fn get(
        &self,
        path: &str,
        token: &str,
    ) -> Result<(u16, String, Option<support::Seen>), String> {
        let before = self.env.upstream.count();
        let r = self
            .env
            .client
            .get(self.env.url(path))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let seen = (self.env.upstream.count() > before).then(|| self.env.upstream.last());
        Ok((status, challenge, seen))
    }

    /// The request the backend saw for a 200.
    async fn forwarded(&self, path: &str, token: &str) -> Result<support::Seen, String> {
        match self.get(path, token).await? {
            (200, _, Some(seen)) => Ok(seen),
            (status, challenge, seen) => Err(format!(
                "GET {path}: expected the backend's 200, got {status} \
                 (WWW-Authenticate {challenge:?}, reached the backend: {})",
                seen.is_some()
            )),
        }
    }

    /// A refusal with `status` and `error` in its challenge that never reached the backend.
    async fn refused(
        &self,
        what: &str,
        path: &str,
        token: &str,
        status: u16,
        error: &str,
    ) -> Result<(), String> {
        let (got, challenge, seen) = self.get(path, token).await?;
        if got != status || seen.is_some() || !challenge.contains(&format!("error=\"{error}\"")) {
            return Err(format!(
                "{what}: expected {status} error=\"{error}\" without reaching the backend; \
                 got {got}, WWW-Authenticate {challenge:?}, reached the backend: {}",
                seen.is_some()
            ));
        }
        Ok(())
    }
}

fn expect_header(seen: &support::Seen, name: &str, want: &str) -> Result<(), String> {
    let got: Vec<_> = seen
        .headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if got == [want] {
        Ok(())
    } else {
        Err(format!("{name}: got {got:?}, want [{want:?}]"))
    }
}

async fn a_cognito_local_id_token_reaches_the_backend_with_its_identity(
    ctx: &Ctx,
) -> Result<(), String> {
    let seen = ctx.forwarded("/hello", &ctx.issued.plain.id).await?;
    expect_header(&seen, "x-auth-sub", &ctx.issued.sub)?;
    expect_header(&seen, "x-auth-username", "alice")?;
    expect_header(&seen, "x-auth-token-use", "id")?;
    expect_header(&seen, "x-auth-client-id", &ctx.issued.client)?;
    // cognito-local writes email_verified as a JSON boolean.
    expect_header(&seen, "x-auth-email", "alice@example.com")?;
    if seen.count("authorization") != 0 {
        return Err("the Authorization header was forwarded to the backend".to_owned());
    }
    Ok(())
}

async fn a_cognito_local_access_token_reaches_the_backend_as_an_access_token(
    ctx: &Ctx,
) -> Result<(), String> {
    let seen = ctx.forwarded("/hello", &ctx.issued.plain.access).await?;
    expect_header(&seen, "x-auth-sub", &ctx.issued.sub)?;
    expect_header(&seen, "x-auth-username", "alice")?;
    expect_header(&seen, "x-auth-token-use", "access")?;
    expect_header(&seen, "x-auth-client-id", &ctx.issued.client)?;
    expect_header(&seen, "x-auth-scope", "aws.cognito.signin.user.admin")?;
    if seen.count("authorization") != 0 {
        return Err("the Authorization header was forwarded to the backend".to_owned());
    }
    Ok(())
}

async fn a_token_with_one_signature_character_changed_is_invalid(ctx: &Ctx) -> Result<(), String> {
    for (kind, token) in ctx.issued.plain.both() {
        // One character in the middle of the signature (the last one's low bits are
        // padding and may decode to the same bytes).
        let dot = token.rfind('.').ok_or("token has no signature")?;
        let mut bytes = token.as_bytes().to_vec();
        let i = dot + 1 + (bytes.len() - dot - 1) / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        ctx.refused(
            &format!("{kind} token with a changed signature"),
            "/hello",
            &tampered,
            401,
            "invalid_token",
        )
        .await?;
    }
    Ok(())
}

async fn tokens_minted_for_an_unconfigured_app_client_are_invalid(ctx: &Ctx) -> Result<(), String> {
    for (kind, token) in ctx.issued.other.both() {
        ctx.refused(
            &format!("{kind} token of app client {}", ctx.issued.other_client),
            "/hello",
            token,
            401,
            "invalid_token",
        )
        .await?;
    }
    Ok(())
}

async fn a_validly_signed_token_of_another_cognito_local_pool_is_invalid(
    ctx: &Ctx,
) -> Result<(), String> {
    // Same signing key, accepted client id: only the issuer differs.
    for (kind, token) in ctx.issued.foreign.both() {
        ctx.refused(
            &format!("{kind} token of another pool"),
            "/hello",
            token,
            401,
            "invalid_token",
        )
        .await?;
    }
    Ok(())
}

async fn groups_joined_reach_the_backend_and_the_groups_route_after_a_fresh_sign_in(
    ctx: &Ctx,
) -> Result<(), String> {
    for (kind, token) in ctx.issued.plain.both() {
        ctx.refused(
            &format!("{kind} token signed in before joining admins"),
            "/admin/reports",
            token,
            403,
            "insufficient_scope",
        )
        .await?;
    }
    for (kind, token) in ctx.issued.admin.both() {
        let seen = ctx
            .forwarded("/admin/reports", token)
            .await
            .map_err(|e| format!("{kind} token after joining admins: {e}"))?;
        expect_header(&seen, "x-auth-groups", "admins")?;
        expect_header(&seen, "x-auth-sub", &ctx.issued.sub)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

macro_rules! checks {
    ($ctx:expr, $($check:ident),+ $(,)?) => {{
        let mut results = Vec::new();
        $(
            let t = Instant::now();
            let result = $check($ctx).await;
            let name = stringify!($check).replace('_', " ");
            eprintln!(
                "{} {name} ({:?})",
                if result.is_ok() { "ok  " } else { "FAIL" },
                t.elapsed()
            );
            results.push((name, result));
        )+
        results
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_local_minted_tokens_of_a_non_aws_pool_id_through_the_sidecar() {
    let Some(bin) = cognito_local() else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client");
    let config = json!({
        "TokenConfig": { "IssuerDomain": ISSUER_DOMAIN },
        // Plain usernames (alice), not e-mail addresses.
        "UserPoolDefaults": { "UsernameAttributes": [] },
    });
    let (emulator, endpoint) = start_cognito_local(&bin, dir.path(), &config.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "cognito-local up on {endpoint} after {:?}",
        started.elapsed()
    );
    let api = Api { client, endpoint };
    let issued = match provision(&api).await {
        Ok(issued) => issued,
        Err(e) => panic!(
            "provisioning cognito-local failed: {e}\n{}",
            emulator.stdout()
        ),
    };
    eprintln!(
        "pool {} provisioned after {:?}",
        issued.pool,
        started.elapsed()
    );

    let upstream = Upstream::start().await;
    let text = sidecar_config(&upstream, &api.endpoint, &issued);
    // Unused: the pool's keys come from cognito-local.
    let unused = JwksServer::start(JwksAnswer::Status(404)).await;
    let ctx = Ctx {
        env: Env::start_with_config(unused, upstream, &text, true).await,
        issued,
    };
    let results = checks!(
        &ctx,
        a_cognito_local_id_token_reaches_the_backend_with_its_identity,
        a_cognito_local_access_token_reaches_the_backend_as_an_access_token,
        a_token_with_one_signature_character_changed_is_invalid,
        tokens_minted_for_an_unconfigured_app_client_are_invalid,
        a_validly_signed_token_of_another_cognito_local_pool_is_invalid,
        groups_joined_reach_the_backend_and_the_groups_route_after_a_fresh_sign_in,
    );
    let mut failures = String::new();
    for (name, result) in &results {
        if let Err(e) = result {
            let _ = writeln!(failures, "\n* {name}:\n    {e}");
        }
    }
    ctx.env.stop().await;
    eprintln!(
        "cognito-local end-to-end finished in {:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cognito-local end-to-end checks failed:{failures}",
        results.iter().filter(|(_, r)| r.is_err()).count(),
        results.len(),
    );
    drop(emulator);
}
