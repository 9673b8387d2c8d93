//! `govctl audit fetch`: pages through the export routes and writes the log into a
//! directory ([`super::layout`]).
//!
//! The fetch is pinned to the checkpoint read first: records and checkpoints added while it
//! runs are left for the next fetch, so the directory is a consistent snapshot. Fetching into
//! a directory that holds an earlier fetch of the same log downloads only what was added;
//! files are first cut back to the lengths the manifest records, so a fetch that was
//! interrupted leaves nothing half-written behind.
//!
//! It also saves the latest checkpoint witnesses cosigned (`GET /v1/log/witnessed`), read
//! before the log's head so that the log fetched covers it, as `witnessed.json`.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use super::layout::{self, Manifest, Witnessed, CHECKPOINTS, FORMAT, RECORDS, WITNESSED};
use crate::client::{ApiClient, EndpointArgs};

#[derive(Debug, Deserialize)]
struct CheckpointJson {
    size: u64,
    checkpoint: String,
}

#[derive(Debug, Deserialize)]
struct RecordsPage {
    from: u64,
    records: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct CheckpointsPage {
    checkpoints: Vec<CheckpointJson>,
}

/// Where a fetch starts: what the directory already holds.
struct Resume {
    size: u64,
    records_bytes: u64,
    checkpoints: u64,
    checkpoints_bytes: u64,
    last_checkpoint_size: Option<u64>,
}

pub async fn run(endpoint: &EndpointArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(endpoint)?;
    // Read before the head, so that it is never larger than what this fetch covers (the
    // store's checkpoints only grow).
    let witnessed = client
        .get_json("/v1/log/witnessed")
        .await
        .and_then(|value| {
            serde_json::from_value::<CheckpointJson>(value)
                .context("the witnessed checkpoint is not {size, checkpoint}")
        });
    let head: CheckpointJson = serde_json::from_value(
        client
            .get_json("/v1/log/checkpoint")
            .await
            .context("reading the log's latest checkpoint")?,
    )
    .context("the latest checkpoint is not {size, checkpoint}")?;
    let origin = head
        .checkpoint
        .lines()
        .next()
        .filter(|origin| !origin.is_empty())
        .context("the latest checkpoint has no origin line")?
        .to_owned();
    let target = head.size;

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let resume = prepare(dir, &origin, target)?;

    let records_path = dir.join(RECORDS);
    let mut records_file = BufWriter::new(append_to(&records_path)?);
    let mut size = resume.size;
    let mut records_bytes = resume.records_bytes;
    while size < target {
        let page: RecordsPage = serde_json::from_value(
            client
                .get_json(&format!("/v1/log/records?from={size}&to={target}"))
                .await?,
        )
        .context("a records page is not {from, records}")?;
        ensure!(
            page.from == size,
            "asked for records from {size}, the endpoint answered from {}",
            page.from
        );
        ensure!(
            !page.records.is_empty(),
            "the endpoint's checkpoint covers {target} records, but it serves none from {size}"
        );
        for encoded in &page.records {
            ensure!(
                size < target,
                "the endpoint served more records than its checkpoint covers"
            );
            let bytes = STANDARD
                .decode(encoded)
                .with_context(|| format!("record {size} is not base64"))?;
            layout::write_record(&mut records_file, &bytes)
                .with_context(|| format!("writing record {size}"))?;
            records_bytes += 4 + bytes.len() as u64;
            size += 1;
        }
    }
    finish(records_file, &records_path)?;

    let checkpoints_path = dir.join(CHECKPOINTS);
    let mut notes_file = BufWriter::new(append_to(&checkpoints_path)?);
    let mut checkpoints = resume.checkpoints;
    let mut checkpoints_bytes = resume.checkpoints_bytes;
    let mut last = resume.last_checkpoint_size;
    'pages: loop {
        let from_size = last.map_or(0, |size| size + 1);
        if from_size > target {
            break;
        }
        let page: CheckpointsPage = serde_json::from_value(
            client
                .get_json(&format!("/v1/log/checkpoints?from_size={from_size}"))
                .await?,
        )
        .context("a checkpoints page is not {checkpoints}")?;
        if page.checkpoints.is_empty() {
            break;
        }
        for checkpoint in page.checkpoints {
            ensure!(
                checkpoint.size >= from_size && last.is_none_or(|last| checkpoint.size > last),
                "the endpoint served checkpoints out of order (size {} after {last:?})",
                checkpoint.size
            );
            if checkpoint.size > target {
                // Signed after the fetch began: left for the next fetch.
                break 'pages;
            }
            layout::write_note(&mut notes_file, &checkpoint.checkpoint)
                .with_context(|| format!("checkpoint of size {}", checkpoint.size))?;
            checkpoints += 1;
            checkpoints_bytes += checkpoint.checkpoint.len() as u64 + 4;
            last = Some(checkpoint.size);
        }
    }
    finish(notes_file, &checkpoints_path)?;

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        origin: origin.clone(),
        size,
        records_bytes,
        checkpoints,
        checkpoints_bytes,
        last_checkpoint_size: last.unwrap_or(0),
        fetched_at: jiff::Timestamp::now().to_string(),
        endpoint: endpoint.endpoint.clone(),
    };
    layout::write_manifest(dir, &manifest)?;
    println!(
        "fetched {} records and {} checkpoints ({} records, {} checkpoints in all) of {origin} into {}",
        size - resume.size,
        checkpoints - resume.checkpoints,
        size,
        checkpoints,
        dir.display()
    );
    save_witnessed(dir, witnessed, size, &manifest.fetched_at)?;
    Ok(ExitCode::SUCCESS)
}

