//! The key policy of the log key, and the condition keys an attestation document gives.

use std::collections::BTreeMap;

use super::{Condition, Effect, KeyPolicy, Operator, Principal, Statement, POLICY_VERSION};

/// Prefix of the attestation condition keys.
pub const RECIPIENT_ATTESTATION_PREFIX: &str = "kms:RecipientAttestation:";
/// PCR0, the image measurement, under its KMS name.
pub const IMAGE_SHA384_KEY: &str = "kms:RecipientAttestation:ImageSha384";

/// The actions the enclave role gets, and only with an attestation document.
pub const ENCLAVE_ACTIONS: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// What the key administrator may do: manage the key and its policy, never use it. (No
/// `kms:CreateGrant`: a grant could hand out decryption beside the policy.)
pub const ADMIN_ACTIONS: [&str; 17] = [
    "kms:Describe*",
    "kms:Get*",
    "kms:List*",
    "kms:PutKeyPolicy",
    "kms:Enable*",
    "kms:Disable*",
    "kms:Update*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:RevokeGrant",
    "kms:RetireGrant",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
    "kms:ReplicateKey",
];

/// The condition key for PCR `index`: `kms:RecipientAttestation:ImageSha384` for PCR0 (its
/// KMS name), `kms:RecipientAttestation:PCR<index>` otherwise.
pub fn pcr_condition_key(index: u16) -> String {
    match index {
        0 => IMAGE_SHA384_KEY.to_owned(),
        n => format!("{RECIPIENT_ATTESTATION_PREFIX}PCR{n}"),
    }
}

/// The condition keys KMS derives from a (verified) attestation document's PCRs:
/// `ImageSha384` and `PCR0`..`PCR31` as present, lower-case hex.
pub fn attestation_context(pcrs: &BTreeMap<u16, Vec<u8>>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(pcrs.len() + 1);
    for (&index, value) in pcrs {
        let value = hex::encode(value);
        if index == 0 {
            out.push((IMAGE_SHA384_KEY.to_owned(), value.clone()));
        }
        out.push((format!("{RECIPIENT_ATTESTATION_PREFIX}PCR{index}"), value));
    }
    out
}

/// What an immutable policy lets the key administrator do: [`ADMIN_ACTIONS`] without
/// `kms:PutKeyPolicy` (so no principal can change the policy, which names one image for
/// good), without `kms:ReplicateKey` (a replica of a multi-Region key takes a policy of its
/// own and decrypts what the key encrypted) and without `kms:Update*` (which includes
/// `UpdatePrimaryRegion`); only the key's description and aliases may be updated.
pub const IMMUTABLE_ADMIN_ACTIONS: [&str; 16] = [
    "kms:Describe*",
    "kms:Get*",
    "kms:List*",
    "kms:Enable*",
    "kms:Disable*",
    "kms:UpdateKeyDescription",
    "kms:UpdateAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:RevokeGrant",
    "kms:RetireGrant",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
];

/// The log key's policy for one image (docs/kms.md):
///
/// 1. `KeyAdministration`: `key_admin` manages the key ([`ADMIN_ACTIONS`]), with no
///    `Decrypt`/`GenerateDataKey` of its own.
/// 2. `EnclaveWithAttestation`: `enclave_role` may `Decrypt` and `GenerateDataKey` only when
///    the request's attestation document shows every PCR in `pcrs`
///    (`StringEqualsIgnoreCase`; PCR0 as `ImageSha384`).
/// 3. `DenyWithoutAttestation`: everyone is refused those two actions when the request
///    carries no attestation document (`Null` on `ImageSha384`), whatever any other policy
///    or grant allows.
pub fn enclave_key_policy(
    key_admin: &str,
    enclave_role: &str,
    pcrs: &BTreeMap<u16, Vec<u8>>,
) -> KeyPolicy {
    log_key_policy(key_admin, enclave_role, std::slice::from_ref(pcrs), false)
}

/// The log key's policy for the images a log admits: as [`enclave_key_policy`], with one
/// `EnclaveWithAttestation` statement per image (`EnclaveWithAttestation1`, `2`, ... when
/// there are several), each naming that image's PCRs only: conditions of one statement must
/// all hold, so an enclave is released the key only if all its PCRs are one admitted image's
/// (never PCR0 of one image with PCR1 of another).
///
/// `immutable`: the administrator gets [`IMMUTABLE_ADMIN_ACTIONS`], so that nobody can ever
/// change the policy (KMS then needs `BypassPolicyLockoutSafetyCheck` to accept it).
pub fn log_key_policy(
    key_admin: &str,
    enclave_role: &str,
    images: &[BTreeMap<u16, Vec<u8>>],
    immutable: bool,
) -> KeyPolicy {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let admin_actions = if immutable {
        strings(&IMMUTABLE_ADMIN_ACTIONS)
    } else {
        strings(&ADMIN_ACTIONS)
    };
    let mut statements = vec![Statement {
        sid: Some("KeyAdministration".to_owned()),
        effect: Effect::Allow,
        principal: Principal::Aws(vec![key_admin.to_owned()]),
        actions: admin_actions,
        resources: vec!["*".to_owned()],
        conditions: Vec::new(),
    }];
    for (number, pcrs) in images.iter().enumerate() {
        let sid = match images.len() {
            1 => "EnclaveWithAttestation".to_owned(),
            _ => format!("EnclaveWithAttestation{}", number + 1),
        };
        statements.push(Statement {
            sid: Some(sid),
            effect: Effect::Allow,
            principal: Principal::Aws(vec![enclave_role.to_owned()]),
            actions: strings(&ENCLAVE_ACTIONS),
            resources: vec!["*".to_owned()],
            conditions: pcrs
                .iter()
                .map(|(&index, value)| Condition {
                    operator: Operator::StringEqualsIgnoreCase,
                    key: pcr_condition_key(index),
                    values: vec![hex::encode(value)],
                })
                .collect(),
        });
    }
    statements.push(Statement {
        sid: Some("DenyWithoutAttestation".to_owned()),
        effect: Effect::Deny,
        principal: Principal::Any,
        actions: strings(&ENCLAVE_ACTIONS),
        resources: vec!["*".to_owned()],
        conditions: vec![Condition {
            operator: Operator::Null,
            key: IMAGE_SHA384_KEY.to_owned(),
            values: vec!["true".to_owned()],
        }],
    });
    KeyPolicy {
        version: POLICY_VERSION.to_owned(),
        id: Some("enclave-approvals-log-key".to_owned()),
        statements,
    }
}
