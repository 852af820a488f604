//! Tidy checks (in the spirit of rust-analyzer's): properties of the
//! source tree that keep it navigable, checked on every test run.
//!
//! - The pure core crates (`missive-core`, `missive-projections`) and the
//!   contract crate (`missive-schemas`: whatever decodes a record) reach no
//!   I/O crate through their normal dependencies.
//! - Every workspace crate and every top-level folder is in
//!   ARCHITECTURE.md's code map.
//! - Every error code the server can send a client is documented in
//!   docs/PROTOCOL.md.
//! - No module imports a module that imports it (crate roots and `mod.rs`
//!   facades only declare and re-export), no source file holds more than
//!   420 lines of non-test code and no test file more than 420 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod code_map;
mod dependencies;
mod error_codes;
mod imports;
mod sizes;

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

/// The crates whose module graphs and file sizes are checked: (source folder, its root file).
const CRATE_SOURCES: &[&str] = &[
    "processors/core/src",
    "projections/src",
    "schemas/src",
    "infra/src",
    "processors/src",
    "gateway/src",
    "replay/src",
    "client/src",
    "registry/src",
    "src",
];

/// The non-test part of a source file: what precedes its first `#[cfg(test)]`.
fn non_test(text: &str) -> &str {
    &text[..text.find("#[cfg(test)]").unwrap_or(text.len())]
}

/// Whether `path` holds only tests (a `tests.rs` module or a `tests/` folder).
fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "tests.rs") || path.components().any(|part| part.as_os_str() == "tests")
}
