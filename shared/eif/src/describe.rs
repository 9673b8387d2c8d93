//! The JSON description of an image, in the shape `nitro-cli describe-eif` prints:
//!
//! ```json
//! { "EifVersion": 4,
//!   "Measurements": { "HashAlgorithm": "Sha384 { ... }", "PCR0": "...", "PCR1": "...", "PCR2": "..." },
//!   "IsSigned": false, "CheckCRC": true,
//!   "ImageName": "...", "ImageVersion": "...",
//!   "Metadata": { "BuildTime": "...", "BuildTool": "...", "BuildToolVersion": "...",
//!                 "OperatingSystem": "...", "KernelVersion": "...", "DockerInfo": {...}, ...custom },
//!   "Architecture": "x86_64", "Sections": [ { "Type": "Kernel", "Offset": 548, "Size": ..., "Flags": 0 }, ... ] }
//! ```
//!
//! Signed images add `"SigningCertificate"` (issuer, algorithm, validity, signature in the
//! format nitro-cli derives from OpenSSL) and `"SignatureCheck"`. `"Architecture"`,
//! `"DefaultMemory"`, `"DefaultCpus"`, `"Sections"` and `"SignatureCheckError"` are ours;
//! nitro-cli does not print them. `"CheckCRC"` is always `true`: an image whose CRC does not
//! match is refused before it can be described.

use std::collections::BTreeMap;

use der::asn1::ObjectIdentifier;
use der::{Tag, Tagged};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::image::Eif;
use crate::measurements::Measurements;
use crate::metadata::Metadata;

/// Everything `govctl eif inspect` prints about an image.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// Format version.
    #[serde(rename = "EifVersion")]
    pub version: u16,
    /// PCR0, 1, 2 (and 8 when signed).
    #[serde(rename = "Measurements")]
    pub measurements: Measurements,
    /// Whether a signature section is present.
    #[serde(rename = "IsSigned")]
    pub is_signed: bool,
    /// The signing certificate, for signed images.
    #[serde(rename = "SigningCertificate", skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<CertificateInfo>,
    /// Whether the CRC matched (always true for a parsed image).
    #[serde(rename = "CheckCRC")]
    pub crc_check: bool,
    /// For signed images: the signature is valid and signs PCR0.
    #[serde(rename = "SignatureCheck", skip_serializing_if = "Option::is_none")]
    pub signature_check: Option<bool>,
    /// Why the signature check failed, when it did.
    #[serde(
        rename = "SignatureCheckError",
        skip_serializing_if = "Option::is_none"
    )]
    pub signature_check_error: Option<String>,
    /// From the metadata section.
    #[serde(rename = "ImageName", skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// From the metadata section.
    #[serde(rename = "ImageVersion", skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    /// The metadata section, flattened as nitro-cli prints it.
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataDescription>,
    /// `x86_64` or `aarch64`.
    #[serde(rename = "Architecture")]
    pub architecture: &'static str,
    /// Default memory in the header, in bytes.
    #[serde(rename = "DefaultMemory")]
    pub default_memory: u64,
    /// Default vCPUs in the header.
    #[serde(rename = "DefaultCpus")]
    pub default_cpus: u64,
    /// The sections in file order.
    #[serde(rename = "Sections")]
    pub sections: Vec<SectionDescription>,
}

/// One entry of [`Description::sections`].
#[derive(Debug, Clone, Serialize)]
pub struct SectionDescription {
    /// Section kind name.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// Offset of the section header.
    #[serde(rename = "Offset")]
    pub offset: u64,
    /// Data size in bytes.
    #[serde(rename = "Size")]
    pub size: usize,
    /// Section header flags.
    #[serde(rename = "Flags")]
    pub flags: u16,
}

/// The metadata as nitro-cli prints it: build fields at the top, custom metadata keys merged
/// in (or under `CustomMetadata` when it is not a JSON object).
#[derive(Debug, Clone)]
pub struct MetadataDescription(pub Metadata);

impl Serialize for MetadataDescription {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let meta = &self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("BuildTime", &meta.build.build_time)?;
        map.serialize_entry("BuildTool", &meta.build.build_tool)?;
        map.serialize_entry("BuildToolVersion", &meta.build.build_tool_version)?;
        map.serialize_entry("OperatingSystem", &meta.build.operating_system)?;
        map.serialize_entry("KernelVersion", &meta.build.kernel_version)?;
        map.serialize_entry("DockerInfo", &meta.docker_info)?;
        match &meta.custom {
            serde_json::Value::Null => {}
            serde_json::Value::Object(custom) => {
                for (key, value) in custom {
                    map.serialize_entry(key, value)?;
                }
            }
            other => map.serialize_entry("CustomMetadata", other)?,
        }
        map.end()
    }
}

