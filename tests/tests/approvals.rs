//! The approvals workflow end to end, through the real binaries and govctl (which checks
//! every receipt against the attested log key): the three scenarios of the Azure Enclave
//! approvals documentation, separation of duties, rejection, expiry, copied settings, and
//! maintenance mode through approved requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::time::Duration;

use ea_ledger::{Operation, Query};
use ea_tests::{now_ms, Deployment, Gov};
use serde_json::{json, Value};

const C1: &str = "/communities/c1";
const E1: &str = "/communities/c1/virtualEnclaves/e1";
const E2: &str = "/communities/c1/virtualEnclaves/e2";
const INTERNET: &str = "/communities/c1/communityEndpoints/internet";

const USERS: &[&str] = &[
    "admin",
    "alice",
    "expert",
    "sec1",
    "sec2",
    "approver",
    "reader",
    "owner",
    "reviewer1",
    "reviewer2",
    "reviewer3",
    "maint",
];

/// One community with two enclaves and an internet endpoint. Enclave creation needs the
/// cyber `expert` and the `security` group; connection creation and updates need the
/// `security` group; enclave maintenance mode needs one approver.
fn policy() -> Value {
    let ra = |id: &str, who: &str, role: &str, scope: &str| json!({"id": id, "principalId": who, "roleDefinitionId": role, "scope": scope});
    json!({
        "principals": [{"id": "security", "type": "Group", "members": ["sec1", "sec2"]}],
        "communities": [{"id": C1, "addressSpace": "10.0.0.0/8", "approvalSettings": {
            "enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1,
                                "mandatoryApprovers": ["expert", "security"]},
            "connectionCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1,
                                   "mandatoryApprovers": ["security"]},
            "connectionUpdate": {"approvalPolicy": "Required", "minimumApproversRequired": 1,
                                 "mandatoryApprovers": ["security"]},
            "enclaveMaintenanceMode": {"approvalPolicy": "Required", "minimumApproversRequired": 1}
        }}],
        "virtualEnclaves": [{"id": E1, "addressSpace": "10.1.0.0/16"},
                            {"id": E2, "addressSpace": "10.2.0.0/16"}],
        "communityEndpoints": [{"id": INTERNET, "ruleCollection": [
            {"endpointRuleName": "https", "destination": "0.0.0.0/0", "ports": "443", "protocols": ["TCP"]}]}],
        "roleAssignments": [
            ra("ra-admin", "admin", "Owner", "/"),
            ra("ra-alice", "alice", "Community Contributor", C1),
            ra("ra-alice-approver", "alice", "Enclave Approver", C1),
            ra("ra-expert", "expert", "Enclave Approver", C1),
            ra("ra-security", "security", "Enclave Approver", C1),
            ra("ra-approver", "approver", "Enclave Approver", C1),
            ra("ra-reader", "reader", "Enclave Reader", C1),
            ra("ra-owner", "owner", "Enclave Owner", E2),
            ra("ra-r1", "reviewer1", "Enclave Approver", C1),
            ra("ra-r2", "reviewer2", "Enclave Approver", C1),
            ra("ra-r3", "reviewer3", "Enclave Approver", C1),
            ra("ra-maint", "maint", "Enclave Contributor", E1),
        ]
    })
}

fn deployment() -> Deployment {
    Deployment::start(USERS, policy())
}

/// The approval id of a pending answer.
fn pending_id(gov: &Gov) -> String {
    assert_eq!(
        gov.json["outcome"], "pending",
        "{}\n{}",
        gov.stdout, gov.stderr
    );
    gov.json["approval"]["id"].as_str().unwrap().to_owned()
}

