//! The operations, on JSON bodies of KMS's shapes (`TrentService.<Operation>`, JSON 1.1,
//! blobs in base64), for a caller whose signature the server already checked.
//!
//! Every key-scoped operation is decided by the key's policy ([`ea_kms::policy`]) with the
//! caller's principal ARN and, when the request carries a `Recipient`, the
//! `kms:RecipientAttestation:*` keys of its attestation document, which must first pass
//! [`ea_attestation::verify`] against the configured root (at the current time, at most five
//! minutes old, as KMS requires; or, with `--insecure-qemu-attestation`, QEMU's unsigned
//! documents through the same verifier). With a Recipient the key material leaves only as
//! `CiphertextForRecipient` (CMS EnvelopedData to the document's `public_key`, BER with
//! indefinite lengths and chunked content, as KMS writes it) and never as `Plaintext`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use ea_attestation::{verify, TrustRoot, ValidationTime, VerifyOptions};
use ea_kms::cms::{Encoding, EnvelopeBuilder};
use ea_kms::policy::{attestation_context, Decision, KeyPolicy, RequestContext};
use ea_kms::sigv4::Caller;
use ring::rand::SecureRandom as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::{ErrorType, KmsFault};
use crate::state::{blob_key_id, Key, KeyStore, StateError};

/// How old a Recipient's attestation document may be (KMS: five minutes).
pub const MAX_ATTESTATION_AGE: Duration = Duration::from_secs(5 * 60);
/// Bytes per chunk of `CiphertextForRecipient`'s encrypted content: small, so that even a
/// 32-byte data key arrives in several chunks and the enclave's BER path is exercised.
pub const CMS_CHUNK_LEN: usize = 16;
/// Largest `Encrypt` plaintext (KMS's limit).
const MAX_PLAINTEXT: usize = 4096;
/// Largest `GenerateRandom` / `NumberOfBytes` (KMS's limit).
const MAX_RANDOM: u32 = 1024;

/// What the local KMS is: its region, account and attestation root.
#[derive(Debug)]
pub struct Settings {
    /// Region of key ARNs and of SigV4 scopes.
    pub region: String,
    /// Account of key ARNs.
    pub account: String,
    /// Root that Recipient attestation documents must chain to; none: Recipients refused.
    /// [`TrustRoot::insecure_qemu_unsigned`] accepts QEMU's unsigned documents instead
    /// (`--insecure-qemu-attestation`), and warns at every one.
    pub attestation_root: Option<TrustRoot>,
}

/// The local KMS: settings and keys.
#[derive(Debug)]
pub struct LocalKms {
    settings: Settings,
    keys: Mutex<KeyStore>,
}

/// A verified Recipient: whom to encrypt to, and the condition keys it gives.
struct Recipient {
    envelope: EnvelopeBuilder,
    context: Vec<(String, String)>,
}

