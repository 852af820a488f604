//! The pure core crates and the contract crate reach no I/O crate.

use super::*;

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
