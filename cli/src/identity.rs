//! Identities: a principal's private key, and `govctl keygen` that makes one.
//!
//! An identity file is JSON `{principal, keyId, algorithm, privateKey}` (PKCS#8, base64),
//! written with mode 0600. Its public half is the `keys[]` entry of the principal in a
//! genesis document or a principal command: `{principal, keyId, algorithm, publicKey}`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_protocol::signed::{RequestSigner, SignatureAlgorithm};
use serde::{Deserialize, Serialize};

/// Largest identity file read.
const MAX_IDENTITY_LEN: u64 = 16 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityFile {
    principal: String,
    key_id: String,
    algorithm: SignatureAlgorithm,
    private_key: String,
}

/// The public half of an identity, as genesis and principal commands take it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicIdentity {
    /// The principal.
    pub principal: String,
    /// Its key's id.
    pub key_id: String,
    /// Its algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The public key (base64): 32 bytes (Ed25519) or a 65-byte SEC1 point (ES256).
    pub public_key: String,
}

impl PublicIdentity {
    /// Reads a public identity file.
    pub fn load(path: &Path) -> anyhow::Result<PublicIdentity> {
        let text = read_small(path)?;
        serde_json::from_slice(&text).with_context(|| {
            format!(
                "{} is not a public identity (govctl keygen --public-out)",
                path.display()
            )
        })
    }

    /// The entry of `keys[]` in a principal record.
    pub fn key_entry(&self) -> serde_json::Value {
        serde_json::json!({
            "keyId": self.key_id,
            "algorithm": self.algorithm.as_str(),
            "publicKey": self.public_key,
        })
    }
}

/// A principal's signing identity.
pub struct Identity {
    /// Who it is.
    pub principal: String,
    /// Its signer (carrying the key id).
    pub signer: RequestSigner,
}

/// Where the identity is.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityArgs {
    /// The identity file that signs the request (govctl keygen).
    #[arg(long, env = "GOVCTL_IDENTITY", value_name = "FILE")]
    pub identity: PathBuf,
}

fn read_small(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_IDENTITY_LEN + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_IDENTITY_LEN {
        bail!("{} is larger than 16 KiB", path.display());
    }
    Ok(bytes)
}

impl Identity {
    /// Loads an identity file.
    pub fn load(path: &Path) -> anyhow::Result<Identity> {
        let text = read_small(path)?;
        let file: IdentityFile = serde_json::from_slice(&text).with_context(|| {
            format!("{} is not an identity file (govctl keygen)", path.display())
        })?;
        let der = STANDARD
            .decode(file.private_key.trim())
            .with_context(|| format!("{}: privateKey is not base64", path.display()))?;
        let signer = RequestSigner::from_pkcs8(file.algorithm, &der)
            .with_context(|| format!("{}: the private key does not load", path.display()))?
            .with_key_id(file.key_id);
        Ok(Identity {
            principal: file.principal,
            signer,
        })
    }
}

/// `govctl keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The principal the key belongs to.
    #[arg(long)]
    principal: String,
    /// The key's name in the principal's record (e.g. laptop-2026).
    #[arg(long, default_value = "key-1")]
    key_id: String,
    /// ed25519 or es256.
    #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "es256"])]
    algorithm: String,
    /// Where to write the identity (private; created with mode 0600, never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Where to write the public identity (for genesis and principal commands); it is also
    /// printed.
    #[arg(long, value_name = "FILE")]
    public_out: Option<PathBuf>,
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let algorithm = match args.algorithm.as_str() {
        "es256" => SignatureAlgorithm::ES256,
        _ => SignatureAlgorithm::Ed25519,
    };
    ea_policy::PrincipalId::new(&args.principal).context("--principal")?;
    ea_policy::KeyId::new(&args.key_id).context("--key-id")?;
    let (signer, der) = RequestSigner::generate(algorithm)?;
    let file = IdentityFile {
        principal: args.principal.clone(),
        key_id: args.key_id.clone(),
        algorithm,
        private_key: STANDARD.encode(&der),
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("creating {} (it must not exist yet)", args.out.display()))?;
    out.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    let public = PublicIdentity {
        principal: args.principal.clone(),
        key_id: args.key_id.clone(),
        algorithm,
        public_key: STANDARD.encode(&signer.public_key().bytes),
    };
    let text = serde_json::to_string_pretty(&public)?;
    if let Some(path) = &args.public_out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
