//! The CMS parser on envelopes made by producers that share no code with it: the OpenSSL
//! command line (BER with `-stream`, as KMS writes it, and definite lengths without) and
//! RustCrypto's `cms`/`der` types (DER). And the other way round: OpenSSL opens what our
//! builder makes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode as _, Encode as _, Tag};
use ea_kms::cms::{open, CmsError, Encoding, EnvelopeBuilder, RecipientCheck};
use ea_kms::RecipientKey;

fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        // Said on the test's output so a skipped check is never mistaken for a passed one.
        println!(
            "SKIPPED: the openssl command is not installed; the OpenSSL cross-checks did not run"
        );
    }
    found
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A certificate (signed by a throwaway OpenSSL CA) for `public_key_der`, with the
/// subjectKeyIdentifier OpenSSL computes from the key, for `openssl cms -recip -keyid`.
fn certificate_for(dir: &Path, public_key_der: &[u8], name: &str) {
    std::fs::write(
        dir.join(format!("{name}.pub.pem")),
        pem("PUBLIC KEY", public_key_der),
    )
    .unwrap();
    std::fs::write(dir.join("ext.cnf"), "subjectKeyIdentifier=hash\n").unwrap();
    if !dir.join("ca.key").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=test ca",
                "-days",
                "1",
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=recipient",
            "-out",
            "r.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "r.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "7",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-force_pubkey",
            &format!("{name}.pub.pem"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn openssl_encrypt(dir: &Path, recipient: &str, plaintext: &[u8], stream: bool) -> Vec<u8> {
    std::fs::write(dir.join("plain.bin"), plaintext).unwrap();
    let mut args = vec![
        "cms",
        "-encrypt",
        "-binary",
        "-in",
        "plain.bin",
        "-recip",
        recipient,
        "-keyid",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
        "-aes-256-cbc",
        "-outform",
        "DER",
        "-out",
        "envelope.der",
    ];
    if stream {
        args.push("-stream");
    }
    openssl(dir, &args);
    std::fs::read(dir.join("envelope.der")).unwrap()
}

#[test]
fn opens_envelopes_made_by_openssl() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = RecipientKey::generate().unwrap();
    certificate_for(dir.path(), key.public_key_der(), "recipient");
    for (stream, plaintext) in [
        (true, vec![0x5a; 32]),
        (false, vec![0x5a; 32]),
        (true, (0..=255u8).cycle().take(4096).collect()),
        (true, Vec::new()),
    ] {
        let envelope = openssl_encrypt(dir.path(), "recipient.pem", &plaintext, stream);
        if stream {
            // Really BER: an indefinite-length outer SEQUENCE, as KMS sends it.
            assert_eq!(&envelope[..2], [0x30, 0x80]);
        }
        // OpenSSL's subjectKeyIdentifier is ours: SHA-1 of the RSAPublicKey.
        let opened = open(&envelope, &key, RecipientCheck::KeyId)
            .unwrap_or_else(|e| panic!("stream={stream}, {} bytes: {e}", plaintext.len()));
        assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    // PKCS#1 v1.5 key transport, as `openssl cms` does by default, is refused by name.
    std::fs::write(dir.path().join("plain.bin"), b"x").unwrap();
    openssl(
        dir.path(),
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "plain.bin",
            "-recip",
            "recipient.pem",
            "-keyid",
            "-aes-256-cbc",
            "-outform",
            "DER",
            "-out",
            "v15.der",
        ],
    );
    let v15 = std::fs::read(dir.path().join("v15.der")).unwrap();
    assert!(matches!(
        open(&v15, &key, RecipientCheck::KeyId),
        Err(CmsError::KeyEncryptionAlgorithm { found }) if found == "1.2.840.113549.1.1.1"
    ));
    // issuerAndSerialNumber instead of subjectKeyIdentifier.
    openssl(
        dir.path(),
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "plain.bin",
            "-recip",
            "recipient.pem",
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-aes-256-cbc",
            "-outform",
            "DER",
            "-out",
            "issuer.der",
        ],
    );
    let issuer = std::fs::read(dir.path().join("issuer.der")).unwrap();
    let refused = open(&issuer, &key, RecipientCheck::KeyId).unwrap_err();
    assert!(
        matches!(
            refused,
            CmsError::Version { .. }
                | CmsError::RecipientVersion { .. }
                | CmsError::RecipientIdentifier
        ),
        "{refused}"
    );
}

