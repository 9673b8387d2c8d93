//! Verification of AWS Signature Version 4 on an incoming request, as KMS does it: the
//! canonical request, the string to sign, the derived signing key, a constant-time
//! comparison, the credential scope and a clock-skew window.
//!
//! A pure function: the time is an argument, the credentials a table the caller holds.
//! Failures carry the error code KMS answers with ([`SigV4Error::kms_error_type`]).
//!
//! ```
//! use ea_kms::sigv4::{Credential, SigV4Verifier, SignedRequest, SigV4Error};
//!
//! let verifier = SigV4Verifier::new("eu-west-1", "kms", [Credential {
//!     access_key_id: "AKIDEXAMPLE".into(),
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned().into(),
//!     session_token: None,
//!     principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
//! }]);
//! let request = SignedRequest {
//!     method: "POST",
//!     path: "/",
//!     query: "",
//!     headers: &[("host".into(), b"localhost".to_vec())],
//!     body: b"{}",
//! };
//! // No Authorization header: KMS's MissingAuthenticationTokenException.
//! let error = verifier.verify(&request, 1_700_000_000).unwrap_err();
//! assert!(matches!(error, SigV4Error::MissingAuthentication));
//! assert_eq!(error.kms_error_type(), "MissingAuthenticationTokenException");
//! ```

use std::collections::BTreeMap;

use ring::{digest, hmac};
use zeroize::Zeroizing;

/// The only algorithm KMS takes.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `X-Amz-Date` may be from the verifier's clock (AWS: 5 minutes).
pub const MAX_CLOCK_SKEW_SECS: u64 = 5 * 60;

/// A credential the verifier accepts, and the principal it authenticates.
#[derive(Clone)]
pub struct Credential {
    /// The access key id (`AKIA...` or, with a session token, `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// The session token a request must carry (`X-Amz-Security-Token`), for temporary
    /// credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// The caller's ARN, for key policies (for an instance role:
    /// `arn:aws:sts::<account>:assumed-role/<role>/<instance id>`).
    pub principal_arn: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never appear in logs.
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<set>"),
            )
            .field("principal_arn", &self.principal_arn)
            .finish_non_exhaustive()
    }
}

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent (percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The query string without `?` (empty if none).
    pub query: &'a str,
    /// Every header, names in any case, in the order received.
    pub headers: &'a [(String, Vec<u8>)],
    /// The body.
    pub body: &'a [u8],
}

/// Who a verified request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id it was signed with.
    pub access_key_id: String,
    /// The principal the credential authenticates.
    pub principal_arn: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    /// The `Authorization` header or the date header is malformed or incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id, or the session token that goes with it, is unknown.
    #[error("The security token included in the request is invalid.")]
    UnknownCredential,
    /// The scope (date, region, service) does not fit this service.
    #[error("{0}")]
    Scope(String),
    /// The request's time is outside the allowed skew.
    #[error(
        "Signature expired: {request_time} is now outside the {window_secs} s window around {now}"
    )]
    Expired {
        /// `X-Amz-Date` of the request.
        request_time: String,
        /// The verifier's time, same format.
        now: String,
        /// The allowed skew.
        window_secs: u64,
    },
    /// The signature is not the one the secret gives.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

impl SigV4Error {
    /// The `__type` KMS answers with.
    pub fn kms_error_type(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthentication => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownCredential => "UnrecognizedClientException",
            SigV4Error::Scope(_) | SigV4Error::Expired { .. } | SigV4Error::Mismatch => {
                "InvalidSignatureException"
            }
        }
    }
}

/// Verifies SigV4 signatures for one region and service against a credentials table.
pub struct SigV4Verifier {
    region: String,
    service: String,
    credentials: BTreeMap<String, Credential>,
    max_skew_secs: u64,
}