fn status_of(d: &Deployment, id: &str) -> String {
    let shown = d.govctl("admin", &["approvals", "show", id]).expect(0);
    shown.json["result"]["approval"]["approvalStatus"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn refused(gov: Gov, code: &str) {
    let gov = gov.expect(3);
    assert_eq!(gov.error_code(), code, "{}\n{}", gov.stdout, gov.stderr);
}

fn exists(d: &Deployment, scope: &str) -> bool {
    let gov = d.govctl("admin", &["read", "get", scope]);
    match gov.code {
        Some(0) => true,
        Some(1) if gov.stderr.contains("not_found") => false,
        _ => panic!("{}\n{}", gov.stdout, gov.stderr),
    }
}

#[test]
fn cyber_expert_and_security_group_must_both_approve_an_enclave_creation() {
    let d = deployment();
    let e3 = "/communities/c1/virtualEnclaves/e3";
    let pending = d.govctl(
        "alice",
        &[
            "enclave",
            "create",
            e3,
            "--address-space",
            "10.3.0.0/16",
            "--justification",
            "team B",
        ],
    );
    let id = pending_id(&pending.expect(0));
    assert!(
        pending_stderr_has_receipt(&d, &id),
        "the submission is recorded"
    );
    assert!(!exists(&d, e3), "nothing is created before the approvals");

    // An approver who is neither the expert nor in the security group is not eligible.
    refused(
        d.govctl("approver", &["approvals", "approve", &id]),
        "not_an_eligible_approver",
    );
    // A member of the security group approves: the minimum (1) is reached, but the expert,
    // a mandatory approver, is missing: it stays Pending.
    let voted = d
        .govctl(
            "sec1",
            &["approvals", "approve", &id, "--comment", "network ok"],
        )
        .expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Pending",
        "{}",
        voted.stdout
    );
    assert!(!exists(&d, e3));
    // The expert approves: Approved, and the enclave exists in the same step.
    let voted = d.govctl("expert", &["approvals", "approve", &id]).expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Approved",
        "{}",
        voted.stdout
    );
    assert!(
        voted.stderr.contains("approval_decision") && voted.stderr.contains("approval_applied"),
        "the vote and the application are each recorded with a verified receipt: {}",
        voted.stderr
    );
    assert!(exists(&d, e3));
    assert_eq!(status_of(&d, &id), "Approved");
}

/// The submission's record is in the log: its receipt was verified by govctl, and the
/// approval can be read back.
fn pending_stderr_has_receipt(d: &Deployment, id: &str) -> bool {
    status_of(d, id) == "Pending"
}

#[test]
fn separation_of_duties() {
    let d = deployment();
    let id = pending_id(
        &d.govctl(
            "alice",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/x",
                "--address-space",
                "10.4.0.0/16",
            ],
        )
        .expect(0),
    );
    // alice holds Enclave Approver, but it is her own request.
    refused(
        d.govctl("alice", &["approvals", "approve", &id]),
        "separation_of_duties",
    );
    // The reader lists and reads pending approvals, and cannot approve.
    let listed = d
        .govctl("reader", &["approvals", "list", "--state", "Pending"])
        .expect(0);
    let approvals = listed.json["result"]["approvals"].as_array().unwrap();
    assert!(
        approvals.iter().any(|a| a["id"] == id.as_str()),
        "{}",
        listed.stdout
    );
    d.govctl("reader", &["approvals", "show", &id]).expect(0);
    refused(
        d.govctl("reader", &["approvals", "approve", &id]),
        "not_authorized",
    );
    // An approver cannot initiate any change.
    refused(
        d.govctl(
            "approver",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/y",
                "--address-space",
                "10.5.0.0/16",
            ],
        ),
        "not_authorized",
    );
    // An owner without the Approver role cannot approve.
    refused(
        d.govctl("owner", &["approvals", "approve", &id]),
        "not_authorized",
    );
    refused(
        d.govctl("admin", &["approvals", "approve", &id]),
        "not_authorized",
    );
    assert_eq!(status_of(&d, &id), "Pending");
}

