//! The policy state as a JSON document (docs/policy-state.md): what users write, review and
//! version. Loading checks the structure with field paths (serde_path_to_error) and then
//! every rule, building the state through the same events the engine uses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::assignment::{EligibleRoleAssignment, RoleActivation, RoleAssignment};
use crate::deny::DenyAssignment;
use crate::event::Event;
use crate::image::{AdmittedImage, RootApprovalSettings};
use crate::network::Connection;
use crate::network::Endpoint;
use crate::principal::Principal;
use crate::refusal::{join_path, Invalid, Problem};
use crate::resources::{Community, VirtualEnclave, Workload};
use crate::roles::RoleDefinition;
use crate::rules::Mode;
use crate::scope::ScopeKind;
use crate::state::PolicyState;
use crate::workflow::Approval;

/// The format version this engine reads and writes.
pub const FORMAT_VERSION: u32 = 1;

fn format_version() -> u32 {
    FORMAT_VERSION
}

/// A whole policy state as a document. Lists are in canonical order when written by
/// [`PolicyState::to_document`]; any order is accepted when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDocument {
    /// Always 1.
    #[serde(default = "format_version")]
    pub version: u32,
    /// Users, groups and service principals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<Principal>,
    /// Custom roles (the built-in ones are always there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_definitions: Vec<RoleDefinition>,
    /// Communities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Enclaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_enclaves: Vec<VirtualEnclave>,
    /// Workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
    /// Community endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub community_endpoints: Vec<Endpoint>,
    /// Enclave endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enclave_endpoints: Vec<Endpoint>,
    /// Connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enclave_connections: Vec<Connection>,
    /// Role assignments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_assignments: Vec<RoleAssignment>,
    /// Eligible (just-in-time) role assignments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible_role_assignments: Vec<EligibleRoleAssignment>,
    /// Activations of eligible assignments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_activations: Vec<RoleActivation>,
    /// Custom deny assignments (the platform's are derived, never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_assignments: Vec<DenyAssignment>,
    /// Approvals of governed operations, pending or closed (section 6). Written by the
    /// enclave's state exports; a hand-written policy normally has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// `approvalSettings` at `/`: `imageChange` only (Required, two approvers, when
    /// absent).
    #[serde(default, skip_serializing_if = "is_default_root_settings")]
    pub approval_settings: RootApprovalSettings,
    /// Enclave images admitted to continue the log. In a genesis document: the images the
    /// log starts with (its first enclave must be one of them); when none is named, the
    /// image of the log's first enclave is admitted as it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<AdmittedImage>,
    /// The witnesses that must cosign the log's checkpoints, and how many of them
    /// (`{threshold, keys}`); absent for none. Replaced only by an approved `setWitnesses`
    /// (governed: `witnessChange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<crate::witness::WitnessSet>,
}

fn is_default_root_settings(settings: &RootApprovalSettings) -> bool {
    *settings == RootApprovalSettings::default()
}

impl Default for PolicyDocument {
    /// An empty document of the current version.
    fn default() -> PolicyDocument {
        PolicyDocument {
            version: FORMAT_VERSION,
            principals: Vec::new(),
            role_definitions: Vec::new(),
            communities: Vec::new(),
            virtual_enclaves: Vec::new(),
            workloads: Vec::new(),
            community_endpoints: Vec::new(),
            enclave_endpoints: Vec::new(),
            enclave_connections: Vec::new(),
            role_assignments: Vec::new(),
            eligible_role_assignments: Vec::new(),
            role_activations: Vec::new(),
            deny_assignments: Vec::new(),
            approvals: Vec::new(),
            approval_settings: RootApprovalSettings::default(),
            images: Vec::new(),
            witnesses: None,
        }
    }
}

/// A rule broken at a path of the document (`virtualEnclaves[2].addressSpace`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{path}: {problem}")]
pub struct ValidationError {
    /// Where.
    pub path: String,
    /// What.
    pub problem: Problem,
}

/// Every rule a document breaks, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Why a JSON policy document cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not JSON of the right shape: the path of the field and serde's message.
    #[error("{path}: {message}")]
    Structure {
        /// Where (`.` for the document itself).
        path: String,
        /// What.
        message: String,
    },
    /// Well-formed, but some rules are broken.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

