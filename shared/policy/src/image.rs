//! Enclave images as governed state: which images (PCR sets) may continue the log.
//!
//! An image is named by its PCR0, PCR1 and PCR2, and PCR8 when the image is signed and the
//! admitting party wants the signing certificate pinned too ([`ImagePcrs`]). The log starts
//! with one admitted image, the genesis image; every other image is admitted (or retired)
//! only by an approved `admitImage` (`retireImage`) command, the governed operation
//! `imageChange` (SPEC-policy section 6, docs/policy-state.md). Its approvers must hold the
//! built-in Owner role at `/`, at least two of them, none the requester.
//!
//! The ledger tells the state which image wrote each `enclave_start` record
//! ([`Event::ImageStarted`]): an image that is not admitted at that point of the log cannot
//! start, and the image currently writing the log cannot be retired.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::approval::{ApprovalPolicy, ApprovalSetting, MAX_MINIMUM_APPROVERS};
use crate::ids::{ApprovalId, PrincipalId, RoleId};
use crate::refusal::{Invalid, Problem, RecordKind};
use crate::scope::Scope;
use crate::state::PolicyState;
use crate::time::Timestamp;

/// Bytes of a PCR (SHA-384).
pub const PCR_LEN: usize = 48;

/// The fewest approvers an image change may require: an image decides which code holds the
/// log key, so no single principal may choose one.
pub const MIN_IMAGE_CHANGE_APPROVERS: u32 = 2;

/// One PCR value: 48 bytes, written as 96 lower-case hex digits (read in any case).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pcr([u8; PCR_LEN]);

impl Pcr {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; PCR_LEN] {
        &self.0
    }

    /// A PCR from its bytes; `None` unless exactly 48.
    pub fn from_slice(bytes: &[u8]) -> Option<Pcr> {
        <[u8; PCR_LEN]>::try_from(bytes).ok().map(Pcr)
    }

    /// Parses 96 hex digits, in either case.
    pub fn from_hex(text: &str) -> Result<Pcr, ImageError> {
        let bytes = hex::decode(text.trim()).map_err(|_| ImageError::NotHex)?;
        Pcr::from_slice(&bytes).ok_or(ImageError::Length(bytes.len()))
    }

    /// 96 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
}

impl fmt::Debug for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Pcr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Pcr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pcr::from_hex(&text).map_err(D::Error::custom)
    }
}

/// Why a PCR set is not an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageError {
    /// Not hex.
    #[error("a PCR must be 96 hex digits")]
    NotHex,
    /// Hex of the wrong length.
    #[error("a PCR is 48 bytes (96 hex digits), not {0}")]
    Length(usize),
    /// PCR0, 1 or 2 missing.
    #[error("PCR{0} is missing: an image is named by PCR0, PCR1 and PCR2 (and PCR8 when signed)")]
    Missing(u16),
    /// PCR0, 1 and 2 all zero: a debug-mode enclave, whose memory its parent can read.
    #[error(
        "PCR0, PCR1 and PCR2 are all zero: that is a debug-mode enclave, open to its parent \
         instance; it cannot be admitted"
    )]
    DebugMode,
}

/// An enclave image as the log admits it: PCR0, PCR1, PCR2, and optionally PCR8.
///
/// An attestation document shows the image when its PCR0–2 are these and, if PCR8 is
/// given here, its PCR8 too ([`ImagePcrs::matches`]). Two admitted images never share
/// PCR0–2, so a document matches at most one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePcrs {
    /// The whole image (kernel, command line, ramdisks).
    #[serde(rename = "PCR0")]
    pub pcr0: Pcr,
    /// The kernel and bootstrap.
    #[serde(rename = "PCR1")]
    pub pcr1: Pcr,
    /// The application.
    #[serde(rename = "PCR2")]
    pub pcr2: Pcr,
    /// The signing certificate, for signed images, when pinned.
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<Pcr>,
}

impl fmt::Debug for ImagePcrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ImagePcrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PCR0={} PCR1={} PCR2={}",
            self.pcr0, self.pcr1, self.pcr2
        )?;
        if let Some(pcr8) = &self.pcr8 {
            write!(f, " PCR8={pcr8}")?;
        }
        Ok(())
    }
}

