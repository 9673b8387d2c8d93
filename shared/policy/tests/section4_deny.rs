//! SPEC-policy section 4: deny assignments, the platform's two on managed groups (4.1),
//! maintenance mode (4.2) and protected workloads (4.3).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use common::*;
use ea_policy::{DenyKind, PolicyState, Reason, APPROVE};
use serde_json::{json, Value};

const WRITE_VM: &str = "Microsoft.Compute/virtualMachines/write";

fn with_deny(deny: Value) -> PolicyState {
    let mut state = base();
    for (i, who) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        assign(&mut state, &format!("ra-{i}"), who, "Owner", "/");
    }
    let mut d = json!({"id": "d1", "scope": E1, "permissions": {"actions": [WRITE_VM]}, "principals": "Everyone"});
    if let (Some(d), Some(extra)) = (d.as_object_mut(), deny.as_object()) {
        for (k, v) in extra {
            d.insert(k.clone(), v.clone());
        }
    }
    setup(&mut state, json!({"createDenyAssignment": d}));
    state
}

struct Row {
    rule: &'static str,
    deny: fn() -> Value,
    who: &'static str,
    op: &'static str,
    scope: &'static str,
    denied_by_it: bool,
}

const ROWS: &[Row] = &[
    Row {
        rule: "denies at its scope",
        deny: || json!({}),
        who: "alice",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "denies below its scope",
        deny: || json!({}),
        who: "alice",
        op: WRITE_VM,
        scope: W1,
        denied_by_it: true,
    },
    Row {
        rule: "not above its scope",
        deny: || json!({}),
        who: "alice",
        op: WRITE_VM,
        scope: C1,
        denied_by_it: false,
    },
    Row {
        rule: "doNotApplyToChildScopes: still at its scope",
        deny: || json!({"doNotApplyToChildScopes": true}),
        who: "alice",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "doNotApplyToChildScopes: not below it",
        deny: || json!({"doNotApplyToChildScopes": true}),
        who: "alice",
        op: WRITE_VM,
        scope: W1,
        denied_by_it: false,
    },
    Row {
        rule: "op must match Actions",
        deny: || json!({}),
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/delete",
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "op matching NotActions escapes",
        deny: || json!({"permissions": {"actions": ["*"], "notActions": ["Microsoft.Compute/*"]}}),
        who: "alice",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "Actions * denies any action",
        deny: || json!({"permissions": {"actions": ["*"]}}),
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "Actions * does not deny a data action",
        deny: || json!({"permissions": {"actions": ["*"]}}),
        who: "alice",
        op: APPROVE,
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "DataActions deny data actions",
        deny: || json!({"permissions": {"dataActions": ["Microsoft.Mission/approvals/*"]}}),
        who: "alice",
        op: APPROVE,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "listed principal is denied",
        deny: || json!({"principals": ["alice"]}),
        who: "alice",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "unlisted principal is not",
        deny: || json!({"principals": ["alice"]}),
        who: "dave",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "listed through a group",
        deny: || json!({"principals": ["team"]}),
        who: "bob",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "listed through a nested group",
        deny: || json!({"principals": ["admins"]}),
        who: "bob",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "excluded directly",
        deny: || json!({"excludePrincipals": ["alice"]}),
        who: "alice",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "excluded through a group",
        deny: || json!({"excludePrincipals": ["admins"]}),
        who: "bob",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: false,
    },
    Row {
        rule: "exclusion of someone else does not help",
        deny: || json!({"excludePrincipals": ["admins"]}),
        who: "dave",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: true,
    },
    Row {
        rule: "listed and excluded: excluded wins",
        deny: || json!({"principals": ["team"], "excludePrincipals": ["bob"]}),
        who: "bob",
        op: WRITE_VM,
        scope: E1,
        denied_by_it: false,
    },
];

#[test]
fn custom_deny_rows() {
    for row in ROWS {
        let state = with_deny((row.deny)());
        let decision = decide(&state, row.who, row.op, row.scope);
        // Everyone holds Owner at `/`, so without the deny every row above is allowed
        // (except data actions, which Owner does not grant).
        let custom = denied_by(&decision).is_some_and(|kinds| kinds.contains(&DenyKind::Custom));
        assert_eq!(custom, row.denied_by_it, "{}: {decision:?}", row.rule);
        let owner_grants = row.op != APPROVE;
        assert_eq!(
            decision.allowed,
            owner_grants && !row.denied_by_it,
            "{}",
            row.rule
        );
    }
}

