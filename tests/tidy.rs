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
//!   facades only declare and re-export), and no source file holds more
//!   than 420 lines of non-test code.

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
    for pure in ["missive-core", "missive-projections", "missive-schemas"] {
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

/// Longest non-test part of a source file, in lines. Above it a file is
/// split by what its parts are about (see how `gateway/src` is laid out).
const MOST_LINES: usize = 420;

#[test]
fn no_source_file_is_over_the_size_limit() {
    let root = root();
    let mut files = Vec::new();
    for dir in CRATE_SOURCES {
        sources(&root.join(dir), &mut files);
    }
    let mut long: Vec<String> = files
        .iter()
        .filter(|file| !is_test_file(file.strip_prefix(&root).unwrap_or(file)))
        .filter_map(|file| {
            let lines = non_test(&read(file)).lines().count();
            (lines > MOST_LINES)
                .then(|| format!("{} ({lines} lines)", file.strip_prefix(&root).unwrap_or(file).display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "split these files by what their parts are about (at most {MOST_LINES} lines of non-test code each): {long:?}"
    );
}

/// A crate's modules by path (`""` for the root, `a::b` for `a/b.rs` or `a/b/mod.rs`), with their files.
fn modules(src: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(src).ok()?.with_extension("");
            let mut parts: Vec<String> =
                relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
            let last = parts.last()?.clone();
            // Binaries' and examples' own roots are not modules of the library.
            if parts.len() == 1 && (last == "main" || last == "lib") {
                parts.clear();
            } else if last == "mod" {
                parts.pop();
            }
            Some((parts.join("::"), file))
        })
        .collect()
}

/// Paths a file's non-test code names through `crate::` or `super::`, or
/// through one of its own child modules (`use child::Item` in a `mod.rs`),
/// as absolute module paths (`a::b::Item`). `use` lists in braces are expanded.
fn referenced_paths(module: &str, text: &str) -> Vec<String> {
    let text = non_test(text);
    let own: Vec<&str> = if module.is_empty() { Vec::new() } else { module.split("::").collect() };
    let parent: Vec<&str> = own[..own.len().saturating_sub(1)].to_vec();
    let children: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            line.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect();
    let absolute = |path: &str| -> Option<String> {
        let mut parts = path.split("::").filter(|part| !part.is_empty());
        let first = parts.next()?;
        let mut base: Vec<&str> = match first {
            "crate" => Vec::new(),
            "super" => parent.clone(),
            "self" => own.clone(),
            child if children.contains(child) => {
                let mut base = own.clone();
                base.push(child);
                base
            }
            _ => return None,
        };
        base.extend(parts);
        Some(base.join("::"))
    };
    let mut found = Vec::new();
    // `use` statements, with braces expanded.
    for statement in text.split(';') {
        let Some(at) = statement.find("use ") else { continue };
        let before = &statement[..at];
        if !before.trim().is_empty() && !before.trim_end().ends_with("pub") && !before.trim_end().ends_with(')') {
            continue;
        }
        for path in expand_use(&use_tree(&statement[at + 4..])) {
            found.extend(absolute(path.split('@').next().unwrap_or_default()));
        }
    }
    // Paths in code: `crate::a::b(...)`, `super::a::B`.
    for start in ["crate::", "super::"] {
        for (at, _) in text.match_indices(start) {
            if text[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String =
                text[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            // `crate::a::{b, c}` is a `use` list, expanded above.
            if path.ends_with("::") {
                continue;
            }
            found.extend(absolute(&path));
        }
    }
    found
}

/// A `use` tree without whitespace, each `X as Y` written `X@Y`.
fn use_tree(text: &str) -> String {
    let spaced = text.split_whitespace().collect::<Vec<_>>().join(" ");
    spaced.replace(" as ", "@").chars().filter(|c| !c.is_whitespace()).collect()
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e` (a normalised [`use_tree`]).
fn expand_use(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (index, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand_use(item).into_iter().map(move |path| format!("{prefix}{path}")))
        .collect()
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let root = root();
    let mut cycles = Vec::new();
    for dir in CRATE_SOURCES {
        let src = root.join(dir);
        let modules = modules(&src);
        let known: BTreeSet<&str> = modules.iter().map(|(module, _)| module.as_str()).collect();
        let texts: std::collections::BTreeMap<&str, String> =
            modules.iter().map(|(module, file)| (module.as_str(), read(file))).collect();
        let resolve = |path: &str| resolve(path, &known, &texts, 0);
        let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for (module, file) in &modules {
            if is_test_file(file.strip_prefix(&src).unwrap_or(file)) {
                continue;
            }
            let targets = referenced_paths(module, &read(file))
                .iter()
                .filter_map(|path| resolve(path))
                .filter(|target| target != module)
                .collect();
            graph.insert(module.clone(), targets);
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{dir}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other (move what both need below them, or have the facade only re-export): {cycles:#?}"
    );
}

/// The module a path's item lives in: the deepest module the path names,
/// followed through `pub use` re-exports (a facade that re-exports an
/// item is not where it lives).
fn resolve(
    path: &str,
    known: &BTreeSet<&str>,
    texts: &std::collections::BTreeMap<&str, String>,
    depth: usize,
) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|part| !part.is_empty()).collect();
    let length = (0..=parts.len()).rev().find(|length| known.contains(parts[..*length].join("::").as_str()))?;
    let module = parts[..length].join("::");
    let Some(name) = parts.get(length) else { return Some(module) };
    if depth > 8 {
        return Some(module);
    }
    let text = non_test(texts.get(module.as_str())?);
    if defines(text, name) {
        return Some(module);
    }
    // Re-exported here: where it comes from. Globs are tried in turn.
    for statement in text.split(';') {
        let Some(at) = statement.find("pub use ") else { continue };
        for exported in expand_use(&use_tree(&statement[at + 8..])) {
            let (source, alias) = match exported.split_once('@') {
                Some((source, alias)) => (source.to_string(), alias.to_string()),
                None => (exported.clone(), exported.rsplit("::").next().unwrap_or_default().to_string()),
            };
            let absolute = |source: &str| -> Option<String> {
                let first = source.split("::").next().unwrap_or_default();
                let child = text.lines().any(|line| {
                    let line = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
                    line == format!("mod {first};")
                });
                if child {
                    Some(if module.is_empty() { source.to_string() } else { format!("{module}::{source}") })
                } else {
                    referenced_paths(&module, &format!("use {source};")).into_iter().next()
                }
            };
            if alias == *name {
                return absolute(&source).and_then(|source| resolve(&source, known, texts, depth + 1));
            }
            if alias == "*" {
                let Some(glob) = absolute(source.trim_end_matches("::*")) else { continue };
                let candidate = format!("{glob}::{name}");
                if let Some(found) = resolve(&candidate, known, texts, depth + 1)
                    && texts.get(found.as_str()).is_some_and(|text| defines(non_test(text), name))
                {
                    return Some(found);
                }
            }
        }
    }
    Some(module)
}

/// Whether `text` defines an item called `name`.
fn defines(text: &str, name: &str) -> bool {
    ["struct", "enum", "fn", "async fn", "const", "static", "type", "trait", "mod", "macro_rules!"].iter().any(|kind| {
        let item = format!("{kind} {name}");
        text.match_indices(&item).any(|(at, _)| {
            let before = text[..at].chars().last();
            let after = text[at + item.len()..].chars().next();
            before.is_none_or(|c| c == ' ' || c == '\n') && after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    })
}

/// One cycle of `graph`, if it has any.
fn find_cycle(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        marks: &mut std::collections::BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|entry| entry == node).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = Default::default();
    graph.keys().find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn the_module_graph_check_sees_imports() {
    let paths = referenced_paths(
        "session::frames",
        "mod inner;\nuse super::connection::{Session, append_ack};\nuse crate::{auth::Principal, reads};\nuse inner::X;\nfn f() { crate::reads::poll_until(); }",
    );
    for expected in
        ["session::connection::Session", "auth::Principal", "reads", "session::frames::inner::X", "reads::poll_until"]
    {
        assert!(paths.iter().any(|path| path == expected), "{expected} not among {paths:?}");
    }
    let cyclic: std::collections::BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a")].into_iter().map(|(from, to)| (from.into(), [to.into()].into())).collect();
    assert!(find_cycle(&cyclic).is_some(), "a cycle of three modules is found");
}
