//! Queries about what refers to what: the checks behind deletions.

use crate::approval::ApprovalSettings;
use crate::deny::DenyPrincipals;
use crate::ids::PrincipalId;
use crate::maintenance::MaintenanceModeConfiguration;
use crate::scope::Scope;
use crate::state::PolicyState;

impl PolicyState {
    /// Everything that refers to `principal`, as readable references (empty: none).
    pub(crate) fn references_to_principal(&self, principal: &PrincipalId) -> Vec<String> {
        let mut refs = self.assignment_references(principal);
        refs.extend(self.configuration_references(principal));
        refs
    }

    /// Memberships and assignments of `principal`: a deletion of the principal takes them
    /// along.
    pub(crate) fn assignment_references(&self, principal: &PrincipalId) -> Vec<String> {
        let mut refs = Vec::new();
        for g in self.principals.values() {
            if g.members.contains(principal) {
                refs.push(format!("group {}", g.id));
            }
        }
        for a in self.role_assignments.values() {
            if &a.principal_id == principal {
                refs.push(format!("role assignment {}", a.id));
            }
        }
        for a in self.eligible.values() {
            if &a.principal_id == principal {
                refs.push(format!("eligible role assignment {}", a.id));
            }
        }
        for a in self.activations.values() {
            if &a.principal_id == principal {
                refs.push(format!("role activation {}", a.id));
            }
        }
        refs
    }

    /// Deny assignments and resource settings that name `principal`: a deletion of the
    /// principal is refused while they do, since dropping a name from them could widen
    /// access (a deny assignment's `principals`) as well as narrow it.
    pub(crate) fn configuration_references(&self, principal: &PrincipalId) -> Vec<String> {
        let mut refs = Vec::new();
        for d in self.deny_assignments.values() {
            let listed =
                matches!(&d.principals, DenyPrincipals::Listed(l) if l.contains(principal));
            if listed || d.exclude_principals.contains(principal) {
                refs.push(format!("deny assignment {}", d.id));
            }
        }
        let mut settings_refs =
            |scope: &Scope, m: &MaintenanceModeConfiguration, s: &ApprovalSettings| {
                if m.principals.contains(principal) {
                    refs.push(format!("maintenance mode of {scope}"));
                }
                if s.iter()
                    .any(|(_, setting)| setting.mandatory_approvers.contains(principal))
                {
                    refs.push(format!("approval settings of {scope}"));
                }
            };
        for c in self.communities.values() {
            settings_refs(
                &c.id,
                &c.maintenance_mode_configuration,
                &c.approval_settings,
            );
        }
        for e in self.enclaves.values() {
            settings_refs(
                &e.id,
                &e.maintenance_mode_configuration,
                &e.approval_settings,
            );
        }
        if self
            .root_approval_settings
            .image_change
            .as_ref()
            .is_some_and(|s| s.mandatory_approvers.contains(principal))
        {
            refs.push("approval settings of / (imageChange)".to_owned());
        }
        if self
            .root_approval_settings
            .witness_change
            .as_ref()
            .is_some_and(|s| s.mandatory_approvers.contains(principal))
        {
            refs.push("approval settings of / (witnessChange)".to_owned());
        }
        for w in self.workloads.values() {
            if w.privileged_principals.contains(principal) {
                refs.push(format!("privileged principals of {}", w.id));
            }
        }
        for e in self.endpoints.values() {
            if e.approvers.contains(principal) {
                refs.push(format!("approvers of {}", e.id));
            }
        }
        refs
    }

    /// Assignments of every kind at `scope` or below it (empty: none).
    pub(crate) fn assignments_under(&self, scope: &Scope) -> Vec<String> {
        let mut refs = Vec::new();
        for a in self.role_assignments.values() {
            if scope.contains(&a.scope) {
                refs.push(format!("role assignment {}", a.id));
            }
        }
        for a in self.eligible.values() {
            if scope.contains(&a.scope) {
                refs.push(format!("eligible role assignment {}", a.id));
            }
        }
        for d in self.deny_assignments.values() {
            if scope.contains(&d.scope) {
                refs.push(format!("deny assignment {}", d.id));
            }
        }
        refs
    }

    /// Resources strictly below `scope` (empty: none).
    pub(crate) fn resources_under(&self, scope: &Scope) -> Vec<String> {
        let below = |s: &Scope| s != scope && scope.contains(s);
        let mut refs: Vec<String> = Vec::new();
        refs.extend(
            self.enclaves
                .keys()
                .filter(|s| below(s))
                .map(ToString::to_string),
        );
        refs.extend(
            self.workloads
                .keys()
                .filter(|s| below(s))
                .map(ToString::to_string),
        );
        refs.extend(
            self.endpoints
                .keys()
                .filter(|s| below(s))
                .map(ToString::to_string),
        );
        refs.extend(
            self.connections
                .keys()
                .filter(|s| below(s))
                .map(ToString::to_string),
        );
        refs.extend(
            self.connections
                .values()
                .filter(|c| &c.source_resource_id == scope)
                .map(|c| format!("{} (its source)", c.id)),
        );
        refs
    }
}
