//! Records the git commit for the `cognito_sidecar_build_info` metric, when built from
//! a git checkout (container builds without `.git` report "unknown").
fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=SIDECAR_BUILD_COMMIT");
    if std::env::var_os("SIDECAR_BUILD_COMMIT").is_some() {
        return;
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(c) = commit {
        println!("cargo:rustc-env=SIDECAR_BUILD_COMMIT={c}");
    }
}
