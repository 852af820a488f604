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

/// The crates `package` links (normal dependencies only: tests and build
/// scripts may do more), for this machine's platform.
fn linked_crates(package: &str) -> BTreeSet<String> {
    let arguments =
        ["tree", "--offline", "--locked", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"];
    let tree = cargo(&arguments);
    let linked: BTreeSet<String> =
        tree.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_string).collect();
    assert!(linked.contains(package), "cargo tree printed nothing for {package}:\n{tree}");
    linked
}

#[test]
fn the_pure_core_crates_reach_no_io_crate() {
    for pure in ["missive-core", "missive-projections", "missive-schemas"] {
        let offending: Vec<String> =
            linked_crates(pure).into_iter().filter(|name| IO_CRATES.contains(&name.as_str())).collect();
        assert!(
            offending.is_empty(),
            "{pure} is the pure core and must not depend on I/O crates; move the code that needs them to an outer crate \
             (`cargo tree -p {pure} -i CRATE` shows the path): {offending:?}"
        );
    }
}

/// The server relays ciphertext and serves public keys: no server crate
/// links the Olm/Megolm implementation (only clients encrypt).
#[test]
fn no_server_crate_links_the_encryption_library() {
    assert!(linked_crates("missive-client").contains("vodozemac"), "the check sees vodozemac where it is linked");
    for server in ["missive-gateway", "missive-processors", "missive-infra", "missive-schemas", "missive-registry"] {
        assert!(
            !linked_crates(server).contains("vodozemac"),
            "{server} links vodozemac; key checks on the server use ed25519-dalek only (`cargo tree -p {server} -i vodozemac`)"
        );
    }
}
