//! Key policy evaluation, as a table: the enclave policy that `govctl kms-policy` prints
//! (read back from its JSON, as KMS reads it), and hand-written policies for the rules of
//! evaluation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::collections::BTreeMap;

use ea_kms::policy::{
    attestation_context, enclave_key_policy, Decision, KeyPolicy, Operator, PolicyError,
    RequestContext,
};

const ADMIN: &str = "arn:aws:iam::111122223333:role/KeyAdmin";
const ENCLAVE_ROLE: &str = "arn:aws:iam::111122223333:role/EnclaveInstance";
const ENCLAVE_SESSION: &str =
    "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-0123456789abcdef0";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn pcrs(pcr0: u8) -> BTreeMap<u16, Vec<u8>> {
    BTreeMap::from([
        (0, vec![pcr0; 48]),
        (1, vec![0x11; 48]),
        (2, vec![0x22; 48]),
    ])
}

fn enclave_policy() -> KeyPolicy {
    let printed = enclave_key_policy(ADMIN, ENCLAVE_ROLE, &pcrs(0xa0)).to_json_pretty();
    KeyPolicy::from_json(&printed).unwrap()
}

fn request(principal: &str, action: &str) -> RequestContext {
    RequestContext::new(principal, action, KEY)
}

fn sid(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Allow { statement } | Decision::Deny { statement } => statement.sid.as_deref(),
        Decision::ImplicitDeny { .. } => None,
    }
}

#[test]
fn the_enclave_policy_as_a_table() {
    let policy = enclave_policy();
    let attested = |pcr0| attestation_context(&pcrs(pcr0));
    for (name, request, expected) in [
        (
            "matching PCRs: Decrypt",
            request(ENCLAVE_SESSION, "kms:Decrypt").with_values(attested(0xa0)),
            Ok("EnclaveWithAttestation"),
        ),
        (
            "matching PCRs: GenerateDataKey",
            request(ENCLAVE_SESSION, "kms:GenerateDataKey").with_values(attested(0xa0)),
            Ok("EnclaveWithAttestation"),
        ),
        (
            "matching PCRs, upper-case hex in the request",
            request(ENCLAVE_SESSION, "kms:Decrypt").with_values(
                attested(0xa0)
                    .into_iter()
                    .map(|(k, v)| (k, v.to_uppercase())),
            ),
            Ok("EnclaveWithAttestation"),
        ),
        (
            "matching PCRs, but Encrypt is not granted",
            request(ENCLAVE_SESSION, "kms:Encrypt").with_values(attested(0xa0)),
            Err(None),
        ),
        (
            "no Recipient: the Null condition denies",
            request(ENCLAVE_SESSION, "kms:Decrypt"),
            Err(Some("DenyWithoutAttestation")),
        ),
        (
            "the key admin decrypting without a Recipient: denied explicitly",
            request(ADMIN, "kms:Decrypt"),
            Err(Some("DenyWithoutAttestation")),
        ),
        (
            "the key admin decrypting with a valid attestation: not granted",
            request(ADMIN, "kms:Decrypt").with_values(attested(0xa0)),
            Err(None),
        ),
        (
            "the key admin managing the key",
            request(ADMIN, "kms:PutKeyPolicy"),
            Ok("KeyAdministration"),
        ),
        (
            "the key admin creating a grant: not granted",
            request(ADMIN, "kms:CreateGrant"),
            Err(None),
        ),
        (
            "another role of the account, with matching PCRs",
            request(
                "arn:aws:sts::111122223333:assumed-role/Other/i-1",
                "kms:Decrypt",
            )
            .with_values(attested(0xa0)),
            Err(None),
        ),
    ] {
        let decision = policy.evaluate(&request);
        match expected {
            Ok(allowed_by) => {
                assert!(decision.is_allowed(), "{name}: {decision}");
                assert_eq!(sid(&decision), Some(allowed_by), "{name}");
            }
            Err(Some(denied_by)) => {
                assert!(
                    matches!(decision, Decision::Deny { .. }),
                    "{name}: {decision}"
                );
                assert_eq!(sid(&decision), Some(denied_by), "{name}");
            }
            Err(None) => assert!(
                matches!(decision, Decision::ImplicitDeny { .. }),
                "{name}: {decision}"
            ),
        }
    }
}

