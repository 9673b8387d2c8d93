//! The credentials file (`--credentials`): who may call the local KMS, and as which
//! principal.
//!
//! ```json
//! {"credentials": [{
//!     "access_key_id": "AKIALOCALENCLAVE",
//!     "secret_access_key": "...",
//!     "session_token": null,
//!     "principal_arn": "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local"
//! }]}
//! ```
//!
//! The principal ARN is what key policies see; for an instance role give the assumed-role
//! session ARN, which a policy naming `arn:aws:iam::<account>:role/<role>` matches.

use std::path::Path;

use ea_kms::sigv4::Credential;
use serde::Deserialize;

const MAX_FILE_LEN: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    credentials: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    principal_arn: String,
}

/// Reads a credentials file.
pub fn read_credentials(path: &Path) -> anyhow::Result<Vec<Credential>> {
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .len();
    if len > MAX_FILE_LEN {
        anyhow::bail!("{} is larger than 1 MiB", path.display());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // serde_json's errors name positions and fields, never values.
    let file: File = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a credentials file: {e}", path.display()))?;
    if file.credentials.is_empty() {
        anyhow::bail!("{} lists no credentials", path.display());
    }
    for entry in &file.credentials {
        if !entry.principal_arn.starts_with("arn:") {
            anyhow::bail!(
                "{}: principal_arn of {} is not an ARN",
                path.display(),
                entry.access_key_id
            );
        }
    }
    Ok(file
        .credentials
        .into_iter()
        .map(|e| Credential {
            access_key_id: e.access_key_id,
            secret_access_key: e.secret_access_key.into(),
            session_token: e.session_token.map(Into::into),
            principal_arn: e.principal_arn,
        })
        .collect())
}