impl std::fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("region", &self.region)
            .field("service", &self.service)
            .field(
                "access_key_ids",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn incomplete(message: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(message.into())
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| incomplete(format!("Authorization header must start with {ALGORITHM}")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else {
            return Err(incomplete(format!(
                "Authorization header has an unknown element {:?}",
                part.split('=').next().unwrap_or_default()
            )));
        }
    }
    let missing: Vec<&str> = [
        ("Credential", credential.is_none()),
        ("SignedHeaders", signed_headers.is_none()),
        ("Signature", signature.is_none()),
    ]
    .iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| *name)
    .collect();
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(format!(
            "Authorization header requires {} parameter(s)",
            missing.join(", ")
        )));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(
            "Credential must be <access key id>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if *terminator != "aws4_request" {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'"
        )));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Seconds since the Unix epoch of `YYYYMMDD'T'HHMMSS'Z'`.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), for years from 1970 on.
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let m = (month + 9) % 12;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYYMMDD'T'HHMMSS'Z'` of seconds since the Unix epoch.
fn format_amz_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` when
/// `keep_slash`), as SigV4 requires.
fn uri_encode(text: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value trimmed, with runs of spaces collapsed.
fn normalize_value(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

impl SigV4Verifier {
    /// A verifier for `service` (`kms`) in `region`, accepting `credentials`.
    pub fn new(
        region: impl Into<String>,
        service: impl Into<String>,
        credentials: impl IntoIterator<Item = Credential>,
    ) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            credentials: credentials
                .into_iter()
                .map(|c| (c.access_key_id.clone(), c))
                .collect(),
            max_skew_secs: MAX_CLOCK_SKEW_SECS,
        }
    }

    /// Values of header `name` (lower case), in order.
    fn header_values<'a>(request: &'a SignedRequest<'_>, name: &str) -> Vec<&'a [u8]> {
        request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    fn single_header<'a>(
        request: &'a SignedRequest<'_>,
        name: &str,
    ) -> Result<Option<&'a str>, SigV4Error> {
        match Self::header_values(request, name).as_slice() {
            [] => Ok(None),
            [one] => std::str::from_utf8(one)
                .map(Some)
                .map_err(|_| incomplete(format!("the {name} header is not text"))),
            _ => Err(incomplete(format!("more than one {name} header"))),
        }
    }

    /// Verifies `request` at `now` (seconds since the Unix epoch) and says who sent it.
    pub fn verify(&self, request: &SignedRequest<'_>, now: u64) -> Result<Caller, SigV4Error> {
        let authorization = Self::single_header(request, "authorization")?
            .ok_or(SigV4Error::MissingAuthentication)?;
        let auth = parse_authorization(authorization)?;

        let amz_date = Self::single_header(request, "x-amz-date")?.ok_or_else(|| {
            incomplete("Authorization header requires existence of an 'X-Amz-Date' header")
        })?;
        let request_time = parse_amz_date(amz_date).ok_or_else(|| {
            incomplete(format!(
                "X-Amz-Date {amz_date:?} is not YYYYMMDD'T'HHMMSS'Z'"
            ))
        })?;
        if amz_date.get(..8) != Some(auth.date) {
            return Err(SigV4Error::Scope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
                auth.date,
                amz_date.get(..8).unwrap_or_default()
            )));
        }
        if auth.region != self.region {
            return Err(SigV4Error::Scope(format!(
                "Credential should be scoped to a valid region, not '{}'; this endpoint is '{}'",
                auth.region, self.region
            )));
        }
        if auth.service != self.service {
            return Err(SigV4Error::Scope(format!(
                "Credential should be scoped to correct service: '{}'",
                self.service
            )));
        }
        if request_time.abs_diff(now) > self.max_skew_secs {
            return Err(SigV4Error::Expired {
                request_time: amz_date.to_owned(),
                now: format_amz_date(now),
                window_secs: self.max_skew_secs,
            });
        }

        let credential = self
            .credentials
            .get(auth.access_key_id)
            .ok_or(SigV4Error::UnknownCredential)?;
        let token = Self::single_header(request, "x-amz-security-token")?;
        let token_ok = match (&credential.session_token, token) {
            (None, None) => true,
            // Compared by digest: the time taken says nothing about a guessed token.
            (Some(expected), Some(given)) => {
                crate::secrets_equal(expected.as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        if !token_ok {
            return Err(SigV4Error::UnknownCredential);
        }

        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        if signed
            .iter()
            .any(|h| h.is_empty() || *h != h.to_ascii_lowercase())
            || !signed.windows(2).all(|w| w.first() < w.get(1))
        {
            return Err(incomplete(
                "SignedHeaders must be sorted, lower-case and unique",
            ));
        }
        for required in ["host", "x-amz-date"]
            .into_iter()
            .chain(token.map(|_| "x-amz-security-token"))
        {
            if !signed.contains(&required) {
                return Err(SigV4Error::Scope(format!(
                    "'{required}' must be a signed header"
                )));
            }
        }
        let body_hash = sha256_hex(request.body);
        if let Some(declared) = Self::single_header(request, "x-amz-content-sha256")? {
            if declared != body_hash {
                return Err(SigV4Error::Mismatch);
            }
        }
        let mut canonical_headers = String::new();
        for name in &signed {
            let values = Self::header_values(request, name);
            if values.is_empty() {
                return Err(incomplete(format!(
                    "signed header '{name}' is not in the request"
                )));
            }
            let joined: Vec<String> = values.into_iter().map(normalize_value).collect();
            canonical_headers.push_str(&format!("{name}:{}\n", joined.join(",")));
        }
        let canonical_request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            request.method,
            uri_encode(request.path.as_bytes(), true),
            canonical_query(request.query),
            canonical_headers,
            auth.signed_headers,
            body_hash
        );
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let secret = Zeroizing::new(format!("AWS4{}", credential.secret_access_key.as_str()));
        let k_date = hmac_sha256(secret.as_bytes(), auth.date.as_bytes());
        let k_region = hmac_sha256(k_date.as_ref(), auth.region.as_bytes());
        let k_service = hmac_sha256(k_region.as_ref(), auth.service.as_bytes());
        let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
        let given = hex::decode(auth.signature).map_err(|_| SigV4Error::Mismatch)?;
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref()),
            string_to_sign.as_bytes(),
            &given,
        )
        .map_err(|_| SigV4Error::Mismatch)?;
        Ok(Caller {
            access_key_id: credential.access_key_id.clone(),
            principal_arn: credential.principal_arn.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        for (text, secs) in [
            ("19700101T000000Z", 0),
            ("20150830T123600Z", 1_440_938_160),
            ("20240229T235959Z", 1_709_251_199),
            ("21000301T000000Z", 4_107_542_400),
        ] {
            assert_eq!(parse_amz_date(text), Some(secs), "{text}");
            assert_eq!(format_amz_date(secs), text);
        }
        for bad in [
            "20150830T123600",
            "2015083OT123600Z",
            "20151330T000000Z",
            "",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_and_path_are_canonical() {
        assert_eq!(canonical_query("b=2&a=%2f&c"), "a=%2F&b=2&c=");
        assert_eq!(uri_encode(b"/a b/c", true), "/a%20b/c");
    }
}