#[test]
fn a_different_pcr0_is_denied_naming_the_condition() {
    let decision = enclave_policy().evaluate(
        &request(ENCLAVE_SESSION, "kms:Decrypt").with_values(attestation_context(&pcrs(0xb0))),
    );
    let Decision::ImplicitDeny { near_misses } = &decision else {
        panic!("{decision}");
    };
    assert_eq!(near_misses.len(), 1);
    let miss = &near_misses[0];
    assert_eq!(
        miss.statement.sid.as_deref(),
        Some("EnclaveWithAttestation")
    );
    assert_eq!(miss.failed.operator, Operator::StringEqualsIgnoreCase);
    assert_eq!(miss.failed.key, "kms:RecipientAttestation:ImageSha384");
    assert_eq!(miss.failed.actual, Some("b0".repeat(48)));
    let text = decision.to_string();
    assert!(
        text.contains("EnclaveWithAttestation")
            && text.contains("StringEqualsIgnoreCase on kms:RecipientAttestation:ImageSha384"),
        "{text}"
    );

    // A missing PCR2 fails on PCR2.
    let mut partial = pcrs(0xa0);
    partial.remove(&2);
    let decision = enclave_policy().evaluate(
        &request(ENCLAVE_SESSION, "kms:Decrypt").with_values(attestation_context(&partial)),
    );
    let Decision::ImplicitDeny { near_misses } = decision else {
        panic!()
    };
    assert_eq!(near_misses[0].failed.key, "kms:RecipientAttestation:PCR2");
    assert_eq!(near_misses[0].failed.actual, None);
}

#[test]
fn a_policy_without_the_condition_lets_a_non_attested_caller_decrypt() {
    let policy = KeyPolicy::from_json(
        r#"{
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "kms:*",
                "Resource": "*"
            }]
        }"#,
    )
    .unwrap();
    let decision = policy.evaluate(&request(ENCLAVE_SESSION, "kms:Decrypt"));
    assert_eq!(sid(&decision), Some("Enable IAM User Permissions"));
    assert!(decision.is_allowed());
    // Another account is not named by the root principal.
    assert!(!policy
        .evaluate(&request(
            "arn:aws:sts::444455556666:assumed-role/EnclaveInstance/i-1",
            "kms:Decrypt"
        ))
        .is_allowed());
}

#[test]
fn deny_wins_over_allow_in_any_order() {
    let policy = KeyPolicy::from_json(
        r#"{
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "DenyFirst", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"}}},
                {"Sid": "AllowAll", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
                {"Sid": "DenyLater", "Effect": "Deny", "Principal": "*", "Action": ["kms:GenerateDataKey*"], "Resource": "*"}
            ]
        }"#,
    )
    .unwrap();
    let decrypt = request(ENCLAVE_SESSION, "kms:Decrypt");
    assert_eq!(sid(&policy.evaluate(&decrypt)), Some("AllowAll"));
    let from_account = decrypt.with_values([("kms:CallerAccount".into(), "111122223333".into())]);
    assert_eq!(sid(&policy.evaluate(&from_account)), Some("DenyFirst"));
    let generate = request(ENCLAVE_SESSION, "kms:GenerateDataKey");
    assert_eq!(sid(&policy.evaluate(&generate)), Some("DenyLater"));
}