/// Saves the witnessed checkpoint the endpoint served, if any, beside the log. Without one,
/// an earlier `witnessed.json` stays: it is still a checkpoint the log must extend.
fn save_witnessed(
    dir: &Path,
    witnessed: anyhow::Result<CheckpointJson>,
    size: u64,
    fetched_at: &str,
) -> anyhow::Result<()> {
    let kept = if dir.join(WITNESSED).exists() {
        format!("; the earlier {WITNESSED} stays")
    } else {
        String::new()
    };
    match witnessed {
        Ok(witnessed) if witnessed.size <= size => {
            layout::write_witnessed(
                dir,
                &Witnessed {
                    size: witnessed.size,
                    checkpoint: witnessed.checkpoint,
                    fetched_at: fetched_at.to_owned(),
                },
            )?;
            println!(
                "saved the witnessed checkpoint (size {}) as {WITNESSED}",
                witnessed.size
            );
        }
        Ok(witnessed) => eprintln!(
            "govctl: the witnessed checkpoint has size {}, beyond the {size} records fetched;              not saved{kept}",
            witnessed.size
        ),
        Err(error) if format!("{error:#}").contains("not_witnessed") => {
            eprintln!("govctl: the endpoint serves no witnessed checkpoint yet{kept}")
        }
        Err(error) => {
            eprintln!("govctl: no witnessed checkpoint saved ({error:#}){kept}")
        }
    }
    Ok(())
}

/// Checks what `dir` holds and cuts its files back to what its manifest vouches for.
fn prepare(dir: &Path, origin: &str, target: u64) -> anyhow::Result<Resume> {
    let records_path = dir.join(RECORDS);
    let checkpoints_path = dir.join(CHECKPOINTS);
    let Some(manifest) = layout::read_manifest(dir)? else {
        if records_path.exists() || checkpoints_path.exists() {
            bail!(
                "{} holds log files but no manifest; fetch into a new directory",
                dir.display()
            );
        }
        return Ok(Resume {
            size: 0,
            records_bytes: 0,
            checkpoints: 0,
            checkpoints_bytes: 0,
            last_checkpoint_size: None,
        });
    };
    if manifest.origin != origin {
        bail!(
            "{} holds the log {}, but the endpoint serves {origin}; fetch into another directory",
            dir.display(),
            manifest.origin
        );
    }
    if manifest.size > target {
        bail!(
            "the endpoint's log has {target} records, fewer than the {} already in {}: \
             the parent lost or withheld records",
            manifest.size,
            dir.display()
        );
    }
    cut_to(&records_path, manifest.records_bytes)?;
    cut_to(&checkpoints_path, manifest.checkpoints_bytes)?;
    Ok(Resume {
        size: manifest.size,
        records_bytes: manifest.records_bytes,
        checkpoints: manifest.checkpoints,
        checkpoints_bytes: manifest.checkpoints_bytes,
        last_checkpoint_size: (manifest.checkpoints > 0).then_some(manifest.last_checkpoint_size),
    })
}

/// Truncates `path` to `len` bytes (what an earlier, complete fetch wrote).
fn cut_to(path: &Path, len: u64) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let actual = file.metadata()?.len();
    if actual < len {
        bail!(
            "{} has {actual} bytes, fewer than the {len} its manifest records; fetch into a new directory",
            path.display()
        );
    }
    file.set_len(len)
        .with_context(|| format!("truncating {}", path.display()))
}

fn append_to(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Flushes and syncs a file before the manifest vouches for it.
fn finish(writer: BufWriter<File>, path: &Path) -> anyhow::Result<()> {
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}