/// The signing certificate, in the fields and formats nitro-cli prints.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    /// Issuer attributes by OpenSSL long name (`commonName`, `organizationName`, ...).
    #[serde(rename = "IssuerName")]
    pub issuer_name: BTreeMap<String, String>,
    /// Signature algorithm name (e.g. `ecdsa-with-SHA384`).
    #[serde(rename = "Algorithm")]
    pub algorithm: String,
    /// Start of validity, OpenSSL style (`Jan  2 03:04:05 2025 GMT`).
    #[serde(rename = "NotBefore")]
    pub not_before: String,
    /// End of validity, OpenSSL style.
    #[serde(rename = "NotAfter")]
    pub not_after: String,
    /// The certificate's signature as colon-separated upper-case hex.
    #[serde(rename = "Signature")]
    pub signature: String,
}

impl CertificateInfo {
    /// Extracts the printed fields from a certificate.
    pub fn from_certificate(certificate: &Certificate) -> Self {
        let tbs = &certificate.tbs_certificate;
        let mut issuer_name = BTreeMap::new();
        for rdn in &tbs.issuer.0 {
            for attribute in rdn.0.iter() {
                issuer_name.insert(
                    oid_name(&attribute.oid),
                    attribute_text(attribute.value.tag(), attribute.value.value()),
                );
            }
        }
        let signature = certificate
            .signature
            .raw_bytes()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Self {
            issuer_name,
            algorithm: oid_name(&certificate.signature_algorithm.oid),
            not_before: openssl_time(&tbs.validity.not_before),
            not_after: openssl_time(&tbs.validity.not_after),
            signature,
        }
    }
}

impl Description {
    /// Describes a parsed image.
    pub fn of(eif: &Eif<'_>) -> Self {
        let header = eif.header();
        let check = eif.check_signature();
        let metadata = eif.metadata().cloned();
        Self {
            version: eif.version(),
            measurements: eif.measurements(),
            is_signed: eif.signature().is_some(),
            signing_certificate: eif
                .signature()
                .map(|signature| CertificateInfo::from_certificate(signature.certificate())),
            crc_check: true,
            signature_check: check.as_ref().map(Result::is_ok),
            signature_check_error: check.and_then(Result::err).map(|error| error.to_string()),
            image_name: metadata.as_ref().map(|meta| meta.image_name.clone()),
            image_version: metadata.as_ref().map(|meta| meta.image_version.clone()),
            metadata: metadata.map(MetadataDescription),
            architecture: header.architecture().name(),
            default_memory: header.default_mem,
            default_cpus: header.default_cpus,
            sections: eif
                .sections()
                .iter()
                .map(|section| SectionDescription {
                    kind: section.kind.name(),
                    offset: section.offset,
                    size: section.data.len(),
                    flags: section.flags,
                })
                .collect(),
        }
    }
}

/// OpenSSL's long name for the OIDs a signing certificate commonly carries; the dotted form
/// otherwise, as OpenSSL prints unknown OIDs.
fn oid_name(oid: &ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "2.5.4.3" => "commonName",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "countryName",
        "2.5.4.7" => "localityName",
        "2.5.4.8" => "stateOrProvinceName",
        "2.5.4.9" => "streetAddress",
        "2.5.4.10" => "organizationName",
        "2.5.4.11" => "organizationalUnitName",
        "2.5.4.17" => "postalCode",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "domainComponent",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.3.101.112" => "ED25519",
        other => return other.to_owned(),
    };
    name.to_owned()
}

/// A directory-string attribute value as text; other encodings in hex.
fn attribute_text(tag: Tag, value: &[u8]) -> String {
    match tag {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::TeletexString
        | Tag::VisibleString => String::from_utf8_lossy(value).into_owned(),
        _ => hex::encode(value),
    }
}

