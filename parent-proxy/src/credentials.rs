//! AWS credentials for the enclave's KMS calls (`--aws-credentials`): the instance role's
//! short-lived credentials from IMDSv2 on EC2, or a static profile from an AWS credentials
//! file for local runs. The store service hands them out on
//! [`ea_protocol::StoreRequest::GetCredentials`].
//!
//! Handing them to the enclave gives away nothing the parent does not already hold; KMS
//! releases the log key only to a request that carries an attestation document the key
//! policy accepts. Secrets are never logged; only access key ids and expiry times are.
//!
//! IMDSv2: `PUT /latest/api/token` (with a TTL header) gives a session token; with it,
//! `GET /latest/meta-data/iam/security-credentials/` names the role and
//! `GET .../security-credentials/<role>` gives `AccessKeyId`, `SecretAccessKey`, `Token` and
//! `Expiration`. The answer is kept until ten minutes before it expires (EC2 rotates
//! instance credentials well before that).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ea_protocol::Secret;

/// The instance metadata service.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Credentials are fetched again this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Lifetime asked for the IMDSv2 session token (seconds).
const IMDS_TOKEN_TTL_SECS: u32 = 21_600;
/// Time for each IMDS request.
const IMDS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest IMDS answer read.
const MAX_IMDS_RESPONSE: usize = 64 * 1024;
/// Largest credentials file read.
const MAX_CREDENTIALS_FILE: u64 = 64 * 1024;

/// Credentials as handed to the enclave.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Expiry in milliseconds since the Unix epoch; `None` for long-term keys.
    pub expiration_ms: Option<u64>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration_ms", &self.expiration_ms)
            .finish_non_exhaustive()
    }
}

/// Why no credentials could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The `--aws-credentials` value is not `imds` or `static:<file>`.
    #[error("--aws-credentials {0:?}: expected imds or static:<credentials file>")]
    Spec(String),
    /// The credentials file could not be read.
    #[error("cannot read the credentials file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is too large to be a credentials file.
    #[error("{path} is larger than 64 KiB; it is not an AWS credentials file")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The profile is missing or incomplete.
    #[error("{path}: {problem}")]
    Profile {
        /// The file.
        path: PathBuf,
        /// What is missing.
        problem: String,
    },
    /// An IMDS step failed.
    #[error("instance metadata ({step}) failed: {detail}; is this an EC2 instance with an instance profile, and IMDSv2 reachable (hop limit 1 is enough: the parent asks, not the enclave)?")]
    Imds {
        /// Which request.
        step: &'static str,
        /// What went wrong (no secrets: statuses and parse errors).
        detail: String,
    },
}

/// One profile of an AWS credentials file (`~/.aws/credentials` format).
pub fn read_profile(path: &Path, profile: &str) -> Result<AwsCredentials, CredentialsError> {
    let file_error = |source| CredentialsError::File {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(file_error)?.len();
    if len > MAX_CREDENTIALS_FILE {
        return Err(CredentialsError::FileTooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(file_error)?;
    let problem = |problem: String| CredentialsError::Profile {
        path: path.to_owned(),
        problem,
    };
    let mut section: Option<&str> = None;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    let mut found = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // `[profile x]` is the config file's spelling; accept it here too.
            section = Some(name.strip_prefix("profile ").unwrap_or(name).trim());
            found |= section == Some(profile);
            continue;
        }
        if section != Some(profile) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "aws_access_key_id" => key_id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    if !found {
        return Err(problem(format!("no [{profile}] profile")));
    }
    let (Some(access_key_id), Some(secret)) = (key_id, secret) else {
        return Err(problem(format!(
            "profile [{profile}] needs aws_access_key_id and aws_secret_access_key"
        )));
    };
    Ok(AwsCredentials {
        access_key_id,
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
        expiration_ms: None,
    })
}

/// What `--aws-credentials` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSpec {
    /// The instance role, from IMDSv2.
    Imds,
    /// A profile of an AWS credentials file.
    Static(PathBuf),
}

impl FromStr for CredentialsSpec {
    type Err = CredentialsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "imds" => Ok(CredentialsSpec::Imds),
            _ => match text.strip_prefix("static:") {
                Some(path) if !path.is_empty() => Ok(CredentialsSpec::Static(PathBuf::from(path))),
                _ => Err(CredentialsError::Spec(text.to_owned())),
            },
        }
    }
}

/// The instance role's credentials through IMDSv2, cached until shortly before expiry.
#[derive(Debug)]
pub struct ImdsCredentials {
    endpoint: String,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<AwsCredentials>>,
}

