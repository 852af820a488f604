//! `missive rebuild`: drops a read-side projection's state and its input
//! positions from a stopped server's store, so that the next start refolds
//! it from the log (the topics it reads are kept forever).

use std::path::PathBuf;

use anyhow::Context;
use missive_infra::db::{CF_STATE, family};

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// The (stopped) server's data directory.
    #[arg(long, env = "MISSIVE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Which projection: directory (accounts, from events.user) or history (from events.conversation).
    pub projection: String,
}

/// The state prefix of each rebuildable projection and its processor name.
fn projection(name: &str) -> anyhow::Result<(&'static [u8], &'static str)> {
    match name {
        "directory" => Ok((b"dir/", missive_processors::history::DIRECTORY)),
        "history" => Ok((b"hist/", missive_processors::history::HISTORY)),
        other => anyhow::bail!("cannot rebuild {other:?}: choose directory or history"),
    }
}

pub fn run(args: RebuildArgs) -> anyhow::Result<()> {
    let (prefix, processor) = projection(&args.projection)?;
    let path = args.data_dir.join("store");
    let db = missive_infra::db::open_db(&path)
        .with_context(|| format!("cannot open {}; stop the server using it first", path.display()))?;
    let task_prefix = format!("__task/{processor}-").into_bytes();
    let state = family(&db, CF_STATE);
    let mut batch = rocksdb::WriteBatch::default();
    let mut dropped = 0usize;
    for start in [prefix, task_prefix.as_slice()] {
        for item in db.iterator_cf(state, rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward)) {
            let (key, _) = item?;
            if !key.starts_with(start) {
                break;
            }
            batch.delete_cf(state, &key);
            dropped += 1;
            // Bounded batches: a directory of millions of accounts is not held in memory at once.
            if batch.len() >= 10_000 {
                db.write(std::mem::take(&mut batch))?;
            }
        }
    }
    db.write(batch)?;
    db.flush_cf(state)?;
    println!("{}: dropped {dropped} keys; the next start refolds it from the log", args.projection);
    Ok(())
}
