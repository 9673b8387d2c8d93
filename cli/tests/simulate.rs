//! `govctl simulate` through the real binary: answers, exit codes, refused state files, and
//! the examples of docs/policy-state.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

const DOC: &str = include_str!("../../docs/policy-state.md");

fn example() -> String {
    let start = DOC.find("```json\n").unwrap() + "```json\n".len();
    let end = DOC[start..].find("```").unwrap() + start;
    DOC[start..end].to_owned()
}

fn govctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .output()
        .expect("govctl runs")
}

fn with_state(text: &str, test: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, text).unwrap();
    test(&path);
}

fn simulate(state: &Path, rest: &[&str]) -> (i32, Value) {
    let mut args = vec!["simulate", "--state", state.to_str().unwrap()];
    args.extend_from_slice(rest);
    let out = govctl(&args);
    let code = out.status.code().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

const AT: &str = "2026-01-01T00:00:00Z";

#[test]
fn allows_with_exit_0_and_names_the_assignment() {
    with_state(&example(), |state| {
        let (code, out) = simulate(
            state,
            &[
                "--principal", "bob",
                "--op", "Microsoft.Compute/virtualMachines/restart/action",
                "--scope", "/communities/c1/virtualEnclaves/e1/workloads/web/providers/Microsoft.Compute/virtualMachines/vm1",
                "--at", AT,
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert_eq!(out["decision"]["allowed"], true);
        let grant = &out["decision"]["reason"]["roleAssignment"];
        assert_eq!(grant["source"]["roleAssignment"]["id"], "ra-ops");
        assert_eq!(grant["role"], "Workload Operator");
        assert_eq!(grant["principalId"], "ops");
        assert_eq!(grant["viaGroup"], true);
        assert_eq!(out["request"]["at"], AT);
    });
}

#[test]
fn denies_with_exit_3_and_names_the_deny_assignment() {
    with_state(&example(), |state| {
        let (code, out) = simulate(
            state,
            &[
                "--principal",
                "bob",
                "--op",
                "Microsoft.Compute/virtualMachines/restart/action",
                "--scope",
                "/communities/c1/virtualEnclaves/e1/workloads/ledger",
                "--at",
                AT,
            ],
        );
        assert_eq!(code, 3, "{out}");
        assert_eq!(out["decision"]["allowed"], false);
        assert_eq!(
            out["decision"]["reason"]["denyAssignments"][0]["kind"],
            "protectedWorkload"
        );
        let (code, out) = simulate(
            state,
            &[
                "--principal",
                "bob",
                "--op",
                "Microsoft.Compute/virtualMachines/delete",
                "--scope",
                "/communities/c1/virtualEnclaves/e1/workloads/web",
                "--at",
                AT,
            ],
        );
        assert_eq!(code, 3);
        assert_eq!(out["decision"]["reason"], "notAuthorized");
    });
}

#[test]
fn approvals_are_data_actions() {
    with_state(&example(), |state| {
        let approve = "Microsoft.Mission/approvals/approve/action";
        let scope = "/communities/c1/virtualEnclaves/e3";
        let (code, out) = simulate(
            state,
            &[
                "--principal",
                "expert",
                "--op",
                approve,
                "--scope",
                scope,
                "--at",
                AT,
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert_eq!(out["request"]["operationKind"], "dataAction");
        let (code, _) = simulate(
            state,
            &[
                "--principal",
                "alice",
                "--op",
                approve,
                "--scope",
                scope,
                "--at",
                AT,
            ],
        );
        assert_eq!(code, 3);
    });
}

#[test]
fn flows() {
    with_state(&example(), |state| {
        let flow = |port: &str| {
            simulate(
                state,
                &[
                    "--flow",
                    "--from",
                    "/communities/c1/virtualEnclaves/e1",
                    "--to",
                    "10.2.5.10",
                    "--port",
                    port,
                    "--protocol",
                    "TCP",
                ],
            )
        };
        let (code, out) = flow("5432");
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            out["decision"]["reason"]["connections"][0]["rule"],
            "postgres"
        );
        let (code, out) = flow("22");
        assert_eq!(code, 3, "{out}");
        assert_eq!(
            out["decision"]["reason"]["notCovered"][0]["missing"],
            "noRuleForPort"
        );
    });
}

#[test]
fn time_matters() {
    with_state(&example(), |state| {
        let args = |at| {
            vec![
                "--principal",
                "deploy-bot",
                "--op",
                "Microsoft.Compute/virtualMachines/write",
                "--scope",
                "/communities/c1/virtualEnclaves/e1/workloads/web",
                "--at",
                at,
            ]
        };
        assert_eq!(simulate(state, &args(AT)).0, 0);
        assert_eq!(
            simulate(state, &args("2030-01-01T00:00:00Z")).0,
            3,
            "notAfter has passed"
        );
    });
}

#[test]
fn refuses_invalid_state_files_with_the_field_path() {
    let mut doc: Value = serde_json::from_str(&example()).unwrap();
    doc["virtualEnclaves"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "/communities/c1/virtualEnclaves/e3", "addressSpace": "10.0.0.0/33"}));
    with_state(&doc.to_string(), |state| {
        let out = govctl(&[
            "simulate",
            "--state",
            state.to_str().unwrap(),
            "--principal",
            "bob",
            "--op",
            "a/b/read",
            "--scope",
            "/",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("virtualEnclaves[2].addressSpace: 10.0.0.0/33 is not a CIDR"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    });
    let mut doc: Value = serde_json::from_str(&example()).unwrap();
    doc["virtualEnclaves"][1]["addressSpace"] = json!("10.1.128.0/17");
    with_state(&doc.to_string(), |state| {
        let out = govctl(&[
            "simulate",
            "--state",
            state.to_str().unwrap(),
            "--principal",
            "bob",
            "--op",
            "a/b/read",
            "--scope",
            "/",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("virtualEnclaves[1].addressSpace: 10.1.128.0/17 overlaps"),
            "{stderr}"
        );
    });
}

#[test]
fn bad_arguments_are_errors_not_denials() {
    with_state(&example(), |state| {
        let path = state.to_str().unwrap();
        let out = govctl(&[
            "simulate",
            "--state",
            path,
            "--principal",
            "bob",
            "--op",
            "not-an-op",
            "--scope",
            "/",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not an operation"));
        let out = govctl(&[
            "simulate",
            "--state",
            path,
            "--flow",
            "--from",
            "/communities/c1/virtualEnclaves/e1",
        ]);
        assert_eq!(out.status.code(), Some(2), "clap usage error");
        let out = govctl(&[
            "simulate",
            "--state",
            "/nonexistent/state.json",
            "--principal",
            "b",
            "--op",
            "a/b/read",
            "--scope",
            "/",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the policy state"));
    });
}
