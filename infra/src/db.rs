//! One RocksDB per process. In embedded mode the log and every processor's
//! state live in the same database, in separate column families, so that a
//! processor's state, input position and outbox commit in one WriteBatch.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Options};

/// Log records: `[topic id][partition][offset]` -> encoded record.
pub const CF_LOG: &str = "log";
/// Sparse time index: `[topic id][partition][timestamp]` -> first offset at or after it.
pub const CF_LOG_TIME: &str = "log_time";
/// Topic metadata.
pub const CF_META: &str = "meta";
/// Consumer-group positions mirrored for lag tooling.
pub const CF_GROUPS: &str = "groups";
/// Processor state, input positions and dedupe marks, prefixed by processor name.
pub const CF_STATE: &str = "state";
/// Processor outboxes: output records committed but not yet relayed.
pub const CF_OUTBOX: &str = "outbox";
/// Gateway-local auth state (OTP challenges, refresh tokens).
pub const CF_AUTH: &str = "auth";

const ALL_FAMILIES: [&str; 7] = [CF_LOG, CF_LOG_TIME, CF_META, CF_GROUPS, CF_STATE, CF_OUTBOX, CF_AUTH];

#[derive(Debug, thiserror::Error)]
#[error("cannot open the store at {path}: {source}. Is another missive process using this data directory?")]
pub struct OpenError {
    pub path: String,
    #[source]
    pub source: rocksdb::Error,
}

/// Opens (or creates) the process's database with every column family.
pub fn open_db(path: &Path) -> Result<Arc<DB>, OpenError> {
    open_with(path, Durability::Logged)
}

/// Opens a scratch database (a rebuild's shadow store): the same layout,
/// but its write-ahead log stays in memory and its memtables are large.
/// A crash loses it, which is fine: a failed rebuild is started again.
pub fn open_scratch_db(path: &Path) -> Result<Arc<DB>, OpenError> {
    open_with(path, Durability::Scratch)
}

#[derive(Clone, Copy, PartialEq)]
enum Durability {
    Logged,
    Scratch,
}

fn open_with(path: &Path, durability: Durability) -> Result<Arc<DB>, OpenError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.increase_parallelism(2);
    options.set_max_background_jobs(2);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_write_buffer_size(64 << 20);
    options.set_max_total_wal_size(256 << 20);
    options.set_max_open_files(file_budget());
    // One thread (the embedded log's writer) does nearly every write: a
    // pipelined write would only add hand-offs between RocksDB's WAL and
    // memtable stages.
    options.set_enable_pipelined_write(false);
    if durability == Durability::Scratch {
        options.set_manual_wal_flush(true);
    }
    // Processors look state up by key on every record, often for keys that
    // do not exist yet (a conversation's first message, a new feed): a
    // whole-key Bloom filter answers those without reading a block, and one
    // bounded block cache serves the rest.
    let cache = Cache::new_lru_cache(STATE_BLOCK_CACHE_BYTES);
    let families = ALL_FAMILIES.iter().map(|name| {
        let mut family = Options::default();
        family.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Flushes and the first compactions write uncompressed: the newest
        // data is the most rewritten and the most read, and compressing it
        // cost more CPU on the message path than any other RocksDB step but
        // memtable inserts. Older levels, where the bytes are, stay LZ4.
        use rocksdb::DBCompressionType::{Lz4, None as Plain};
        family.set_compression_per_level(&[Plain, Plain, Lz4, Lz4, Lz4, Lz4, Lz4]);
        family.set_write_buffer_size(32 << 20);
        if *name == CF_LOG {
            // Log records are written once, read from the partition's
            // in-memory tail while new and rarely after, and deleted by
            // retention in whole ranges: their values go to blob files at
            // flush, so compactions move keys and blob references only
            // instead of rewriting every record several times (compacting
            // the log took a core for seconds at a time under load).
            family.set_enable_blob_files(true);
            family.set_min_blob_size(0);
            family.set_blob_file_size(BLOB_FILE_BYTES);
            family.set_enable_blob_gc(false);
        }
        if *name == CF_STATE {
            // Lookups of keys not written yet end at a memtable Bloom
            // filter instead of a walk down the memtable's skip list.
            family.set_memtable_prefix_bloom_ratio(0.05);
            family.set_memtable_whole_key_filtering(true);
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            family.set_block_based_table_factory(&table);
            if durability == Durability::Scratch {
                family.set_write_buffer_size(256 << 20);
            }
        }
        ColumnFamilyDescriptor::new(*name, family)
    });
    DB::open_cf_descriptors(&options, path, families)
        .map(Arc::new)
        .map_err(|source| OpenError { path: path.display().to_string(), source })
}

/// The state family's block cache (index, filter and data blocks).
const STATE_BLOCK_CACHE_BYTES: usize = 128 << 20;

/// Blob files of the log family: one per flush of its 32 MiB memtable,
/// nearly; a file goes when retention has deleted every record in it.
const BLOB_FILE_BYTES: u64 = 64 << 20;

/// Files RocksDB may keep open: a quarter of the process's open-files
/// limit (the rest is for sockets), at least 256.
fn file_budget() -> i32 {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    i32::try_from((soft / 4).max(256)).unwrap_or(i32::MAX)
}

/// Opens a read-only view of another process's store (a RocksDB secondary
/// instance): tools read a running server's log without disturbing it.
/// `scratch` holds the secondary's own small files.
pub fn open_db_secondary(primary: &Path, scratch: &Path) -> Result<Arc<DB>, OpenError> {
    let mut options = Options::default();
    options.set_max_open_files(-1);
    DB::open_cf_as_secondary(&options, primary, scratch, ALL_FAMILIES)
        .map(Arc::new)
        .map_err(|source| OpenError { path: primary.display().to_string(), source })
}

/// The handle of a column family opened by [`open_db`].
pub fn family<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} is created by open_db"))
}