/// `Mmm dd hh:mm:ss yyyy GMT` with the day padded by a space, as OpenSSL prints ASN1_TIME.
fn openssl_time(time: &Time) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = time.to_date_time();
    let month = MONTHS
        .get(usize::from(t.month()).saturating_sub(1))
        .copied()
        .unwrap_or("???");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02} {} GMT",
        t.day(),
        t.hour(),
        t.minutes(),
        t.seconds(),
        t.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BuildInfo;
    use crate::writer::EifBuilder;
    use der::DateTime;
    use x509_cert::der::asn1::UtcTime;

    fn metadata(custom: serde_json::Value) -> Metadata {
        Metadata {
            image_name: "enclave-app".into(),
            image_version: "1.0".into(),
            build: BuildInfo {
                build_time: "2025-01-02T03:04:05+00:00".into(),
                build_tool: "nitro-cli".into(),
                build_tool_version: "1.4.2".into(),
                operating_system: "Linux".into(),
                kernel_version: "6.12".into(),
            },
            docker_info: serde_json::json!({"Id": "sha256:00"}),
            custom,
        }
    }

    fn describe(custom: serde_json::Value) -> serde_json::Value {
        let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
            .metadata(metadata(custom))
            .ramdisk(b"init".to_vec())
            .build()
            .unwrap();
        let eif = Eif::parse(&bytes).unwrap();
        serde_json::to_value(Description::of(&eif)).unwrap()
    }

    #[test]
    fn unsigned_image_has_nitro_cli_s_keys() {
        let json = describe(serde_json::json!({"team": "platform"}));
        assert_eq!(json["EifVersion"], 4);
        assert_eq!(json["IsSigned"], false);
        assert_eq!(json["CheckCRC"], true);
        assert_eq!(json["ImageName"], "enclave-app");
        assert_eq!(json["ImageVersion"], "1.0");
        assert_eq!(json["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
        assert_eq!(json["Measurements"]["PCR0"].as_str().unwrap().len(), 96);
        assert!(json["Measurements"].get("PCR8").is_none());
        assert!(json.get("SigningCertificate").is_none());
        assert!(json.get("SignatureCheck").is_none());
        // Custom metadata keys are merged into "Metadata", as nitro-cli's flatten does.
        assert_eq!(json["Metadata"]["team"], "platform");
        assert_eq!(json["Metadata"]["BuildTool"], "nitro-cli");
        assert_eq!(json["Metadata"]["DockerInfo"]["Id"], "sha256:00");
        assert!(json["Metadata"].get("CustomMetadata").is_none());
        let sections: Vec<&str> = json["Sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Type"].as_str().unwrap())
            .collect();
        assert_eq!(sections, ["Kernel", "Cmdline", "Metadata", "Ramdisk"]);
        assert_eq!(json["Sections"][0]["Offset"], 548);
        assert_eq!(json["Architecture"], "x86_64");
    }

    #[test]
    fn null_custom_metadata_is_omitted_and_non_objects_are_kept_whole() {
        let json = describe(serde_json::Value::Null);
        assert!(json["Metadata"].get("CustomMetadata").is_none());
        let json = describe(serde_json::json!([1, 2]));
        assert_eq!(
            json["Metadata"]["CustomMetadata"],
            serde_json::json!([1, 2])
        );
    }

    #[test]
    fn times_print_as_openssl_does() {
        let time = |y, mo, d, h, mi, s| {
            Time::UtcTime(
                UtcTime::from_date_time(DateTime::new(y, mo, d, h, mi, s).unwrap()).unwrap(),
            )
        };
        assert_eq!(
            openssl_time(&time(2025, 1, 2, 3, 4, 5)),
            "Jan  2 03:04:05 2025 GMT"
        );
        assert_eq!(
            openssl_time(&time(2049, 12, 31, 23, 59, 59)),
            "Dec 31 23:59:59 2049 GMT"
        );
    }

    #[test]
    fn certificate_info_names_attributes_and_algorithm() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "EIF signer");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.not_before = rcgen::date_time_ymd(2025, 3, 4);
        let cert = params.self_signed(&key).unwrap();
        let parsed = crate::signature::certificate_from_pem(cert.pem().as_bytes())
            .unwrap()
            .0;
        let info = CertificateInfo::from_certificate(&parsed);
        assert_eq!(info.issuer_name["commonName"], "EIF signer");
        assert_eq!(info.issuer_name["organizationName"], "Example");
        assert_eq!(info.algorithm, "ecdsa-with-SHA384");
        assert_eq!(info.not_before, "Mar  4 00:00:00 2025 GMT");
        let signature = parsed.signature.raw_bytes();
        assert_eq!(info.signature.len(), signature.len() * 3 - 1);
        assert!(info
            .signature
            .split(':')
            .zip(signature)
            .all(|(text, byte)| text == format!("{byte:02X}")));
    }
}
