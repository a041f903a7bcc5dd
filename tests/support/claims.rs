//! The one canonical identity provider and claim builder: the test pool's constants, RSA
//! keys generated once per test binary, standard ID and access claims, and minting.

use std::time::{SystemTime, UNIX_EPOCH};

use cognito_sidecar::issuer::DevIssuer;
use serde_json::{Value, json};

pub const POOL: &str = "us-east-1_TestPool1";
pub const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool1";
pub const CLIENT: &str = "C1";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Keys generated once per test binary (RSA key generation is slow in debug builds).
pub fn keys() -> &'static DevIssuer {
    static K: std::sync::OnceLock<DevIssuer> = std::sync::OnceLock::new();
    K.get_or_init(|| DevIssuer::generate(&["k1", "k2", "k3"]).expect("keygen"))
}

pub fn access_claims() -> Value {
    json!({"iss": ISS, "sub": "11111111-2222-3333-4444-555555555555", "token_use": "access",
           "client_id": CLIENT, "scope": "openid api/read", "username": "alice",
           "exp": now() + 600, "iat": now() - 60, "auth_time": now() - 60, "jti": "j1"})
}

pub fn id_claims() -> Value {
    json!({"iss": ISS, "sub": "11111111-2222-3333-4444-555555555555", "token_use": "id", "aud": CLIENT,
           "cognito:username": "alice", "email": "alice@example.com", "email_verified": true,
           "cognito:groups": ["users"], "exp": now() + 600, "iat": now() - 60, "auth_time": now() - 60})
}

pub fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

pub fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

pub fn mint(claims: &Value) -> String {
    keys().mint("k1", claims)
}

/// A JWKS document with the given kids of the shared test keys.
pub fn jwks_of(kids: &[&str]) -> String {
    let all = keys().jwks();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    json!({ "keys": keys }).to_string()
}
