//! Every crate and top-level folder is in ARCHITECTURE.md's code map.

use super::*;

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