#[test]
fn owners_are_allowed_where_no_deny_applies() {
    let state = with_deny(json!({}));
    assert!(allowed(&state, "alice", WRITE_VM, E2));
    assert!(allowed(
        &state,
        "alice",
        "Microsoft.Compute/virtualMachines/delete",
        E1
    ));
}

mod platform {
    //! 4.1: the two deny assignments on every managed resource group.
    use super::*;

    const COMMUNITY_ONLY: &str = "Microsoft.Network/virtualHubs/routeTables/write";
    const ENCLAVE_ONLY: &str = "Microsoft.Network/privateDnsZones/A/write";
    const NEITHER: &str = "Microsoft.Network/virtualNetworks/write";

    fn owners() -> PolicyState {
        let mut state = base();
        assign(&mut state, "ra-1", "alice", "Owner", "/");
        state
    }

    #[test]
    fn every_managed_group_lets_owners_only_read_and_tag() {
        let state = owners();
        let vnet = "/communities/c1/virtualEnclaves/e1/managed/providers/Microsoft.Network/virtualNetworks/v";
        for scope in [
            C1_MANAGED,
            E1_MANAGED,
            vnet,
            "/communities/c1/virtualEnclaves/e2/managed",
        ] {
            assert!(
                allowed(
                    &state,
                    "alice",
                    "Microsoft.Network/virtualNetworks/read",
                    scope
                ),
                "{scope}"
            );
            assert!(
                allowed(&state, "alice", "Microsoft.Resources/tags/write", scope),
                "{scope}"
            );
            let d = decide(&state, "alice", NEITHER, scope);
            assert_eq!(
                denied_by(&d),
                Some(vec![
                    DenyKind::PlatformDenyAll,
                    DenyKind::PlatformAllowDataplaneActions
                ]),
                "{scope}"
            );
        }
        // Outside managed groups the platform denies nothing.
        assert!(allowed(&state, "alice", NEITHER, W1));
        assert!(allowed(&state, "alice", NEITHER, C1));
    }

    #[test]
    fn dataplane_lists_differ_between_community_and_enclave() {
        let state = owners();
        let kinds = |op: &str, scope: &str| {
            denied_by(&decide(&state, "alice", op, scope)).unwrap_or_default()
        };
        use DenyKind::*;
        assert_eq!(kinds(COMMUNITY_ONLY, C1_MANAGED), [PlatformDenyAll]);
        assert_eq!(
            kinds(COMMUNITY_ONLY, E1_MANAGED),
            [PlatformDenyAll, PlatformAllowDataplaneActions]
        );
        assert_eq!(kinds(ENCLAVE_ONLY, E1_MANAGED), [PlatformDenyAll]);
        assert_eq!(
            kinds(ENCLAVE_ONLY, C1_MANAGED),
            [PlatformDenyAll, PlatformAllowDataplaneActions]
        );
        for common in [
            "Microsoft.Insights/alertRules/write",
            "Microsoft.Support/supportTickets/write",
        ] {
            assert_eq!(kinds(common, C1_MANAGED), [PlatformDenyAll], "{common}");
            assert_eq!(kinds(common, E1_MANAGED), [PlatformDenyAll], "{common}");
        }
    }

    #[test]
    fn platform_is_always_excluded() {
        let state = owners();
        let d = decide(&state, "platform", NEITHER, E1_MANAGED);
        // Not denied by a deny assignment; it simply holds no role (the engine acts without
        // checks).
        assert_eq!(d.reason, Reason::NotAuthorized);
    }

    #[test]
    fn they_are_derived_and_follow_their_resource() {
        let mut state = owners();
        setup(
            &mut state,
            json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": "10.9.0.0/16"}}),
        );
        let e9_managed = "/communities/c1/virtualEnclaves/e9/managed";
        assert!(!allowed(&state, "alice", NEITHER, e9_managed));
        setup(
            &mut state,
            json!({"deleteVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9"}}),
        );
        // Gone with the enclave: nothing left to deny (Owner at / allows).
        assert!(allowed(&state, "alice", NEITHER, e9_managed));
        let listed = state.effective_deny_assignments(t0());
        // c1, e1, e2: two each; none for the deleted e9.
        assert_eq!(listed.len(), 6);
        assert!(listed
            .iter()
            .all(|d| d.exclude_principals.iter().any(|p| p.is_platform())));
    }
}