fn connection_state(d: &Deployment, id: &str) -> String {
    let read = d.govctl("admin", &["read", "get", id]).expect(0);
    read.json["result"]["resource"]["resource"]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn flow_allowed(d: &Deployment) -> bool {
    let gov = d.govctl(
        "admin",
        &[
            "flow",
            "--from",
            E1,
            "--to",
            "8.8.8.8",
            "--port",
            "443",
            "--protocol",
            "TCP",
        ],
    );
    match gov.code {
        Some(0) => true,
        Some(3) => false,
        _ => panic!("{}\n{}", gov.stdout, gov.stderr),
    }
}

#[test]
fn security_group_approves_connection_creation_and_updates() {
    let d = deployment();
    let conn = "/communities/c1/enclaveConnections/web";
    let id = pending_id(
        &d.govctl(
            "alice",
            &[
                "connection",
                "create",
                conn,
                "--source",
                E1,
                "--source-cidr",
                "10.1.0.0/24",
                "--endpoint",
                INTERNET,
            ],
        )
        .expect(0),
    );
    assert_eq!(connection_state(&d, conn), "PendingApproval");
    assert!(!flow_allowed(&d), "a pending connection carries no traffic");
    d.govctl("sec2", &["approvals", "approve", &id]).expect(0);
    assert_eq!(connection_state(&d, conn), "Active");
    assert!(flow_allowed(&d));

    let id = pending_id(
        &d.govctl(
            "alice",
            &[
                "connection",
                "update",
                conn,
                "--source",
                E1,
                "--source-cidr",
                "10.1.1.0/24",
                "--endpoint",
                INTERNET,
            ],
        )
        .expect(0),
    );
    assert_eq!(connection_state(&d, conn), "PendingUpdate");
    d.govctl("sec1", &["approvals", "approve", &id]).expect(0);
    assert_eq!(connection_state(&d, conn), "Active");
    let read = d.govctl("admin", &["read", "get", conn]).expect(0);
    assert_eq!(
        read.json["result"]["resource"]["resource"]["sourceCidr"],
        "10.1.1.0/24"
    );
}

#[test]
fn an_enclave_owners_endpoint_with_three_trusted_reviewers() {
    let d = deployment();
    let endpoint = "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/api";
    d.govctl(
        "owner",
        &[
            "endpoint",
            "create",
            endpoint,
            "--rule",
            "api,10.2.0.10,8443,TCP",
            "--approver",
            "reviewer1",
            "--approver",
            "reviewer2",
            "--approver",
            "reviewer3",
        ],
    )
    .expect(0);
    let conn = "/communities/c1/enclaveConnections/to-api";
    let id = pending_id(
        &d.govctl(
            "alice",
            &[
                "connection",
                "create",
                conn,
                "--source",
                E1,
                "--source-cidr",
                "10.1.0.0/24",
                "--endpoint",
                endpoint,
            ],
        )
        .expect(0),
    );
    // The community's setting (the security group) is met, but the endpoint's own
    // reviewers must add one approval.
    let voted = d.govctl("sec1", &["approvals", "approve", &id]).expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Pending",
        "{}",
        voted.stdout
    );
    refused(
        d.govctl("approver", &["approvals", "approve", &id]),
        "not_an_eligible_approver",
    );
    let voted = d
        .govctl("reviewer2", &["approvals", "approve", &id])
        .expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Approved",
        "{}",
        voted.stdout
    );
    assert_eq!(connection_state(&d, conn), "Active");
}

#[test]
fn rejection_creates_nothing_settings_are_copied_and_an_expired_approval_cannot_be_approved() {
    let mut d = deployment();
    // A rejected request creates nothing.
    let e9 = "/communities/c1/virtualEnclaves/e9";
    let id = pending_id(
        &d.govctl(
            "alice",
            &["enclave", "create", e9, "--address-space", "10.9.0.0/16"],
        )
        .expect(0),
    );
    d.govctl("expert", &["approvals", "reject", &id, "--comment", "no"])
        .expect(0);
    assert_eq!(status_of(&d, &id), "Rejected");
    assert!(!exists(&d, e9));
    refused(
        d.govctl("sec1", &["approvals", "approve", &id]),
        "approval_not_pending",
    );

    // Changing the settings does not change a pending request.
    let e8 = "/communities/c1/virtualEnclaves/e8";
    let copied = pending_id(
        &d.govctl(
            "alice",
            &["enclave", "create", e8, "--address-space", "10.8.0.0/16"],
        )
        .expect(0),
    );
    let settings = d.stack.dir.path().join("loose.json");
    std::fs::write(
        &settings,
        json!({"enclaveCreation": {"approvalPolicy": "NotRequired"}}).to_string(),
    )
    .unwrap();
    d.govctl(
        "admin",
        &[
            "approval-settings",
            "set",
            C1,
            "--file",
            settings.to_str().unwrap(),
        ],
    )
    .expect(0);
    let voted = d
        .govctl("sec1", &["approvals", "approve", &copied])
        .expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Pending",
        "the expert is still mandatory for this one: {}",
        voted.stdout
    );
    // A new request follows the new settings: applied at once.
    let applied = d
        .govctl(
            "alice",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/e7",
                "--address-space",
                "10.7.0.0/16",
            ],
        )
        .expect(0);
    assert_eq!(applied.json["outcome"], "applied", "{}", applied.stdout);

    // An expired approval cannot be approved: restart the (mock) enclave eight days later.
    const EIGHT_DAYS: u64 = 8 * 24 * 3_600_000;
    d.stack.kill_enclave();
    d.stack
        .start_enclave_with(&["--mock-clock-offset-ms", &EIGHT_DAYS.to_string()]);
    d.wait_serving(Duration::from_secs(30));
    let later = now_ms() + EIGHT_DAYS;
    let approve = Operation::Submit {
        command: Box::new(serde_json::from_value(json!({"approve": {"id": copied}})).unwrap()),
        justification: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(d.post_signed(d.sign("expert", &approve, later)));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["result"]["code"], "approval_not_pending", "{body}");
    let show = Operation::Read(Query::Approval {
        id: copied.parse().unwrap(),
    });
    let (status, body) = rt.block_on(d.post_signed(d.sign("admin", &show, later + 1)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["result"]["approval"]["approvalStatus"],
        "Expired"
    );
    assert!(!exists_at(&d, &rt, e8, later + 2));
}