impl ImagePcrs {
    /// The image from PCRs by index (a measurements file, or a document's PCRs): PCR0–2
    /// required; PCR8 taken when present and not all zero (an unsigned image's PCR8 is
    /// zero). Other PCRs are ignored.
    pub fn from_pcrs<'a>(
        pcrs: impl IntoIterator<Item = (u16, &'a [u8])>,
    ) -> Result<ImagePcrs, ImageError> {
        let mut found: BTreeMap<u16, Pcr> = BTreeMap::new();
        for (index, value) in pcrs {
            if matches!(index, 0 | 1 | 2 | 8) {
                let pcr = Pcr::from_slice(value).ok_or(ImageError::Length(value.len()))?;
                found.insert(index, pcr);
            }
        }
        let take = |index| found.get(&index).copied().ok_or(ImageError::Missing(index));
        Ok(ImagePcrs {
            pcr0: take(0)?,
            pcr1: take(1)?,
            pcr2: take(2)?,
            pcr8: found.get(&8).copied().filter(|p| !p.is_zero()),
        })
    }

    /// Whether PCR0, 1 and 2 are all zero (debug mode).
    pub fn is_debug_mode(&self) -> bool {
        self.pcr0.is_zero() && self.pcr1.is_zero() && self.pcr2.is_zero()
    }

    /// Whether an enclave whose (document's) image is `running` is this image: PCR0–2
    /// equal, and PCR8 equal when this one pins it.
    pub fn matches(&self, running: &ImagePcrs) -> bool {
        self.same_base(running) && self.pcr8.is_none_or(|pcr8| running.pcr8 == Some(pcr8))
    }

    /// Whether PCR0–2 are equal.
    pub fn same_base(&self, other: &ImagePcrs) -> bool {
        self.pcr0 == other.pcr0 && self.pcr1 == other.pcr1 && self.pcr2 == other.pcr2
    }

    /// The PCRs by index, as a measurements document and the key policy use them.
    pub fn by_index(&self) -> Vec<(u16, Pcr)> {
        let mut pcrs = vec![(0, self.pcr0), (1, self.pcr1), (2, self.pcr2)];
        pcrs.extend(self.pcr8.map(|p| (8, p)));
        pcrs
    }

    /// A short name for messages: the first 16 hex digits of PCR0.
    pub fn short(&self) -> String {
        self.pcr0.to_hex().chars().take(16).collect()
    }
}

/// Images for a message: each in full, `; ` between them, `none` for none.
pub(crate) fn list(images: &[ImagePcrs]) -> String {
    if images.is_empty() {
        return "none".to_owned();
    }
    images
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An admitted image, and what admitted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmittedImage {
    /// The image.
    pub pcrs: ImagePcrs,
    /// When it was admitted: the time of the approval that admitted it, or of the log's
    /// first `enclave_start` for the genesis image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<Timestamp>,
    /// The approval that admitted it; none for the genesis image (the first to start, or
    /// one the genesis document names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<ApprovalId>,
}

/// The image change setting by default: Required, two approvers.
pub fn default_image_change() -> ApprovalSetting {
    ApprovalSetting {
        approval_policy: ApprovalPolicy::Required,
        minimum_approvers_required: MIN_IMAGE_CHANGE_APPROVERS,
        mandatory_approvers: Default::default(),
    }
}

/// The root's `approvalSettings`: only `imageChange` lives at `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RootApprovalSettings {
    /// Admitting or retiring an image; Required with at least two approvers when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_change: Option<ApprovalSetting>,
    /// Replacing the witness set; Required with at least two approvers when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_change: Option<ApprovalSetting>,
}

impl RootApprovalSettings {
    /// The setting in force.
    pub fn image_change(&self) -> ApprovalSetting {
        self.image_change
            .clone()
            .unwrap_or_else(default_image_change)
    }

    /// The witness change setting in force.
    pub fn witness_change(&self) -> ApprovalSetting {
        self.witness_change
            .clone()
            .unwrap_or_else(crate::witness::default_witness_change)
    }
}

/// Images.
impl PolicyState {
    /// Every admitted image, in order of its PCRs.
    pub fn images(&self) -> impl Iterator<Item = &AdmittedImage> {
        self.images.values()
    }