mod maintenance {
    //! 4.2: the mode table, for a maintenance principal and for someone else, on both kinds
    //! of managed group.
    use super::*;
    use ea_policy::{MaintenanceMode, Refusal};

    const READ: &str = "Microsoft.Network/virtualNetworks/read";
    const TAG: &str = "Microsoft.Resources/tags/write";
    const WRITE: &str = "Microsoft.Network/virtualNetworks/write";

    /// An operation of the Allow Dataplane list of each kind of group.
    fn dataplane(owner: &str) -> &'static str {
        if owner == C1 {
            "Microsoft.Network/azureFirewalls/networkRuleCollections/write"
        } else {
            "Microsoft.Network/routeTables/routes/write"
        }
    }

    fn in_mode(owner: &str, mode: &str, principals: Value) -> PolicyState {
        let mut state = base();
        assign(&mut state, "ra-1", "alice", "Owner", "/");
        assign(&mut state, "ra-2", "dave", "Owner", "/");
        let justification = if mode == "Off" { "Off" } else { "Networking" };
        let principals = if mode == "Off" { json!([]) } else { principals };
        setup(
            &mut state,
            json!({"setMaintenanceMode": {"scope": owner, "configuration": {
                "mode": mode, "principals": principals, "justification": justification}}}),
        );
        state
    }

    /// (mode, may the maintenance principal [read, tag, dataplane, write], may someone else).
    const TABLE: &[(&str, [bool; 4], [bool; 4])] = &[
        (
            "Off",
            [true, true, false, false],
            [true, true, false, false],
        ),
        (
            "General",
            [true, true, true, false],
            [true, true, false, false],
        ),
        (
            "Advanced",
            [true, true, true, true],
            [true, true, false, false],
        ),
    ];

    #[test]
    fn mode_table() {
        for owner in [C1, E1] {
            let managed = format!("{owner}/managed");
            for (mode, maintainer, other) in TABLE {
                // Directly named, and named through a group.
                for (principals, maintainer_id) in
                    [(json!(["alice"]), "alice"), (json!(["admins"]), "carol")]
                {
                    let mut state = in_mode(owner, mode, principals);
                    assign(&mut state, "ra-3", "carol", "Owner", "/");
                    let ops = [READ, TAG, dataplane(owner), WRITE];
                    for (i, operation) in ops.iter().enumerate() {
                        let who_may = |who| allowed(&state, who, operation, &managed);
                        let expect_maintainer = if *mode == "Off" {
                            other[i]
                        } else {
                            maintainer[i]
                        };
                        assert_eq!(
                            who_may(maintainer_id),
                            expect_maintainer,
                            "{owner} {mode}: maintenance principal {maintainer_id} {operation}"
                        );
                        assert_eq!(
                            who_may("dave"),
                            other[i],
                            "{owner} {mode}: someone else {operation}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn advanced_still_needs_roles() {
        let mut state = in_mode(E1, "Advanced", json!(["erin"]));
        assert_eq!(
            decide(&state, "erin", WRITE, E1_MANAGED).reason,
            Reason::NotAuthorized
        );
        assign(&mut state, "ra-9", "erin", "Reader", "/");
        assert!(!allowed(&state, "erin", WRITE, E1_MANAGED));
    }

    #[test]
    fn expires_at_turns_the_mode_off_at_that_instant() {
        let mut state = base();
        assign(&mut state, "ra-1", "alice", "Owner", "/");
        setup(
            &mut state,
            json!({"setMaintenanceMode": {"scope": E1, "configuration": {"mode": "Advanced",
                "principals": ["alice"], "justification": "Governance", "expiresAt": "2025-06-01T13:00:00Z"}}}),
        );
        let write = op(WRITE);
        assert!(decide_at(&state, "alice", &write, E1_MANAGED, after(59)).allowed);
        assert!(!decide_at(&state, "alice", &write, E1_MANAGED, after(60)).allowed);
        let due = state.due_events(after(61));
        assert_eq!(due.len(), 1, "{due:?}");
        state.apply(&due[0]).unwrap();
        let config = state.maintenance(&s(E1)).unwrap();
        assert_eq!(config.mode, MaintenanceMode::Off);
        assert!(state.due_events(after(120)).is_empty());
    }

    #[test]
    fn validation_rules() {
        let rows = [
            (
                json!({"mode": "General", "principals": [], "justification": "Networking"}),
                false,
            ),
            (
                json!({"mode": "Advanced", "principals": ["alice"], "justification": "Off"}),
                false,
            ),
            (json!({"mode": "Off", "justification": "Governance"}), false),
            (json!({"mode": "Off", "justification": "Off"}), true),
            (
                json!({"mode": "General", "principals": ["alice"], "justification": "Governance"}),
                true,
            ),
            (
                json!({"mode": "General", "principals": ["nobody"], "justification": "Governance"}),
                false,
            ),
            (
                json!({"mode": "General", "principals": ["alice"], "justification": "Governance",
                    "expiresAt": "2025-06-01T11:00:00Z"}),
                false,
            ),
        ];
        for (configuration, ok) in rows {
            let mut state = base();
            let c =
                cmd(json!({"setMaintenanceMode": {"scope": E1, "configuration": configuration}}));
            let outcome = run(&mut state, "platform", c);
            assert_eq!(outcome.is_ok(), ok, "{configuration}: {outcome:?}");
            if let Err(refusal) = outcome {
                assert!(matches!(refusal, Refusal::Invalid(_)), "{refusal:?}");
            }
        }
    }

    #[test]
    fn changing_it_needs_maintenance_mode_write_and_is_governed() {
        let mut state = base();
        assign(&mut state, "ra-1", "alice", "Community Contributor", C1);
        assign(&mut state, "ra-2", "bob", "Community Owner", C1);
        let set = cmd(
            json!({"setMaintenanceMode": {"scope": C1, "configuration": {
            "mode": "General", "principals": ["alice"], "justification": "Networking"}}}),
        );
        // A contributor who could set it could lift its own limits.
        let refused = run(&mut state, "alice", set.clone()).unwrap_err();
        assert!(
            matches!(&refused, Refusal::NotAuthorized { operation, .. } if operation == "Microsoft.Mission/communities/maintenanceMode/write"),
            "{refused:?}"
        );
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {"communityMaintenanceMode": {
                "approvalPolicy": "Required", "minimumApproversRequired": 2}}}}),
        );
        let refused = run(&mut state, "bob", set.clone()).unwrap_err();
        assert!(
            matches!(&refused, Refusal::ApprovalRequired(g) if g.minimum_approvers_required == 2),
            "{refused:?}"
        );
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {}}}),
        );
        run(&mut state, "bob", set).unwrap();
    }
}