struct Loader {
    state: PolicyState,
    errors: Vec<ValidationError>,
}

impl Loader {
    fn fail(&mut self, path: String, invalid: Invalid) {
        self.errors.push(ValidationError {
            path: join_path(&path, &invalid.field),
            problem: invalid.problem,
        });
    }

    /// Checks a record and, if it passes, applies the event that adds it.
    fn add<T>(
        &mut self,
        list: &str,
        records: &[T],
        check: impl Fn(&PolicyState, &T) -> Result<(), Invalid>,
        event: impl Fn(&T) -> Event,
    ) {
        for (i, record) in records.iter().enumerate() {
            let path = format!("{list}[{i}]");
            let outcome = check(&self.state, record)
                .and_then(|()| self.state.apply(&event(record)).map_err(|e| e.invalid));
            if let Err(invalid) = outcome {
                self.fail(path, invalid);
            }
        }
    }
}

impl PolicyState {
    /// Builds a state from a document, checking every rule; all broken rules are reported.
    pub fn from_document(doc: &PolicyDocument) -> Result<PolicyState, ValidationErrors> {
        let mut loader = Loader {
            state: PolicyState::new(),
            errors: Vec::new(),
        };
        if doc.version != FORMAT_VERSION {
            loader.fail(
                "version".into(),
                Invalid::at("", Problem::UnsupportedVersion(doc.version)),
            );
            return Err(ValidationErrors(loader.errors));
        }
        // Principals first without members, so that members may come in any order.
        loader.add(
            "principals",
            &doc.principals,
            |s, p| s.check_principal(&bare(p), Mode::Create),
            |p| Event::PrincipalPut(bare(p)),
        );
        for (i, group) in doc.principals.iter().enumerate() {
            for member in &group.members {
                let outcome = loader
                    .state
                    .check_membership(&group.id, member, true)
                    .and_then(|()| {
                        let event = Event::GroupMemberAdded {
                            group: group.id.clone(),
                            member: member.clone(),
                        };
                        loader.state.apply(&event).map_err(|e| e.invalid)
                    });
                if let Err(invalid) = outcome {
                    let invalid = Invalid::at("members", invalid.problem);
                    loader.fail(format!("principals[{i}]"), invalid);
                }
            }
        }
        loader.add(
            "communities",
            &doc.communities,
            |s, c| s.check_community(c, Mode::Create),
            |c| Event::CommunityPut(c.clone()),
        );
        loader.add(
            "virtualEnclaves",
            &doc.virtual_enclaves,
            |s, e| s.check_enclave(e, Mode::Create),
            |e| Event::VirtualEnclavePut(e.clone()),
        );
        loader.add(
            "workloads",
            &doc.workloads,
            |s, w| s.check_workload(w, Mode::Create),
            |w| Event::WorkloadPut(w.clone()),
        );
        let endpoints = |expected: ScopeKind| {
            move |s: &PolicyState, e: &Endpoint| {
                if e.id.kind() != expected {
                    return Err(Invalid::at(
                        "id",
                        Problem::WrongScopeKind {
                            expected,
                            found: e.id.clone(),
                            found_kind: e.id.kind(),
                        },
                    ));
                }
                s.check_endpoint(e, Mode::Create)
            }
        };
        loader.add(
            "communityEndpoints",
            &doc.community_endpoints,
            endpoints(ScopeKind::CommunityEndpoint),
            |e| Event::EndpointPut(e.clone()),
        );
        loader.add(
            "enclaveEndpoints",
            &doc.enclave_endpoints,
            endpoints(ScopeKind::EnclaveEndpoint),
            |e| Event::EndpointPut(e.clone()),
        );
        loader.add(
            "enclaveConnections",
            &doc.enclave_connections,
            |s, c| s.check_connection(c, Mode::Create),
            |c| Event::ConnectionPut(c.clone()),
        );
        loader.add(
            "roleDefinitions",
            &doc.role_definitions,
            |s, r| s.check_role_definition(r, Mode::Create),
            |r| Event::RoleDefinitionPut(r.clone()),
        );
        loader.add(
            "roleAssignments",
            &doc.role_assignments,
            PolicyState::check_role_assignment,
            |a| Event::RoleAssigned(a.clone()),
        );
        loader.add(
            "eligibleRoleAssignments",
            &doc.eligible_role_assignments,
            PolicyState::check_eligible,
            |a| Event::EligibleRoleAssigned(a.clone()),
        );
        loader.add(
            "roleActivations",
            &doc.role_activations,
            PolicyState::check_activation,
            |a| Event::RoleActivated(a.clone()),
        );
        loader.add(
            "denyAssignments",
            &doc.deny_assignments,
            PolicyState::check_deny,
            |d| Event::DenyAssignmentPut(d.clone()),
        );
        loader.add(
            "approvals",
            &doc.approvals,
            PolicyState::check_approval_record,
            |a| Event::ApprovalRequested(Box::new(a.clone())),
        );
        match loader
            .state
            .check_root_approval_settings(&doc.approval_settings)
        {
            Ok(()) => loader.state.root_approval_settings = doc.approval_settings.clone(),
            Err(invalid) => loader.fail("approvalSettings".into(), invalid),
        }
        loader.add(
            "images",
            &doc.images,
            |_, _| Ok(()),
            |i| Event::ImageAdmitted(i.clone()),
        );
        loader.state.witnesses = doc.witnesses.clone();
        if loader.errors.is_empty() {
            Ok(loader.state)
        } else {
            Err(ValidationErrors(loader.errors))
        }
    }

