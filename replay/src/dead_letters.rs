//! `missive dead-letters list|show|redrive`: the records a processor could
//! not handle (a poison record is moved aside with the error and its
//! origin, so its partition keeps flowing). `list` and `show` read beside a
//! running server; `redrive` appends a dead letter back to the topic and
//! partition it came from, after the fix that makes it processable. An
//! embedded store has one writer: re-driving there needs the server stopped.

use anyhow::{Context, bail};
use missive_infra::{EmbeddedLog, Header, Log, Offset, OutRecord, Record, TopicPartition};
use missive_processors::topics::{DEAD_LETTERS, headers};
use serde_json::{Value, json};

use crate::scan::{Range, plan, scan};
use crate::source::{Opened, Source, open};

/// Names a re-driven record's dead letter (`dead-letters@<offset>`).
pub const REDRIVEN_FROM: &str = "missive-redriven-from";

#[derive(clap::Subcommand)]
pub enum Action {
    /// One JSON line per dead letter: offset, origin, error, key, record type.
    List,
    /// One dead letter in full: headers and the decoded record (or its bytes in hex).
    Show {
        /// Its offset in `dead-letters`.
        #[arg(long)]
        offset: u64,
    },
    /// Append dead letters back to the partition they came from (after a fix).
    Redrive {
        /// Only this dead letter.
        #[arg(long, conflicts_with = "all")]
        offset: Option<u64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub source: Source,
}

fn header_text(record: &Record, name: &str) -> Option<String> {
    record.header(name).map(|value| String::from_utf8_lossy(value).into_owned())
}

/// `topic/partition@offset` from the origin header.
fn origin(record: &Record) -> anyhow::Result<(TopicPartition, u64)> {
    let text = header_text(record, headers::ORIGIN).context("the dead letter has no origin header")?;
    let (place, offset) = text.rsplit_once('@').context("origin is topic/partition@offset")?;
    let (topic, partition) = place.rsplit_once('/').context("origin is topic/partition@offset")?;
    Ok((TopicPartition::new(topic, partition.parse()?), offset.parse()?))
}

async fn dead_letters(opened: &Opened, only: Option<u64>) -> anyhow::Result<Vec<Record>> {
    let range = Range {
        topic: DEAD_LETTERS,
        partition: None,
        from_offset: only,
        to_offset: only.map(|offset| offset + 1),
        from_time: None,
        to_time: None,
        follow: false,
    };
    let plan = plan(opened.log.as_ref(), &range).await?;
    // Dead letters are relayed at least once (a crash between writing and
    // relaying repeats one): each is listed once, by its event id.
    let mut seen = std::collections::HashSet::new();
    let mut records = Vec::new();
    scan(opened, &plan, false, |record| {
        if record.header(headers::EVENT_ID).is_none_or(|id| seen.insert(id.to_vec())) {
            records.push(record.clone());
        }
        Ok(true)
    })
    .await?;
    Ok(records)
}

pub async fn dead_letters_command(args: DeadLettersArgs) -> anyhow::Result<()> {
    match args.action {
        Action::List | Action::Show { .. } => {
            let opened = open(&args.source).await?;
            let codec = missive_registry::codec_from_log(opened.log.clone()).await?;
            let only = match args.action {
                Action::Show { offset } => Some(offset),
                _ => None,
            };
            let records = dead_letters(&opened, only).await?;
            if only.is_some() && records.is_empty() {
                bail!("no dead letter at offset {}; `missive dead-letters list` shows them", only.unwrap_or_default());
            }
            for record in records {
                let decoded = codec.decode_json(&record.value);
                let mut line = json!({
                    "offset": record.offset.0,
                    "timestamp": record.timestamp,
                    "origin": header_text(&record, headers::ORIGIN),
                    "error": header_text(&record, headers::ERROR),
                    "redriven_from": header_text(&record, REDRIVEN_FROM),
                    "key": String::from_utf8_lossy(&record.key),
                    "type": decoded.as_ref().map_or("undecodable", |(record_type, _)| record_type.short_name()),
                });
                if only.is_some() {
                    line["value"] = match decoded {
                        Ok((_, value)) => value,
                        Err(error) => {
                            let shown = &record.value[..record.value.len().min(256)];
                            json!({"error": error.to_string(), "hex": hex::encode(shown)})
                        }
                    };
                    line["headers"] = Value::Object(
                        record
                            .headers
                            .iter()
                            .map(|header| (header.key.clone(), json!(String::from_utf8_lossy(&header.value))))
                            .collect(),
                    );
                }
                println!("{line}");
            }
            Ok(())
        }
        Action::Redrive { offset, all } => {
            if offset.is_none() && !all {
                bail!("name a dead letter (--offset N, from `missive dead-letters list`) or --all");
            }
            redrive(&args.source, offset).await
        }
    }
}

async fn redrive(source: &Source, only: Option<u64>) -> anyhow::Result<()> {
    // Read through the same view the writes go to.
    let (log, scratch_view): (std::sync::Arc<dyn Log>, Option<Opened>) = match &source.brokers {
        Some(_) => {
            let opened = open(source).await?;
            (opened.log.clone(), Some(opened))
        }
        None => {
            let path = source.data_dir.join("store");
            let db = missive_infra::db::open_db(&path).with_context(|| {
                format!(
                    "cannot open {} to re-drive: stop the server using it (re-driving appends to its log)",
                    path.display()
                )
            })?;
            (std::sync::Arc::new(EmbeddedLog::open(db, false)?), None)
        }
    };
    let opened = scratch_view.unwrap_or(Opened { log: log.clone(), follower: None, scratch: None });
    let records = dead_letters(&opened, only).await?;
    if records.is_empty() {
        bail!("no dead letters to re-drive");
    }
    let mut redriven = Vec::new();
    for record in records {
        let (target, from) = origin(&record)?;
        let kept: Vec<Header> = record
            .headers
            .iter()
            .filter(|header| {
                header.key != headers::ERROR && header.key != headers::ORIGIN && header.key != REDRIVEN_FROM
            })
            .cloned()
            .collect();
        let mut record_headers = kept;
        record_headers.push(Header {
            key: REDRIVEN_FROM.into(),
            value: format!("{DEAD_LETTERS}@{}", record.offset.0).into_bytes(),
        });
        let appended = log
            .append(vec![OutRecord {
                topic: target.topic.clone(),
                partition: Some(target.partition),
                key: record.key.clone(),
                value: record.value.clone(),
                headers: record_headers,
                timestamp: None,
            }])
            .await?;
        let at = appended.first().map_or(Offset(0), |(_, offset)| *offset);
        redriven
            .push(json!({"dead_letter": record.offset.0, "origin": format!("{target}@{from}"), "appended_at": at.0}));
    }
    println!("{}", json!({"redriven": redriven}));
    Ok(())
}