    /// The admitted image that an enclave showing `running` is, if any.
    pub fn admitted_image(&self, running: &ImagePcrs) -> Option<&AdmittedImage> {
        self.images.values().find(|i| i.pcrs.matches(running))
    }

    /// The image of the last `enclave_start` the ledger reported: the one writing the log.
    pub fn running_image(&self) -> Option<&ImagePcrs> {
        self.running_image.as_ref()
    }

    /// The witness set the log requires, if any (`policy.witnesses`, then the last
    /// approved `setWitnesses`).
    pub fn witnesses(&self) -> Option<&crate::witness::WitnessSet> {
        self.witnesses.as_ref()
    }

    /// The root's approval settings (`imageChange`, `witnessChange`).
    pub fn root_approval_settings(&self) -> &RootApprovalSettings {
        &self.root_approval_settings
    }

    /// Whether `principal` holds the built-in Owner role at `/` at `at`: by an assignment in
    /// force or an active activation, to it or to a group it belongs to. The approvers of
    /// an image change must (SPEC-policy section 6, `imageChange`).
    pub fn holds_owner_at_root(&self, principal: &PrincipalId, at: Timestamp) -> bool {
        let Ok(owner) = RoleId::new("Owner") else {
            return false;
        };
        let closure = self.index.closure(principal);
        let root = Scope::root();
        let assigned = self.role_assignments.values().any(|a| {
            a.scope == root
                && a.role_definition_id == owner
                && a.active_at(at)
                && closure.contains(&a.principal_id)
        });
        assigned
            || self.activations.values().any(|activation| {
                activation.active_at(at)
                    && activation.principal_id == *principal
                    && self
                        .eligible
                        .get(&activation.eligible_assignment_id)
                        .is_some_and(|e| e.scope == root && e.role_definition_id == owner)
            })
    }

    /// The rules of an image an `admitImage` command admits: those of any admission, and
    /// never a debug-mode image (whether a log may start in debug mode is the verifiers'
    /// choice, `--allow-debug`; admitting one later is never).
    pub(crate) fn check_admission_command(&self, pcrs: &ImagePcrs) -> Result<(), Invalid> {
        if pcrs.is_debug_mode() {
            return Err(Invalid::at("image", Problem::Image(ImageError::DebugMode)));
        }
        self.check_admission(pcrs)
    }

    /// The rules of an image about to be admitted: no admitted image has its PCR0–2.
    pub(crate) fn check_admission(&self, pcrs: &ImagePcrs) -> Result<(), Invalid> {
        if let Some(admitted) = self.images.values().find(|i| i.pcrs.same_base(pcrs)) {
            return Err(Invalid::at(
                "image",
                Problem::AlreadyExists {
                    what: RecordKind::Image,
                    id: admitted.pcrs.to_string(),
                },
            ));
        }
        Ok(())
    }

    /// The rules of an image about to be retired: admitted, not the last, not the one
    /// writing the log.
    pub(crate) fn check_retirement(&self, pcrs: &ImagePcrs) -> Result<(), Invalid> {
        if !self.images.contains_key(pcrs) {
            return Err(Invalid::at(
                "image",
                Problem::NotFound {
                    what: RecordKind::Image,
                    id: pcrs.to_string(),
                },
            ));
        }
        if self.images.len() <= 1 {
            return Err(Invalid::at("image", Problem::LastImage(pcrs.short())));
        }
        if self.running_image.as_ref().is_some_and(|r| pcrs.matches(r)) {
            return Err(Invalid::at("image", Problem::ImageRunning(pcrs.short())));
        }
        Ok(())
    }

    /// The rule of an enclave start: its image is admitted now.
    pub fn check_start(&self, running: &ImagePcrs) -> Result<(), Invalid> {
        if self.admitted_image(running).is_some() {
            return Ok(());
        }
        Err(Invalid::at(
            "image",
            Problem::ImageNotAdmitted {
                image: Box::new(running.clone()),
                admitted: self.images.keys().cloned().collect(),
            },
        ))
    }