/// The credentials document IMDS returns.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsDocument {
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ImdsCredentials {
    /// A source asking the IMDS at `endpoint` (`http://169.254.169.254`; a loopback URL in
    /// tests).
    pub fn new(endpoint: impl Into<String>) -> Result<Self, CredentialsError> {
        let http = reqwest::Client::builder()
            .timeout(IMDS_TIMEOUT)
            // IMDS is plain HTTP on a link-local address; never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| CredentialsError::Imds {
                step: "client set-up",
                detail: e.to_string(),
            })?;
        Ok(Self {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            http,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    async fn text(
        &self,
        step: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<String, CredentialsError> {
        let error = |detail: String| CredentialsError::Imds { step, detail };
        let mut response = request.send().await.map_err(|e| error(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error(e.to_string()))? {
            if body.len() + chunk.len() > MAX_IMDS_RESPONSE {
                return Err(error(format!(
                    "answer larger than {MAX_IMDS_RESPONSE} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| error("answer is not UTF-8".into()))
    }

    async fn fetch(&self) -> Result<AwsCredentials, CredentialsError> {
        let token = self
            .text(
                "session token",
                self.http
                    .put(format!("{}/latest/api/token", self.endpoint))
                    .header(
                        "X-aws-ec2-metadata-token-ttl-seconds",
                        IMDS_TOKEN_TTL_SECS.to_string(),
                    ),
            )
            .await?;
        let base = format!(
            "{}/latest/meta-data/iam/security-credentials/",
            self.endpoint
        );
        let roles = self
            .text(
                "role name",
                self.http
                    .get(&base)
                    .header("X-aws-ec2-metadata-token", token.trim()),
            )
            .await?;
        let role =
            roles
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .ok_or(CredentialsError::Imds {
                    step: "role name",
                    detail: "no instance profile role is attached".into(),
                })?;
        if role.contains('/') || role.contains("..") {
            return Err(CredentialsError::Imds {
                step: "role name",
                detail: format!("{role:?} is not a role name"),
            });
        }
        let document = self
            .text(
                "credentials",
                self.http
                    .get(format!("{base}{role}"))
                    .header("X-aws-ec2-metadata-token", token.trim()),
            )
            .await?;
        let document: ImdsDocument =
            serde_json::from_str(&document).map_err(|e| CredentialsError::Imds {
                step: "credentials",
                // serde_json names the field and position, never the values.
                detail: format!("not a credentials document: {e}"),
            })?;
        if document.code.as_deref().is_some_and(|c| c != "Success") {
            return Err(CredentialsError::Imds {
                step: "credentials",
                detail: format!("Code is {:?}", document.code.unwrap_or_default()),
            });
        }
        let expiration = time::OffsetDateTime::parse(
            &document.expiration,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| CredentialsError::Imds {
            step: "credentials",
            detail: format!("Expiration {:?}: {e}", document.expiration),
        })?;
        let expiration_ms =
            u64::try_from(expiration.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        tracing::info!(
            role,
            access_key_id = %document.access_key_id,
            expiration = %document.expiration,
            "fetched instance role credentials from IMDS"
        );
        Ok(AwsCredentials {
            access_key_id: document.access_key_id,
            secret_access_key: Secret::new(document.secret_access_key),
            session_token: Some(Secret::new(document.token)),
            expiration_ms: Some(expiration_ms),
        })
    }

    /// Cached credentials while more than [`REFRESH_MARGIN`] is left, else fresh ones.
    pub async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        let mut cached = self.cached.lock().await;
        let margin = u64::try_from(REFRESH_MARGIN.as_millis()).unwrap_or(u64::MAX);
        if let Some(credentials) = cached.as_ref() {
            if credentials
                .expiration_ms
                .is_some_and(|expires| expires > now_ms().saturating_add(margin))
            {
                return Ok(credentials.clone());
            }
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// Where the store service gets the credentials it hands to the enclave.
#[derive(Debug)]
pub enum CredentialsSource {
    /// IMDSv2.
    Imds(ImdsCredentials),
    /// Fixed credentials read at start.
    Static(AwsCredentials),
}

impl CredentialsSource {
    /// The source `spec` names; `profile` for static files, `imds_endpoint` for IMDS.
    pub fn open(
        spec: &CredentialsSpec,
        profile: &str,
        imds_endpoint: &str,
    ) -> Result<Self, CredentialsError> {
        match spec {
            CredentialsSpec::Imds => Ok(Self::Imds(ImdsCredentials::new(imds_endpoint)?)),
            CredentialsSpec::Static(path) => Ok(Self::Static(read_profile(path, profile)?)),
        }
    }

    /// Current credentials.
    pub async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        match self {
            Self::Imds(imds) => imds.credentials().await,
            Self::Static(credentials) => Ok(credentials.clone()),
        }
    }
}