#[test]
fn openssl_opens_what_the_builder_makes() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "r.key",
        ],
    );
    openssl(
        dir.path(),
        &[
            "pkey",
            "-in",
            "r.key",
            "-pubout",
            "-outform",
            "DER",
            "-out",
            "r.pub.der",
        ],
    );
    let public = std::fs::read(dir.path().join("r.pub.der")).unwrap();
    certificate_for(dir.path(), &public, "recipient");
    for encoding in [Encoding::Der, Encoding::Ber { chunk_len: 10 }] {
        let plaintext = b"thirty-two bytes of data key....";
        let envelope = EnvelopeBuilder::new(&public)
            .unwrap()
            .encoding(encoding)
            .build(plaintext)
            .unwrap();
        std::fs::write(dir.path().join("ours.der"), &envelope).unwrap();
        openssl(
            dir.path(),
            &[
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "ours.der",
                "-inkey",
                "r.key",
                "-recip",
                "recipient.pem",
                "-out",
                "opened.bin",
            ],
        );
        assert_eq!(
            std::fs::read(dir.path().join("opened.bin")).unwrap(),
            plaintext,
            "{encoding:?}"
        );
    }
}

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
const ID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// EnvelopedData assembled from RustCrypto's `cms` types and encoded by `der`, with the
/// RSAES-OAEP parameters from the `pkcs1` crate: no byte of it comes from our encoder.
fn rustcrypto_envelope(key: &RecipientKey, key_id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockEncryptMut as _, KeyIvInit as _};
    use cms::enveloped_data::{
        EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier,
        RecipientInfo, RecipientInfos,
    };
    use rsa::pkcs8::DecodePublicKey as _;

    let content_key = [0x11u8; 32];
    let iv = [0x22u8; 16];
    let public = rsa::RsaPublicKey::from_public_key_der(key.public_key_der()).unwrap();
    let encrypted_key = public
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            &content_key,
        )
        .unwrap();
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new((&content_key).into(), (&iv).into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let oaep_params = rsa::pkcs1::RsaOaepParams::new::<sha2::Sha256>()
        .to_der()
        .unwrap();

    let recipient = KeyTransRecipientInfo {
        version: cms::content_info::CmsVersion::V2,
        rid: RecipientIdentifier::SubjectKeyIdentifier(x509_cert::ext::pkix::SubjectKeyIdentifier(
            OctetString::new(key_id).unwrap(),
        )),
        key_enc_alg: spki::AlgorithmIdentifierOwned {
            oid: ID_RSAES_OAEP,
            parameters: Some(Any::from_der(&oaep_params).unwrap()),
        },
        enc_key: OctetString::new(encrypted_key).unwrap(),
    };
    let enveloped = EnvelopedData {
        version: cms::content_info::CmsVersion::V2,
        originator_info: None,
        recip_infos: RecipientInfos(
            SetOfVec::try_from(vec![RecipientInfo::Ktri(recipient)]).unwrap(),
        ),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: spki::AlgorithmIdentifierOwned {
                oid: ID_AES256_CBC,
                parameters: Some(Any::new(Tag::OctetString, iv.to_vec()).unwrap()),
            },
            encrypted_content: Some(OctetString::new(ciphertext).unwrap()),
        },
        unprotected_attrs: None,
    };
    cms::content_info::ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::from_der(&enveloped.to_der().unwrap()).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn opens_envelopes_encoded_by_rustcrypto_cms() {
    let key = RecipientKey::generate().unwrap();
    let plaintext = b"a data key from elsewhere, 32 b.";
    let envelope = rustcrypto_envelope(&key, key.key_id(), plaintext);
    let opened = open(&envelope, &key, RecipientCheck::KeyId).unwrap();
    assert_eq!(opened.as_slice(), plaintext);

    let foreign_id = rustcrypto_envelope(&key, &[1, 2, 3, 4], plaintext);
    assert!(matches!(
        open(&foreign_id, &key, RecipientCheck::KeyId),
        Err(CmsError::WrongKeyId { found, .. }) if found == "01020304"
    ));
}
