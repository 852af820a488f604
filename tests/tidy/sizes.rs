//! File sizes: non-test code per source file, and test suite files.

use super::*;

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

/// Longest test suite file (an end-to-end suite's file, a crate's
/// integration test or `tests.rs` module), in lines: a longer suite is a
/// folder (`tests/<suite>/main.rs` and a module per subject).
const MOST_TEST_LINES: usize = 420;

#[test]
fn no_test_file_is_over_the_size_limit() {
    let root = root();
    let mut files = Vec::new();
    sources(&root.join("tests"), &mut files);
    for dir in CRATE_SOURCES {
        sources(&root.join(dir), &mut files);
        let crate_tests = root.join(dir).with_file_name("tests");
        if crate_tests.is_dir() {
            sources(&crate_tests, &mut files);
        }
    }
    let mut long: Vec<String> = files
        .iter()
        .filter(|file| is_test_file(file.strip_prefix(&root).unwrap_or(file)))
        .filter_map(|file| {
            let lines = read(file).lines().count();
            (lines > MOST_TEST_LINES)
                .then(|| format!("{} ({lines} lines)", file.strip_prefix(&root).unwrap_or(file).display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "split these test files by subject (at most {MOST_TEST_LINES} lines each): {long:?}");
    assert!(files.len() > 40, "the check saw the test files: {files:?}");
}