/// A base64 blob in a request.
#[derive(Default)]
struct Blob(Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Blob)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientIn {
    attestation_document: Option<Blob>,
    key_encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyIn {
    key_id: Option<String>,
    key_spec: Option<String>,
    number_of_bytes: Option<u32>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    recipient: Option<RecipientIn>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptIn {
    ciphertext_blob: Option<Blob>,
    key_id: Option<String>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    encryption_algorithm: Option<String>,
    recipient: Option<RecipientIn>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptIn {
    key_id: Option<String>,
    plaintext: Option<Blob>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateRandomIn {
    number_of_bytes: Option<u32>,
    custom_key_store_id: Option<String>,
    recipient: Option<RecipientIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetKeyPolicyIn {
    key_id: Option<String>,
    policy_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutKeyPolicyIn {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyIn {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    origin: Option<String>,
    multi_region: Option<bool>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

fn b64(bytes: &[u8]) -> Value {
    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn validation(message: impl Into<String>) -> KmsFault {
    KmsFault::new(ErrorType::Validation, message)
}

fn required<T>(value: Option<T>, member: &str) -> Result<T, KmsFault> {
    value.ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn no_dry_run(dry_run: Option<bool>) -> Result<(), KmsFault> {
    match dry_run {
        Some(true) => Err(KmsFault::new(
            ErrorType::UnsupportedOperation,
            "DryRun is not supported by the local KMS",
        )),
        _ => Ok(()),
    }
}

fn symmetric_default(algorithm: Option<&str>) -> Result<(), KmsFault> {
    match algorithm {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(KmsFault::new(
            ErrorType::UnsupportedOperation,
            format!("EncryptionAlgorithm {other} is not supported: the local KMS has symmetric keys only"),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, KmsFault> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        KmsFault::new(
            ErrorType::Serialization,
            format!("the request body does not have the operation's shape: {e}"),
        )
    })
}

fn state_fault(error: StateError) -> KmsFault {
    tracing::error!(%error, "the state file could not be used");
    KmsFault::new(
        ErrorType::Internal,
        "the local KMS could not save its state; see its log",
    )
}

/// The policy a key gets when CreateKey names none: the account may do everything (there is
/// no IAM here, so that means every principal of the account).
pub fn default_policy(account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

impl LocalKms {
    /// A KMS over `keys`.
    pub fn new(settings: Settings, keys: KeyStore) -> Self {
        Self {
            settings,
            keys: Mutex::new(keys),
        }
    }

    fn keys(&self) -> MutexGuard<'_, KeyStore> {
        // A poisoned lock means a panic elsewhere mid-operation; the key map is only ever
        // changed by single inserts, so it is still consistent.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key's ARN.
    pub fn key_arn(&self, key_id: &str) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{key_id}",
            self.settings.region, self.settings.account
        )
    }

    /// Ensures a key with this id exists and has this policy (`--key ID=POLICY_FILE`), and
    /// saves the state.
    pub fn ensure_key(
        &self,
        key_id: &str,
        policy_text: String,
        now_secs: u64,
    ) -> anyhow::Result<()> {
        if key_id.is_empty()
            || key_id.len() > 64
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            anyhow::bail!("key id {key_id:?}: use letters, digits and '-' (a UUID, say)");
        }
        let policy = KeyPolicy::from_json(&policy_text)
            .map_err(|e| anyhow::anyhow!("the policy for key {key_id}: {e}"))?;
        let mut keys = self.keys();
        match keys.get_mut(key_id) {
            Some(key) => {
                key.policy = policy;
                key.policy_text = policy_text;
            }
            None => {
                keys.create(
                    Some(key_id.to_owned()),
                    policy_text,
                    policy,
                    String::new(),
                    now_secs,
                )?;
            }
        }
        keys.save()?;
        Ok(())
    }

    /// The key id a `KeyId` parameter names (id or key ARN; aliases are not supported).
    fn resolve(&self, keys: &KeyStore, key_id: &str) -> Result<String, KmsFault> {
        let not_found = || {
            KmsFault::new(
                ErrorType::NotFound,
                format!("Key '{}' does not exist", self.key_arn(key_id)),
            )
        };
        if key_id.starts_with("alias/") || key_id.contains(":alias/") {
            return Err(KmsFault::new(
                ErrorType::NotFound,
                format!("Alias {key_id} is not found (the local KMS has no aliases; use the key id or ARN)"),
            ));
        }
        let id = match key_id.strip_prefix("arn:") {
            Some(_) => {
                let prefix = format!(
                    "arn:aws:kms:{}:{}:key/",
                    self.settings.region, self.settings.account
                );
                key_id.strip_prefix(&prefix).ok_or_else(|| {
                    KmsFault::new(
                        ErrorType::NotFound,
                        format!("Key '{key_id}' does not exist in this region and account ({prefix}...)"),
                    )
                })?
            }
            None => key_id,
        };
        keys.get(id).map(|k| k.key_id.clone()).ok_or_else(not_found)
    }

    fn usable<'k>(&self, keys: &'k KeyStore, key_id: &str) -> Result<&'k Key, KmsFault> {
        let key = keys.get(key_id).ok_or_else(|| {
            KmsFault::new(
                ErrorType::NotFound,
                format!("Key '{}' does not exist", self.key_arn(key_id)),
            )
        })?;
        if !key.enabled {
            return Err(KmsFault::new(
                ErrorType::Disabled,
                format!("{} is disabled.", self.key_arn(key_id)),
            ));
        }
        Ok(key)
    }

    /// Decides `action` on `key` for `caller` by the key policy.
    fn authorize(
        &self,
        policy: &KeyPolicy,
        key_id: &str,
        caller: &Caller,
        action: &str,
        context: &[(String, String)],
    ) -> Result<(), KmsFault> {
        let arn = self.key_arn(key_id);
        let account = caller
            .principal_arn
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_owned();
        let request = RequestContext::new(&caller.principal_arn, action, &arn)
            .with_values(context.iter().cloned())
            .with_values([("kms:CallerAccount".to_owned(), account)]);
        let decision = policy.evaluate(&request);
        tracing::info!(principal = %caller.principal_arn, action, key = %arn, %decision, "policy decision");
        let who = format!(
            "User: {} is not authorized to perform: {action} on resource: {arn}",
            caller.principal_arn
        );
        match decision {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { statement } => Err(KmsFault::new(
                ErrorType::AccessDenied,
                format!("{who} with an explicit deny in a resource-based policy ({statement})"),
            )),
            denied @ Decision::ImplicitDeny { .. } => Err(KmsFault::new(
                ErrorType::AccessDenied,
                format!(
                    "{who} because no resource-based policy allows the {action} action ({denied})"
                ),
            )),
        }
    }

    /// Verifies a Recipient's attestation document and prepares the envelope to it.
    fn recipient(
        &self,
        recipient: Option<RecipientIn>,
        now_ms: u64,
    ) -> Result<Option<Recipient>, KmsFault> {
        let Some(recipient) = recipient else {
            return Ok(None);
        };
        match recipient.key_encryption_algorithm.as_deref() {
            None | Some("RSAES_OAEP_SHA_256") => {}
            Some(other) => {
                return Err(validation(format!(
                    "KeyEncryptionAlgorithm {other} is not supported; the only valid value is RSAES_OAEP_SHA_256"
                )))
            }
        }
        let document = required(
            recipient.attestation_document,
            "recipient.attestationDocument",
        )?;
        let root = self.settings.attestation_root.clone().ok_or_else(|| {
            validation(
                "this local KMS was started without --attestation-root (or \
                 --insecure-qemu-attestation) and accepts no Recipient",
            )
        })?;
        if root.is_insecure_qemu_unsigned() {
            // At every verification, not only at start: whoever reads the log of one release
            // must see that it rested on an unsigned document.
            tracing::warn!(
                "insecure QEMU mode: checking a Recipient's UNSIGNED attestation document; it \
                 proves nothing about hardware (--insecure-qemu-attestation)"
            );
        }
        // Debug-mode documents are accepted as KMS accepts them: their all-zero PCRs simply
        // fail any policy that pins real ones.
        let options = VerifyOptions::new(root)
            .at(ValidationTime::At(now_ms))
            .max_age(MAX_ATTESTATION_AGE, now_ms)
            .dangerous_allow_debug(true);
        let verified = verify(&document.0, &options)
            .map_err(|e| validation(format!("The attestation document is not valid: {e}")))?;
        let public_key = verified.public_key.as_deref().ok_or_else(|| {
            validation("The attestation document has no public_key to encrypt to")
        })?;
        let envelope = EnvelopeBuilder::new(public_key)
            .map_err(|e| {
                validation(format!(
                    "The attestation document's public_key is unusable: {e}"
                ))
            })?
            .encoding(Encoding::Ber {
                chunk_len: CMS_CHUNK_LEN,
            });
        Ok(Some(Recipient {
            envelope,
            context: attestation_context(&verified.pcrs),
        }))
    }

    /// `Plaintext`, or with a Recipient `CiphertextForRecipient` only.
    fn release(
        out: &mut Map<String, Value>,
        plaintext: &[u8],
        recipient: Option<&Recipient>,
    ) -> Result<(), KmsFault> {
        match recipient {
            None => {
                out.insert("Plaintext".into(), b64(plaintext));
            }
            Some(recipient) => {
                let envelope = recipient.envelope.build(plaintext).map_err(|e| {
                    tracing::error!(error = %e, "building CiphertextForRecipient failed");
                    KmsFault::new(ErrorType::Internal, "encrypting to the recipient failed")
                })?;
                out.insert("CiphertextForRecipient".into(), b64(&envelope));
            }
        }
        Ok(())
    }

    /// Answers one operation.
    pub fn handle(
        &self,
        operation: &str,
        body: &[u8],
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Value, KmsFault> {
        match operation {
            "GenerateDataKey" => self.generate_data_key(parse(body)?, caller, now_ms),
            "Decrypt" => self.decrypt(parse(body)?, caller, now_ms),
            "Encrypt" => self.encrypt(parse(body)?, caller),
            "GenerateRandom" => self.generate_random(parse(body)?, now_ms),
            "GetKeyPolicy" => self.get_key_policy(parse(body)?, caller),
            "PutKeyPolicy" => self.put_key_policy(parse(body)?, caller),
            "CreateKey" => self.create_key(parse(body)?, caller, now_ms),
            other => Err(KmsFault::new(
                ErrorType::UnknownOperation,
                format!("TrentService.{other} is not an operation of the local KMS"),
            )),
        }
    }

    fn generate_data_key(
        &self,
        input: GenerateDataKeyIn,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Value, KmsFault> {
        no_dry_run(input.dry_run)?;
        let key_id = required(input.key_id, "keyId")?;
        let len = match (input.key_spec.as_deref(), input.number_of_bytes) {
            (Some("AES_256"), None) => 32,
            (Some("AES_128"), None) => 16,
            (None, Some(n)) if (1..=MAX_RANDOM).contains(&n) => n as usize,
            (None, Some(n)) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024"
                )))
            }
            (Some(spec), None) => return Err(validation(format!("KeySpec {spec} is not AES_256 or AES_128"))),
            (None, None) => return Err(validation("Please specify either number of bytes or key spec.")),
            (Some(_), Some(_)) => return Err(validation("Please specify either number of bytes or key spec, not both.")),
        };
        let recipient = self.recipient(input.recipient, now_ms)?;
        let context = recipient
            .as_ref()
            .map(|r| r.context.as_slice())
            .unwrap_or_default();
        let (arn, plaintext, blob) = {
            let keys = self.keys();
            let id = self.resolve(&keys, &key_id)?;
            let key = self.usable(&keys, &id)?;
            self.authorize(&key.policy, &id, caller, "kms:GenerateDataKey", context)?;
            let mut plaintext = Zeroizing::new(vec![0u8; len]);
            keys.random()
                .fill(&mut plaintext)
                .map_err(|_| KmsFault::new(ErrorType::Internal, "the random source failed"))?;
            let blob = key
                .encrypt(&plaintext, &input.encryption_context, keys.random())
                .ok_or_else(|| KmsFault::new(ErrorType::Internal, "encryption failed"))?;
            (self.key_arn(&id), plaintext, blob)
        };
        let mut out = Map::new();
        out.insert("KeyId".into(), Value::from(arn));
        out.insert("CiphertextBlob".into(), b64(&blob));
        Self::release(&mut out, &plaintext, recipient.as_ref())?;
        Ok(Value::Object(out))
    }

    fn decrypt(&self, input: DecryptIn, caller: &Caller, now_ms: u64) -> Result<Value, KmsFault> {
        no_dry_run(input.dry_run)?;
        symmetric_default(input.encryption_algorithm.as_deref())?;
        let blob = required(input.ciphertext_blob, "ciphertextBlob")?;
        let recipient = self.recipient(input.recipient, now_ms)?;
        let context = recipient
            .as_ref()
            .map(|r| r.context.as_slice())
            .unwrap_or_default();
        let invalid = || {
            KmsFault::new(
                ErrorType::InvalidCiphertext,
                "the ciphertext blob was not made by this KMS for this key and encryption context",
            )
        };
        let (arn, plaintext) = {
            let keys = self.keys();
            let blob_key = blob_key_id(&blob.0).ok_or_else(invalid)?.to_owned();
            if let Some(requested) = &input.key_id {
                let requested = self.resolve(&keys, requested)?;
                if requested != blob_key {
                    return Err(KmsFault::new(
                        ErrorType::IncorrectKey,
                        "The key ID in the request does not identify a CMK that can perform this operation.",
                    ));
                }
            }
            // A blob naming a key that does not exist is not a valid ciphertext here.
            if keys.get(&blob_key).is_none() {
                return Err(invalid());
            }
            let key = self.usable(&keys, &blob_key)?;
            self.authorize(&key.policy, &blob_key, caller, "kms:Decrypt", context)?;
            let plaintext = key
                .decrypt(&blob.0, &input.encryption_context)
                .ok_or_else(invalid)?;
            (self.key_arn(&blob_key), plaintext)
        };
        let mut out = Map::new();
        out.insert("KeyId".into(), Value::from(arn));
        out.insert(
            "EncryptionAlgorithm".into(),
            Value::from("SYMMETRIC_DEFAULT"),
        );
        Self::release(&mut out, &plaintext, recipient.as_ref())?;
        Ok(Value::Object(out))
    }

    fn encrypt(&self, input: EncryptIn, caller: &Caller) -> Result<Value, KmsFault> {
        no_dry_run(input.dry_run)?;
        symmetric_default(input.encryption_algorithm.as_deref())?;
        let key_id = required(input.key_id, "keyId")?;
        let plaintext = required(input.plaintext, "plaintext")?;
        if plaintext.0.is_empty() || plaintext.0.len() > MAX_PLAINTEXT {
            return Err(validation(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096",
            ));
        }
        let keys = self.keys();
        let id = self.resolve(&keys, &key_id)?;
        let key = self.usable(&keys, &id)?;
        self.authorize(&key.policy, &id, caller, "kms:Encrypt", &[])?;
        let blob = key
            .encrypt(&plaintext.0, &input.encryption_context, keys.random())
            .ok_or_else(|| KmsFault::new(ErrorType::Internal, "encryption failed"))?;
        Ok(json!({
            "CiphertextBlob": b64(&blob),
            "KeyId": self.key_arn(&id),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    fn generate_random(&self, input: GenerateRandomIn, now_ms: u64) -> Result<Value, KmsFault> {
        if input.custom_key_store_id.is_some() {
            return Err(KmsFault::new(
                ErrorType::UnsupportedOperation,
                "the local KMS has no custom key stores",
            ));
        }
        let n = required(input.number_of_bytes, "numberOfBytes")?;
        if !(1..=MAX_RANDOM).contains(&n) {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024"
            )));
        }
        let recipient = self.recipient(input.recipient, now_ms)?;
        let mut bytes = Zeroizing::new(vec![0u8; n as usize]);
        self.keys()
            .random()
            .fill(&mut bytes)
            .map_err(|_| KmsFault::new(ErrorType::Internal, "the random source failed"))?;
        let mut out = Map::new();
        Self::release(&mut out, &bytes, recipient.as_ref())?;
        Ok(Value::Object(out))
    }

    fn policy_name(name: Option<&str>) -> Result<(), KmsFault> {
        match name {
            None | Some("default") => Ok(()),
            Some(other) => Err(KmsFault::new(
                ErrorType::NotFound,
                format!("Policy {other} is not found; the only policy name is 'default'"),
            )),
        }
    }

    fn get_key_policy(&self, input: GetKeyPolicyIn, caller: &Caller) -> Result<Value, KmsFault> {
        Self::policy_name(input.policy_name.as_deref())?;
        let key_id = required(input.key_id, "keyId")?;
        let keys = self.keys();
        let id = self.resolve(&keys, &key_id)?;
        let key = keys
            .get(&id)
            .ok_or_else(|| KmsFault::new(ErrorType::NotFound, ""))?;
        self.authorize(&key.policy, &id, caller, "kms:GetKeyPolicy", &[])?;
        Ok(json!({ "Policy": key.policy_text, "PolicyName": "default" }))
    }

    /// Parses a new policy and refuses one that would lock the caller out (as KMS does
    /// unless told to bypass the check).
    fn new_policy(
        &self,
        text: &str,
        key_id: &str,
        caller: &Caller,
        bypass: bool,
    ) -> Result<KeyPolicy, KmsFault> {
        let policy = KeyPolicy::from_json(text)
            .map_err(|e| KmsFault::new(ErrorType::MalformedPolicyDocument, e.to_string()))?;
        let request = RequestContext::new(
            &caller.principal_arn,
            "kms:PutKeyPolicy",
            self.key_arn(key_id),
        );
        if !bypass && !policy.evaluate(&request).is_allowed() {
            return Err(KmsFault::new(
                ErrorType::MalformedPolicyDocument,
                "The new key policy will not allow you to update the key policy in the future.",
            ));
        }
        Ok(policy)
    }

    fn put_key_policy(&self, input: PutKeyPolicyIn, caller: &Caller) -> Result<Value, KmsFault> {
        Self::policy_name(input.policy_name.as_deref())?;
        let key_id = required(input.key_id, "keyId")?;
        let text = required(input.policy, "policy")?;
        let mut keys = self.keys();
        let id = self.resolve(&keys, &key_id)?;
        let current = keys
            .get(&id)
            .ok_or_else(|| KmsFault::new(ErrorType::NotFound, ""))?;
        self.authorize(&current.policy, &id, caller, "kms:PutKeyPolicy", &[])?;
        let policy = self.new_policy(
            &text,
            &id,
            caller,
            input.bypass_policy_lockout_safety_check == Some(true),
        )?;
        if let Some(key) = keys.get_mut(&id) {
            key.policy = policy;
            key.policy_text = text;
        }
        keys.save().map_err(state_fault)?;
        tracing::info!(key = %self.key_arn(&id), principal = %caller.principal_arn, "key policy replaced");
        Ok(json!({}))
    }

    fn create_key(
        &self,
        input: CreateKeyIn,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Value, KmsFault> {
        let unsupported = |what: &str| {
            KmsFault::new(
                ErrorType::UnsupportedOperation,
                format!("{what} is not supported: the local KMS makes symmetric ENCRYPT_DECRYPT keys of origin AWS_KMS only"),
            )
        };
        if input
            .key_usage
            .as_deref()
            .is_some_and(|u| u != "ENCRYPT_DECRYPT")
        {
            return Err(unsupported("KeyUsage"));
        }
        for spec in [
            input.key_spec.as_deref(),
            input.customer_master_key_spec.as_deref(),
        ] {
            if spec.is_some_and(|s| s != "SYMMETRIC_DEFAULT") {
                return Err(unsupported("KeySpec"));
            }
        }
        if input.origin.as_deref().is_some_and(|o| o != "AWS_KMS") {
            return Err(unsupported("Origin"));
        }
        if input.multi_region == Some(true) {
            return Err(unsupported("MultiRegion"));
        }
        let now_secs = now_ms / 1000;
        let mut keys = self.keys();
        let key_id = crate::state::new_key_id(keys.random()).map_err(state_fault)?;
        let text = input
            .policy
            .unwrap_or_else(|| default_policy(&self.settings.account));
        let policy = self.new_policy(
            &text,
            &key_id,
            caller,
            input.bypass_policy_lockout_safety_check == Some(true),
        )?;
        let description = input.description.unwrap_or_default();
        keys.create(
            Some(key_id.clone()),
            text,
            policy,
            description.clone(),
            now_secs,
        )
        .map_err(state_fault)?;
        keys.save().map_err(state_fault)?;
        let arn = self.key_arn(&key_id);
        tracing::info!(key = %arn, principal = %caller.principal_arn, "key created");
        Ok(json!({
            "KeyMetadata": {
                "AWSAccountId": self.settings.account,
                "KeyId": key_id,
                "Arn": arn,
                "CreationDate": now_secs,
                "Enabled": true,
                "Description": description,
                "KeyUsage": "ENCRYPT_DECRYPT",
                "KeyState": "Enabled",
                "Origin": "AWS_KMS",
                "KeyManager": "CUSTOMER",
                "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                "MultiRegion": false,
            }
        }))
    }
}