fn exists_at(d: &Deployment, rt: &tokio::runtime::Runtime, scope: &str, at: u64) -> bool {
    let read = Operation::Read(Query::Resource {
        scope: scope.parse().unwrap(),
    });
    let (status, _) = rt.block_on(d.post_signed(d.sign("admin", &read, at)));
    status == 200
}

/// `maint`'s permission to do `operation` in enclave e1's managed resource group, as the
/// admin's recorded check says.
fn maint_may(d: &Deployment, operation: &str) -> bool {
    let scope = "/communities/c1/virtualEnclaves/e1/managed/providers/Microsoft.Network/virtualNetworks/vnet/subnets/s1";
    let gov = d.govctl(
        "admin",
        &[
            "check",
            "--principal",
            "maint",
            "--op",
            operation,
            "--scope",
            scope,
        ],
    );
    match gov.code {
        Some(0) => true,
        Some(3) => false,
        _ => panic!("{}\n{}", gov.stdout, gov.stderr),
    }
}

const JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
const WRITE: &str = "Microsoft.Network/virtualNetworks/subnets/write";

fn set_mode(d: &Deployment, args: &[&str]) {
    let mut argv = vec!["maintenance", "set", E1];
    argv.extend_from_slice(args);
    let id = pending_id(&d.govctl("admin", &argv).expect(0));
    let voted = d
        .govctl("approver", &["approvals", "approve", &id])
        .expect(0);
    assert_eq!(
        voted.json["approval"]["approvalStatus"], "Approved",
        "{}",
        voted.stdout
    );
}

#[test]
fn maintenance_mode_through_approved_requests() {
    let d = deployment();
    // Off: the managed group's deny assignments leave maint (an Enclave Contributor) only
    // reads and tags there.
    assert!(!maint_may(&d, JOIN));
    assert!(!maint_may(&d, WRITE));

    // General: excluded from Deny All only: the Allow Dataplane list (subnet join), nothing more.
    set_mode(
        &d,
        &[
            "--mode",
            "General",
            "--principal",
            "maint",
            "--reason",
            "Networking",
        ],
    );
    assert!(maint_may(&d, JOIN));
    assert!(!maint_may(&d, WRITE));

    // Advanced: excluded from both: whatever its roles allow.
    set_mode(
        &d,
        &[
            "--mode",
            "Advanced",
            "--principal",
            "maint",
            "--reason",
            "Networking",
        ],
    );
    assert!(maint_may(&d, JOIN));
    assert!(maint_may(&d, WRITE));

    // Off again removes it.
    set_mode(&d, &["--mode", "Off"]);
    assert!(!maint_may(&d, JOIN));

    // expiresAt ends it by itself, recorded as an automatic transition.
    let expires = ea_policy::Timestamp::from_unix_millis(i64::try_from(now_ms() + 4_000).unwrap())
        .unwrap()
        .to_rfc3339();
    set_mode(
        &d,
        &[
            "--mode",
            "General",
            "--principal",
            "maint",
            "--reason",
            "Networking",
            "--expires-at",
            &expires,
        ],
    );
    assert!(maint_may(&d, JOIN));
    std::thread::sleep(Duration::from_millis(5_000));
    assert!(!maint_may(&d, JOIN), "the window closed by itself");
    let audit = d.stack.dir.path().join("audit");
    let fetched = std::process::Command::new(ea_tests::binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &d.stack.url, "--out"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    let bytes = std::fs::read(audit.join("records.cbor-seq")).unwrap();
    assert!(
        bytes
            .windows(b"maintenanceModeExpired".len())
            .any(|w| w == b"maintenanceModeExpired"),
        "the expiry is a record of the log"
    );
}