mod protected {
    //! 4.3: a protected workload's deny assignment.
    use super::*;

    fn state() -> PolicyState {
        let mut state = base();
        assign(&mut state, "ra-1", "alice", "Owner", "/");
        assign(&mut state, "ra-2", "bob", "Owner", "/");
        assign(&mut state, "ra-3", "dave", "Owner", "/");
        setup(
            &mut state,
            json!({"updateWorkload": {"id": W1, "protected": true, "privilegedPrincipals": ["alice", "team"]}}),
        );
        state
    }

    #[test]
    fn denies_everything_but_read_to_all_but_privileged_principals() {
        let state = state();
        let below = format!("{W1}/providers/Microsoft.Compute/virtualMachines/vm1");
        for scope in [W1, below.as_str()] {
            let d = decide(&state, "dave", WRITE_VM, scope);
            assert_eq!(
                denied_by(&d),
                Some(vec![DenyKind::ProtectedWorkload]),
                "{scope}"
            );
            assert!(allowed(
                &state,
                "dave",
                "Microsoft.Compute/virtualMachines/read",
                scope
            ));
            assert!(
                allowed(&state, "alice", WRITE_VM, scope),
                "privileged directly"
            );
            assert!(
                allowed(&state, "bob", WRITE_VM, scope),
                "privileged through team"
            );
        }
        assert!(
            allowed(&state, "dave", WRITE_VM, W2),
            "a sibling is not protected"
        );
        // It also protects itself: unprotecting is a write at the workload.
        let unprotect = cmd(json!({"updateWorkload": {"id": W1}}));
        let mut s2 = state.clone();
        assert!(run(&mut s2, "dave", unprotect.clone()).is_err());
        run(&mut s2, "alice", unprotect).unwrap();
        assert!(allowed(&s2, "dave", WRITE_VM, W1));
    }
}
