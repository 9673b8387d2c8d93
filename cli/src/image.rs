//! `govctl image`: the enclave images a log admits. Admitting (`propose`) and retiring an
//! image are the governed operation `imageChange`: each opens an approval that at least two
//! principals holding Owner at `/` must approve (never the requester), and only then does
//! the log admit (or stop admitting) the image. `list` reads the admitted images with the
//! records that admitted them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ea_ledger::{Operation, Query};
use ea_policy::{Command, ImagePcrs};

use crate::request::{self, RequestArgs};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Propose admitting an image to continue the log (governed: imageChange). Once two
    /// owners of / approve, an enclave of this image may start on the log with its own
    /// log key.
    Propose(ImageArgs),
    /// Propose retiring an admitted image (governed: imageChange): no enclave of it may start
    /// on the log again. Neither the last admitted image nor the one writing the log.
    Retire(ImageArgs),
    /// The admitted images, the records that admitted them, and the one writing the log.
    List,
}

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The image's PCRs: a measurements file (`govctl eif pcrs`, nitro-cli's describe-eif).
    /// PCR0, 1 and 2 are required; PCR8 is taken when the file has it (a signed image).
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// PCR N of the image (repeatable; after --pcrs, wins over it).
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Why (recorded, and copied into the approval the approvers see).
    #[arg(long)]
    justification: String,
}

/// The image named by `--pcrs` and `--pcr`.
pub fn image_of(pins: &[String], file: Option<&std::path::Path>) -> anyhow::Result<ImagePcrs> {
    let pcrs = crate::audit::pinned_pcrs(pins, file)?;
    ImagePcrs::from_pcrs(pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
        .context("the PCRs given do not name an image")
}

pub async fn run(args: &RequestArgs, command: ImageCommand) -> anyhow::Result<ExitCode> {
    let operation = match command {
        ImageCommand::Propose(image) => Operation::Submit {
            command: Box::new(Command::AdmitImage {
                image: image_of(&image.pcrs, image.pcrs_file.as_deref())?,
            }),
            justification: Some(image.justification),
        },
        ImageCommand::Retire(image) => Operation::Submit {
            command: Box::new(Command::RetireImage {
                image: image_of(&image.pcrs, image.pcrs_file.as_deref())?,
            }),
            justification: Some(image.justification),
        },
        ImageCommand::List => Operation::Read(Query::Images),
    };
    request::run(args, &operation).await
}
