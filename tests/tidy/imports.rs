//! The module graph: no module imports a module that imports it.

use super::*;

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
