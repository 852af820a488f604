//! Runs a browser scenario of the web client (`web/tests/<name>.mjs`:
//! playwright-core driving Debian's headless Chromium) against a running
//! server, and hands back the JSON line it printed last. Screenshots land in
//! `web/test-results/<name>` (the test artifacts).

use std::path::PathBuf;

use serde_json::Value;

use super::Server;

/// The checkout's root (where `web/` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built web client: `MISSIVE_WEB_DIR` for the server under test.
pub fn web_dir() -> String {
    let dist = root().join("web/dist");
    assert!(
        dist.join("index.html").is_file() && root().join("web/node_modules/playwright-core").is_dir(),
        "the web client is not built: run infra/scripts/build-web.sh (the README's test command does)"
    );
    dist.display().to_string()
}

/// Runs `node web/tests/<name>.mjs` against `base`, with further environment; its last JSON line.
pub async fn run_scenario(server: &Server, base: &str, name: &str, env: &[(&str, String)]) -> Value {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: run infra/scripts/install-deps.sh"
    );
    let artifacts = root().join("web/test-results").join(name);
    let mut command = std::process::Command::new("node");
    command
        .current_dir(root().join("web"))
        .arg(format!("tests/{name}.mjs"))
        .env("MISSIVE_URL", base)
        .env("MISSIVE_SMS_FILE", server.sms_file())
        .env("MISSIVE_ARTIFACTS", &artifacts)
        .env("MISSIVE_BIN", env!("CARGO_BIN_EXE_missive"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "browser scenario {name} failed ({}):\n{stdout}\n{stderr}", output.status);
    let last = stdout.lines().rev().find(|line| line.starts_with('{')).expect("the scenario's result line");
    serde_json::from_str(last).expect("a JSON result")
}