    /// The rules of the root's approval settings: `imageChange` Required, with at least
    /// [`MIN_IMAGE_CHANGE_APPROVERS`], its mandatory approvers known.
    pub(crate) fn check_root_approval_settings(
        &self,
        settings: &RootApprovalSettings,
    ) -> Result<(), Invalid> {
        self.check_root_setting(
            "imageChange",
            settings.image_change.as_ref(),
            MIN_IMAGE_CHANGE_APPROVERS,
            Problem::ImageChangeTooLoose,
        )?;
        self.check_root_setting(
            "witnessChange",
            settings.witness_change.as_ref(),
            crate::witness::MIN_WITNESS_CHANGE_APPROVERS,
            Problem::WitnessChangeTooLoose,
        )
    }

    /// One setting at `/`: Required, with `min` to [`MAX_MINIMUM_APPROVERS`] approvers, its
    /// mandatory approvers known.
    fn check_root_setting(
        &self,
        key: &str,
        setting: Option<&ApprovalSetting>,
        min: u32,
        too_loose: Problem,
    ) -> Result<(), Invalid> {
        let Some(setting) = setting else {
            return Ok(());
        };
        if setting.approval_policy != ApprovalPolicy::Required
            || setting.minimum_approvers_required < min
        {
            return Err(Invalid::at(key, too_loose));
        }
        if setting.minimum_approvers_required > MAX_MINIMUM_APPROVERS {
            return Err(Invalid::at(
                format!("{key}.minimumApproversRequired"),
                Problem::OutOfRange {
                    value: u64::from(setting.minimum_approvers_required),
                    min: u64::from(min),
                    max: u64::from(MAX_MINIMUM_APPROVERS),
                },
            ));
        }
        self.known_principals(
            &format!("{key}.mandatoryApprovers"),
            &setting.mandatory_approvers,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcr(byte: u8) -> Pcr {
        Pcr([byte; PCR_LEN])
    }

    fn image(a: u8, b: u8, c: u8, d: Option<u8>) -> ImagePcrs {
        ImagePcrs {
            pcr0: pcr(a),
            pcr1: pcr(b),
            pcr2: pcr(c),
            pcr8: d.map(pcr),
        }
    }

    #[test]
    fn pcrs_are_written_lower_case_and_read_in_any_case() {
        let json = format!(
            r#"{{"PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
            "AB".repeat(48),
            "cd".repeat(48),
            "Ef".repeat(48)
        );
        let read: ImagePcrs = serde_json::from_str(&json).unwrap();
        assert_eq!(read, image(0xab, 0xcd, 0xef, None));
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            format!(
                r#"{{"PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
                "ab".repeat(48),
                "cd".repeat(48),
                "ef".repeat(48)
            )
        );
        let short = json.replace(&"cd".repeat(48), "cdcd");
        assert!(serde_json::from_str::<ImagePcrs>(&short).is_err());
        let extra = json.replace('}', r#","PCR3":"00"}"#);
        assert!(serde_json::from_str::<ImagePcrs>(&extra).is_err());
    }

    #[test]
    fn a_document_image_takes_pcr8_only_when_set() {
        let zero = [0u8; PCR_LEN];
        let one = [1u8; PCR_LEN];
        let two = [2u8; PCR_LEN];
        let pcrs = [
            (0u16, &one[..]),
            (1, &one[..]),
            (2, &two[..]),
            (3, &two[..]),
        ];
        let unsigned = ImagePcrs::from_pcrs(pcrs.iter().copied().chain([(8, &zero[..])])).unwrap();
        assert_eq!(unsigned, image(1, 1, 2, None));
        let signed = ImagePcrs::from_pcrs(pcrs.iter().copied().chain([(8, &two[..])])).unwrap();
        assert_eq!(signed, image(1, 1, 2, Some(2)));
        assert_eq!(
            ImagePcrs::from_pcrs([(0u16, &one[..]), (1, &one[..])]),
            Err(ImageError::Missing(2))
        );
        // PCR8 pinned only when the admitted set names it.
        assert!(image(1, 1, 2, None).matches(&signed));
        assert!(image(1, 1, 2, Some(2)).matches(&signed));
        assert!(!image(1, 1, 2, Some(3)).matches(&signed));
        assert!(!image(1, 1, 2, Some(2)).matches(&unsigned));
        assert!(!image(1, 1, 3, None).matches(&unsigned));
    }
}
