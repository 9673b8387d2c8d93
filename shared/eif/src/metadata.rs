//! The metadata section (format version 4): JSON describing the image and its build.
//!
//! Field names are those of nitro-cli's `EifIdentityInfo` and `EifBuildInfo`. The metadata is
//! not measured: it may differ between two builds (it records the build time) while the PCRs
//! stay the same.

use serde::{Deserialize, Serialize};

/// The identity document nitro-cli writes into the metadata section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Image name (`--name`, or the Docker image name).
    #[serde(rename = "ImageName")]
    pub image_name: String,
    /// Image version (`--version`, or `1.0`).
    #[serde(rename = "ImageVersion")]
    pub image_version: String,
    /// How and when the image was built.
    #[serde(rename = "BuildMetadata")]
    pub build: BuildInfo,
    /// What Docker reported about the source image.
    #[serde(rename = "DockerInfo")]
    pub docker_info: serde_json::Value,
    /// User-supplied JSON (`--metadata FILE`), `null` when none.
    #[serde(rename = "CustomMetadata")]
    pub custom: serde_json::Value,
}

/// The build record inside [`Metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// RFC 3339 build time.
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    /// The tool that built the image (e.g. `nitro-cli`).
    #[serde(rename = "BuildTool")]
    pub build_tool: String,
    /// Its version.
    #[serde(rename = "BuildToolVersion")]
    pub build_tool_version: String,
    /// The enclave kernel's OS (e.g. `Linux`).
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    /// The enclave kernel's version.
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
}

impl Metadata {
    /// Reads the metadata section's bytes.
    pub fn parse(section: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(section)
    }
}