#[test]
fn operators() {
    let policy = |operator: &str, value: &str| {
        KeyPolicy::from_json(&format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Principal": "*",
                "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {{"{operator}": {{"k:Key": {value}}}}}}}}}"#
        ))
        .unwrap()
    };
    let with =
        |v: &str| request(ENCLAVE_SESSION, "kms:Decrypt").with_values([("K:KEY".into(), v.into())]);
    let without = request(ENCLAVE_SESSION, "kms:Decrypt");
    for (operator, value, request, expected) in [
        ("StringEquals", r#""AbC""#, with("AbC"), true),
        ("StringEquals", r#""AbC""#, with("abc"), false),
        ("StringEquals", r#"["x", "AbC"]"#, with("AbC"), true),
        ("StringEquals", r#""AbC""#, without.clone(), false),
        ("StringEqualsIgnoreCase", r#""AbC""#, with("abc"), true),
        ("StringEqualsIgnoreCase", r#""AbC""#, with("abd"), false),
        ("StringNotEquals", r#""AbC""#, with("abc"), true),
        ("StringNotEquals", r#""AbC""#, with("AbC"), false),
        ("StringNotEquals", r#""AbC""#, without.clone(), true),
        ("StringNotEqualsIgnoreCase", r#""AbC""#, with("abc"), false),
        ("Null", r#""true""#, without.clone(), true),
        ("Null", r#""true""#, with("x"), false),
        ("Null", r#"false"#, with("x"), true),
        ("Null", r#""false""#, without.clone(), false),
        ("Bool", r#"true"#, with("true"), true),
        ("Bool", r#""true""#, with("false"), false),
        ("Bool", r#""true""#, without.clone(), false),
    ] {
        assert_eq!(
            policy(operator, value).evaluate(&request).is_allowed(),
            expected,
            "{operator} {value} {:?}",
            request.value("k:key")
        );
    }
}

#[test]
fn what_the_model_cannot_evaluate_is_refused_with_its_path() {
    let statement = |body: &str| {
        format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": "*", "Resource": "*", {body}}}]}}"#
        )
    };
    for (text, expected) in [
        (statement(r#""NotAction": "kms:Decrypt""#), "Statement[0]: NotAction is not supported"),
        (
            statement(r#""Action": "kms:Decrypt", "Condition": {"ForAnyValue:StringEquals": {"a": "b"}}"#),
            "Statement[0].Condition: condition operator \"ForAnyValue:StringEquals\" is not supported",
        ),
        (
            statement(r#""Action": "kms:Decrypt", "Condition": {"StringEqualsIfExists": {"a": "b"}}"#),
            "not supported",
        ),
        (statement(r#""Action": 7"#), "Statement[0].Action: expected a string"),
        (statement(r#""Action": "kms:Decrypt", "Condition": {"Null": {"a": "maybe"}}"#), "Null takes"),
        (
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Principal": "*", "Action": "a", "Resource": "*"}]}"#.to_owned(),
            "Statement[0].Effect",
        ),
        (r#"{"Version": "2019-01-01", "Statement": []}"#.to_owned(), "Version"),
        (r#"{"Version": "2012-10-17", "Statement": []}"#.to_owned(), "Statement"),
        ("[]".to_owned(), "expected a JSON object"),
    ] {
        let error = KeyPolicy::from_json(&text).unwrap_err();
        assert!(error.to_string().contains(expected), "{text}\n=> {error}");
    }
    assert!(matches!(
        KeyPolicy::from_json(&" ".repeat(40_000)),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn printed_policy_reads_back_to_the_same_model() {
    let policy = enclave_key_policy(ADMIN, ENCLAVE_ROLE, &pcrs(0xa0));
    let text = policy.to_json_pretty();
    assert_eq!(KeyPolicy::from_json(&text).unwrap(), policy);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let condition = &value["Statement"][1]["Condition"]["StringEqualsIgnoreCase"];
    assert_eq!(
        condition["kms:RecipientAttestation:ImageSha384"],
        "a0".repeat(48)
    );
    assert_eq!(condition["kms:RecipientAttestation:PCR1"], "11".repeat(48));
    assert_eq!(
        value["Statement"][2]["Condition"]["Null"]["kms:RecipientAttestation:ImageSha384"],
        "true"
    );
    assert_eq!(value["Statement"][2]["Principal"], "*");
}

fn image(a: u8, b: u8, c: u8) -> BTreeMap<u16, Vec<u8>> {
    BTreeMap::from([(0, vec![a; 48]), (1, vec![b; 48]), (2, vec![c; 48])])
}

#[test]
fn one_statement_per_image_and_no_mixing_of_their_pcrs() {
    let images = [image(0xa0, 0xa1, 0xa2), image(0xb0, 0xb1, 0xb2)];
    let printed =
        ea_kms::policy::log_key_policy(ADMIN, ENCLAVE_ROLE, &images, false).to_json_pretty();
    let policy = KeyPolicy::from_json(&printed).unwrap();
    let decrypt = |pcrs: BTreeMap<u16, Vec<u8>>| {
        policy.evaluate(
            &request(ENCLAVE_SESSION, "kms:Decrypt").with_values(attestation_context(&pcrs)),
        )
    };
    assert_eq!(
        sid(&decrypt(images[0].clone())),
        Some("EnclaveWithAttestation1")
    );
    assert_eq!(
        sid(&decrypt(images[1].clone())),
        Some("EnclaveWithAttestation2")
    );
    // PCR0 of one image with PCR1 and PCR2 of the other matches no statement.
    let mixed = image(0xa0, 0xb1, 0xb2);
    assert!(!decrypt(mixed).is_allowed());
    // The administrator may still replace this policy.
    assert!(policy
        .evaluate(&request(ADMIN, "kms:PutKeyPolicy"))
        .is_allowed());
}

#[test]
fn an_immutable_policy_lets_nobody_change_it_or_replicate_the_key() {
    let printed =
        ea_kms::policy::log_key_policy(ADMIN, ENCLAVE_ROLE, &[image(0xa0, 0xa1, 0xa2)], true)
            .to_json_pretty();
    assert!(!printed.contains("kms:PutKeyPolicy"), "{printed}");
    let policy = KeyPolicy::from_json(&printed).unwrap();
    for principal in [ADMIN, ENCLAVE_SESSION, "arn:aws:iam::111122223333:root"] {
        for action in [
            "kms:PutKeyPolicy",
            "kms:ReplicateKey",
            "kms:UpdatePrimaryRegion",
            "kms:CreateGrant",
        ] {
            assert!(
                !policy.evaluate(&request(principal, action)).is_allowed(),
                "{principal} may {action}"
            );
        }
    }
    assert!(policy
        .evaluate(&request(ADMIN, "kms:DescribeKey"))
        .is_allowed());
    assert_eq!(
        sid(&policy.evaluate(
            &request(ENCLAVE_SESSION, "kms:Decrypt")
                .with_values(attestation_context(&image(0xa0, 0xa1, 0xa2)))
        )),
        Some("EnclaveWithAttestation")
    );
}
