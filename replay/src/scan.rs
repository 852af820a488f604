//! Reading a range of a topic: by offset or by time (a binary search over
//! record timestamps), to a fixed end or following new records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use missive_infra::{Log, Offset, Record, TopicPartition};

use crate::progress;
use crate::source::Opened;

/// Parses RFC 3339 or epoch milliseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("{text:?} is neither RFC 3339 (2026-11-28T15:00:00Z) nor epoch milliseconds"))?;
    let since = time.duration_since(std::time::UNIX_EPOCH).context("a time before 1970")?;
    Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// Where to start a partition for `--from-time`, checked: the broker's time
/// index must put every earlier record before the time and this one at or
/// after it. A wrong answer is reported, never printed as data.
async fn start_for_time(log: &dyn Log, partition: &TopicPartition, at: i64) -> anyhow::Result<Offset> {
    let offset = log.offset_for_time(partition, at).await?;
    let marks = log.watermarks(partition).await?;
    let check = |from: Offset| async move {
        let mut consumer = log.consumer(vec![(partition.clone(), from)]).await?;
        let records = consumer.poll(1, Duration::from_secs(5)).await?;
        anyhow::Ok(records.into_iter().next())
    };
    if offset.0 > marks.low.0
        && let Some(before) = check(Offset(offset.0 - 1)).await?
        && before.timestamp >= at
    {
        bail!(
            "{partition}: the log says {at} starts at offset {}, but offset {} has timestamp {}: its time index is wrong; use --from-offset",
            offset.0,
            before.offset.0,
            before.timestamp
        );
    }
    if offset < marks.high
        && let Some(first) = check(offset).await?
        && first.timestamp < at
    {
        bail!(
            "{partition}: the log says {at} starts at offset {}, whose timestamp is {}: its time index is wrong; use --from-offset",
            offset.0,
            first.timestamp
        );
    }
    Ok(offset)
}

/// Which records of a topic to read.
pub(crate) struct Range<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: Option<u32>,
    pub(crate) from_offset: Option<u64>,
    pub(crate) to_offset: Option<u64>,
    pub(crate) from_time: Option<i64>,
    pub(crate) to_time: Option<i64>,
    pub(crate) follow: bool,
}

/// Per partition: where to start, and where to stop (exclusive; `None`: follow forever).
pub(crate) type Plan = BTreeMap<TopicPartition, (Offset, Option<Offset>)>;

pub(crate) async fn plan(log: &dyn Log, range: &Range<'_>) -> anyhow::Result<Plan> {
    let spec = log
        .topics()
        .await?
        .into_iter()
        .find(|spec| spec.name == range.topic)
        .with_context(|| format!("no topic {:?}; `missive topics` lists them", range.topic))?;
    let partitions: Vec<u32> = match range.partition {
        Some(partition) if partition < spec.partitions => vec![partition],
        Some(partition) => bail!("{} has partitions 0..{}, not {partition}", spec.name, spec.partitions),
        None => (0..spec.partitions).collect(),
    };
    let mut plan = Plan::new();
    for partition in partitions {
        let partition = TopicPartition::new(spec.name.clone(), partition);
        let marks = log.watermarks(&partition).await?;
        let start = match (range.from_offset, range.from_time) {
            (Some(offset), _) => Offset(offset.max(marks.low.0)),
            (None, Some(at)) => start_for_time(log, &partition, at).await?,
            (None, None) => marks.low,
        };
        let end = match (range.to_offset, range.to_time) {
            (Some(offset), _) => Some(Offset(offset)),
            (None, Some(at)) => Some(log.offset_for_time(&partition, at).await?),
            (None, None) if range.follow => None,
            (None, None) => Some(marks.high),
        };
        if end.is_none_or(|end| start < end) {
            plan.insert(partition, (start, end));
        }
    }
    Ok(plan)
}

/// Reads the planned records in order per partition, handing each to
/// `each` until it says stop or every bounded partition is done. Reports
/// progress on stderr every few seconds. Returns how many records were read.
pub(crate) async fn scan(
    opened: &Opened,
    plan: &Plan,
    follow: bool,
    mut each: impl FnMut(&Record) -> anyhow::Result<bool>,
) -> anyhow::Result<u64> {
    if plan.is_empty() {
        return Ok(0);
    }
    // Following an embedded server: refresh the read-only view twice a second.
    let refresher = opened.follower.clone().filter(|_| follow).map(|follower| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let follower = follower.clone();
                match tokio::task::spawn_blocking(move || follower.follow_primary()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("missive: cannot follow the server's store: {error}"),
                    Err(_) => return,
                }
            }
        })
    });
    let total: u64 = plan.values().filter_map(|(start, end)| end.map(|end| end.0.saturating_sub(start.0))).sum();
    let assignment = plan.iter().map(|(partition, (start, _))| (partition.clone(), *start)).collect();
    let mut consumer = opened.log.consumer(assignment).await?;
    // Partitions still to read up to their end (all of them when following).
    let mut open_partitions: Vec<TopicPartition> = plan.keys().cloned().collect();
    // Counted for the progress report (not shown when following: there is no end).
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = (!follow).then(|| progress::Progress::start("missive", "records", total, counted.clone()));
    let mut read = 0u64;
    'reading: while !open_partitions.is_empty() {
        for record in consumer.poll(1024, Duration::from_millis(500)).await? {
            let Some((_, end)) = plan.get(&record.topic_partition()) else { continue };
            if end.is_some_and(|end| record.offset >= end) {
                continue;
            }
            read += 1;
            counted.store(read, std::sync::atomic::Ordering::Relaxed);
            if !each(&record)? {
                break 'reading;
            }
        }
        // Done with a partition once the reader is past its end (gaps in
        // compacted topics included).
        open_partitions.retain(|partition| {
            let end = plan.get(partition).and_then(|(_, end)| *end);
            end.is_none_or(|end| consumer.position(partition).is_none_or(|position| position < end))
        });
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    Ok(read)
}
