//! The SigV4 verifier against AWS's own signer (`aws-sigv4`, the one inside the SDK): what
//! it signs with the right secret passes; a wrong secret, key id, token, scope, time or an
//! altered request is refused with KMS's error code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use ea_kms::sigv4::{Credential, SigV4Error, SigV4Verifier, SignedRequest};

const NOW: u64 = 1_717_171_717;
const ARN: &str = "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-0abc";
const BODY: &[u8] = br#"{"KeyId":"alias/log","KeySpec":"AES_256"}"#;

fn credential(token: Option<&str>) -> Credential {
    Credential {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "the right secret".to_owned().into(),
        session_token: token.map(|t| t.to_owned().into()),
        principal_arn: ARN.into(),
    }
}

fn verifier(token: Option<&str>) -> SigV4Verifier {
    SigV4Verifier::new("eu-west-1", "kms", [credential(token)])
}

struct Signed {
    headers: Vec<(String, Vec<u8>)>,
}

fn signed(
    access_key_id: &str,
    secret: &str,
    token: Option<&str>,
    region: &str,
    at: u64,
    body: &[u8],
) -> Signed {
    let credentials = Credentials::new(
        access_key_id,
        secret,
        token.map(str::to_owned),
        None,
        "test",
    );
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kms")
        .time(UNIX_EPOCH + Duration::from_secs(at))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let base = [
        ("host", "kms.eu-west-1.amazonaws.com"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "TrentService.GenerateDataKey"),
    ];
    let request = SignableRequest::new(
        "POST",
        "https://kms.eu-west-1.amazonaws.com/",
        base.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut headers: Vec<(String, Vec<u8>)> = base
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.extend(
        instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec())),
    );
    Signed { headers }
}

fn verify(
    verifier: &SigV4Verifier,
    signed: &Signed,
    body: &[u8],
    now: u64,
) -> Result<String, SigV4Error> {
    verifier
        .verify(
            &SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &signed.headers,
                body,
            },
            now,
        )
        .map(|caller| caller.principal_arn)
}

#[test]
fn a_request_signed_with_the_right_secret_passes() {
    let request = signed(
        "ASIAEXAMPLE",
        "the right secret",
        None,
        "eu-west-1",
        NOW,
        BODY,
    );
    assert_eq!(verify(&verifier(None), &request, BODY, NOW).unwrap(), ARN);
    // Within the skew window either way.
    assert!(verify(&verifier(None), &request, BODY, NOW + 299).is_ok());
    assert!(verify(&verifier(None), &request, BODY, NOW - 299).is_ok());
    // With a session token, signed by the SDK as x-amz-security-token.
    let request = signed(
        "ASIAEXAMPLE",
        "the right secret",
        Some("token-1"),
        "eu-west-1",
        NOW,
        BODY,
    );
    assert_eq!(
        verify(&verifier(Some("token-1")), &request, BODY, NOW).unwrap(),
        ARN
    );
}

#[test]
fn refusals_carry_kms_error_codes() {
    let good = signed(
        "ASIAEXAMPLE",
        "the right secret",
        None,
        "eu-west-1",
        NOW,
        BODY,
    );
    let cases: Vec<(&str, Result<String, SigV4Error>, &str)> = vec![
        (
            "wrong secret",
            verify(
                &verifier(None),
                &signed(
                    "ASIAEXAMPLE",
                    "a wrong secret",
                    None,
                    "eu-west-1",
                    NOW,
                    BODY,
                ),
                BODY,
                NOW,
            ),
            "InvalidSignatureException",
        ),
        (
            "unknown access key id",
            verify(
                &verifier(None),
                &signed(
                    "ASIAOTHER",
                    "the right secret",
                    None,
                    "eu-west-1",
                    NOW,
                    BODY,
                ),
                BODY,
                NOW,
            ),
            "UnrecognizedClientException",
        ),
        (
            "altered body",
            verify(
                &verifier(None),
                &good,
                br#"{"KeyId":"alias/other","KeySpec":"AES_256"}"#,
                NOW,
            ),
            "InvalidSignatureException",
        ),
        (
            "signed for another region",
            verify(
                &verifier(None),
                &signed(
                    "ASIAEXAMPLE",
                    "the right secret",
                    None,
                    "us-east-1",
                    NOW,
                    BODY,
                ),
                BODY,
                NOW,
            ),
            "InvalidSignatureException",
        ),
        (
            "six minutes late",
            verify(&verifier(None), &good, BODY, NOW + 360),
            "InvalidSignatureException",
        ),
        (
            "token expected, none sent",
            verify(&verifier(Some("token-1")), &good, BODY, NOW),
            "UnrecognizedClientException",
        ),
        (
            "wrong token",
            verify(
                &verifier(Some("token-1")),
                &signed(
                    "ASIAEXAMPLE",
                    "the right secret",
                    Some("token-2"),
                    "eu-west-1",
                    NOW,
                    BODY,
                ),
                BODY,
                NOW,
            ),
            "UnrecognizedClientException",
        ),
    ];
    for (name, result, code) in cases {
        let error = result.expect_err(name);
        assert_eq!(error.kms_error_type(), code, "{name}: {error}");
    }
}

#[test]
fn altered_headers_and_malformed_authorization_are_refused() {
    let good = signed(
        "ASIAEXAMPLE",
        "the right secret",
        None,
        "eu-west-1",
        NOW,
        BODY,
    );
    let with = |name: &str, value: &str| {
        let mut headers: Vec<(String, Vec<u8>)> = good
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if !value.is_empty() {
            headers.push((name.to_owned(), value.as_bytes().to_vec()));
        }
        Signed { headers }
    };
    let verifier = verifier(None);
    // A signed header changed: the target operation.
    let error = verify(
        &verifier,
        &with("x-amz-target", "TrentService.Decrypt"),
        BODY,
        NOW,
    )
    .unwrap_err();
    assert_eq!(error, SigV4Error::Mismatch);
    // No Authorization at all.
    let error = verify(&verifier, &with("authorization", ""), BODY, NOW).unwrap_err();
    assert_eq!(
        error.kms_error_type(),
        "MissingAuthenticationTokenException"
    );
    for bad in [
        "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20240531/eu-west-1/kms/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20240531/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=00, Extra=1",
    ] {
        let error = verify(&verifier, &with("authorization", bad), BODY, NOW).unwrap_err();
        assert_eq!(error.kms_error_type(), "IncompleteSignatureException", "{bad}: {error}");
    }
    // A date that does not match the scope.
    let error = verify(
        &verifier,
        &with("x-amz-date", "20200101T000000Z"),
        BODY,
        NOW,
    )
    .unwrap_err();
    assert_eq!(error.kms_error_type(), "InvalidSignatureException");
}