    /// The state as a document, every list in canonical order.
    pub fn to_document(&self) -> PolicyDocument {
        let endpoints_of = |kind: ScopeKind| {
            self.endpoints
                .values()
                .filter(|e| e.id.kind() == kind)
                .cloned()
                .collect()
        };
        PolicyDocument {
            version: FORMAT_VERSION,
            principals: self.principals.values().cloned().collect(),
            role_definitions: self.role_definitions.values().cloned().collect(),
            communities: self.communities.values().cloned().collect(),
            virtual_enclaves: self.enclaves.values().cloned().collect(),
            workloads: self.workloads.values().cloned().collect(),
            community_endpoints: endpoints_of(ScopeKind::CommunityEndpoint),
            enclave_endpoints: endpoints_of(ScopeKind::EnclaveEndpoint),
            enclave_connections: self.connections.values().cloned().collect(),
            role_assignments: self.role_assignments.values().cloned().collect(),
            eligible_role_assignments: self.eligible.values().cloned().collect(),
            role_activations: self.activations.values().cloned().collect(),
            deny_assignments: self.deny_assignments.values().cloned().collect(),
            approvals: self.approvals.values().cloned().collect(),
            approval_settings: self.root_approval_settings.clone(),
            images: self.images.values().cloned().collect(),
            witnesses: self.witnesses.clone(),
        }
    }

    /// Loads a JSON document: structural errors name the JSON path of the field, broken
    /// rules the path of the record and field.
    pub fn from_json(text: &str) -> Result<PolicyState, LoadError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let doc: PolicyDocument =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                let path = e.path().to_string();
                LoadError::Structure {
                    path,
                    message: e.into_inner().to_string(),
                }
            })?;
        deserializer.end().map_err(|e| LoadError::Structure {
            path: ".".into(),
            message: e.to_string(),
        })?;
        PolicyState::from_document(&doc).map_err(LoadError::Invalid)
    }

    /// The canonical JSON document, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        // INVARIANT: every type in the document serializes to JSON without error (string
        // keys only, no non-finite floats); the fallback keeps this function total.
        serde_json::to_string_pretty(&self.to_document()).unwrap_or_default()
    }
}

impl PolicyDocument {
    /// Checks every rule; all broken rules are reported with their paths.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        PolicyState::from_document(self).map(|_| ())
    }
}

fn bare(p: &Principal) -> Principal {
    Principal {
        members: Default::default(),
        ..p.clone()
    }
}

impl Serialize for PolicyState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_document().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PolicyState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let doc = PolicyDocument::deserialize(deserializer)?;
        PolicyState::from_document(&doc).map_err(serde::de::Error::custom)
    }
}
