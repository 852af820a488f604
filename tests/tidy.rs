//! Tidy checks (in the spirit of rust-analyzer's): properties of the
//! source tree that keep it navigable, checked on every test run.
//!
//! - The pure core crates (`missive-core`, `missive-projections`) reach no
//!   I/O crate through their normal dependencies.
//! - Every workspace crate and every top-level folder is in
//!   ARCHITECTURE.md's code map.
//! - Every error code the server can send a client is documented in
//!   docs/PROTOCOL.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn cargo(arguments: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo).args(arguments).current_dir(root()).output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {} failed: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// Crates that do I/O (network, disk, an async runtime): the pure core
/// must not link any of them.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "rocksdb",
    "librocksdb-sys",
    "rdkafka",
    "rdkafka-sys",
    "warp",
    "hyper",
    "reqwest",
    "object_store",
    "tungstenite",
    "tokio-tungstenite",
    "tempfile",
];

#[test]
fn the_pure_core_crates_reach_no_io_crate() {
    for pure in ["missive-core", "missive-projections"] {
        // Normal dependencies only (tests and build scripts may do I/O), for this machine's platform.
        let tree = cargo(&[
            "tree",
            "--offline",
            "--locked",
            "-p",
            pure,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ]);
        let reached: BTreeSet<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
        assert!(reached.contains(pure), "cargo tree printed nothing for {pure}:\n{tree}");
        let offending: Vec<&&str> = reached.iter().filter(|name| IO_CRATES.contains(name)).collect();
        assert!(
            offending.is_empty(),
            "{pure} is the pure core and must not depend on I/O crates; move the code that needs them to an outer crate \
             (`cargo tree -p {pure} -i CRATE` shows the path): {offending:?}"
        );
    }
}

/// The rows of ARCHITECTURE.md's "Code map" table.
fn code_map() -> String {
    let architecture = read(&root().join("ARCHITECTURE.md"));
    let start = architecture.find("## Code map").expect("ARCHITECTURE.md has a \"## Code map\" section");
    let rest = &architecture[start + 3..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

#[test]
fn every_crate_and_top_level_folder_is_in_the_code_map() {
    let map = code_map();
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps", "--offline", "--locked"]))
            .expect("cargo metadata prints JSON");
    let root = root();
    let mut missing = Vec::new();
    for package in metadata["packages"].as_array().expect("workspace packages") {
        let name = package["name"].as_str().expect("name");
        if !map.contains(&format!("`{name}`")) {
            missing.push(format!("crate {name}"));
        }
    }
    for entry in std::fs::read_dir(&root).expect("the checkout") {
        let entry = entry.expect("an entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden folders (.git, .ci) and what builds and runs leave behind are not code.
        if !entry.path().is_dir() || name.starts_with('.') || ["target", "data"].contains(&name.as_str()) {
            continue;
        }
        if !map.contains(&format!("`{name}/")) {
            missing.push(format!("folder {name}/"));
        }
    }
    assert!(missing.is_empty(), "add a row for each of these to ARCHITECTURE.md's code map: {missing:?}");
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display())) {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The string literal that starts `text` (after blanks), if it is a snake_case code.
fn code_literal(text: &str) -> Option<&str> {
    let text = text.trim_start().strip_prefix('"')?;
    let code = &text[..text.find('"')?];
    let snake = !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_');
    snake.then_some(code)
}

/// The second argument of every call `name(first, "code", ...)` in `text`.
fn second_arguments<'a>(text: &'a str, name: &str, codes: &mut BTreeSet<&'a str>) {
    for (at, _) in text.match_indices(name) {
        let arguments = &text[at + name.len()..];
        // Skip the first argument: up to the first comma outside parentheses.
        let mut depth = 0;
        let comma = arguments.char_indices().find(|(_, c)| {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => return true,
                _ => {}
            }
            false
        });
        if let Some(code) = comma.and_then(|(comma, _)| code_literal(&arguments[comma + 1..])) {
            codes.insert(code);
        }
    }
}

/// Error codes written in the gateway and the deciders' rejections.
fn emitted_codes(text: &str, codes: &mut BTreeSet<String>) {
    let mut found = BTreeSet::new();
    second_arguments(text, "ApiError::new(", &mut found);
    second_arguments(text, "error_frame(", &mut found);
    for call in ["ApiError::bad_request(", "ApiError::not_found(", "code: "] {
        for (at, _) in text.match_indices(call) {
            found.extend(code_literal(&text[at + call.len()..]));
        }
    }
    // `fn code(&self) -> &'static str { match self { ... => "code", ... } }`
    for (at, _) in text.match_indices("fn code(&self) -> &'static str") {
        let body = &text[at..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        for (arrow, _) in body.match_indices("=> ") {
            found.extend(code_literal(&body[arrow + 3..]));
        }
    }
    codes.extend(found.into_iter().map(str::to_string));
}

/// Whether `protocol` names `code` in backticks, alone or after its HTTP
/// status (`` `not_found` `` or `` `404 not_found` ``).
fn documented(protocol: &str, code: &str) -> bool {
    protocol.match_indices(&format!("{code}`")).any(|(at, _)| {
        let before = &protocol.as_bytes()[..at];
        before.ends_with(b"`")
            || (before.len() >= 5
                && before[before.len() - 5] == b'`'
                && before[before.len() - 4..before.len() - 1].iter().all(u8::is_ascii_digit)
                && before[before.len() - 1] == b' ')
    })
}

#[test]
fn every_error_code_the_server_sends_is_documented() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["gateway/src", "processors/core/src", "processors/src", "src"] {
        sources(&root.join(dir), &mut files);
    }
    let mut codes = BTreeSet::new();
    for file in &files {
        emitted_codes(&read(file), &mut codes);
    }
    // The extraction must keep finding the codes it was written against.
    for known in ["bad_frame", "not_member", "rate_limited", "wrong_gateway", "too_many_devices", "bad_kind"] {
        assert!(codes.contains(known), "the tidy check no longer finds the error code {known}: fix its patterns");
    }
    let protocol = read(&root.join("docs/PROTOCOL.md"));
    let undocumented: Vec<&String> = codes.iter().filter(|code| !documented(&protocol, code)).collect();
    assert!(
        undocumented.is_empty(),
        "these error codes reach clients but docs/PROTOCOL.md does not name them (as `code`): {undocumented:?}"
    );
}
