//! The decision index: what a check needs, keyed so that its cost depends on the depth of
//! the scope and the principal's groups, never on how many assignments exist elsewhere.
//!
//! For each scope that carries anything, the index holds the role grants keyed by
//! principal, the custom deny assignments, and a marker for the deny assignments the
//! platform derives there. A check looks up each ancestor of the requested scope (a handful)
//! and, in each, each of the principal's groups. `apply` keeps it current, one event at a
//! time.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::check::GrantSource;
use crate::deny::{DenyAssignment, ManagedOf};
use crate::ids::{AssignmentId, PrincipalId, RoleId};
use crate::operation::{Operation, OperationKind};
use crate::roles::{built_in_roles, RoleDefinition};
use crate::scope::Scope;
use crate::time::Timestamp;
use crate::wildcard::Pattern;

/// Deny assignments the platform derives at a scope (computed from the resource at check
/// time; only their presence is indexed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derived {
    /// The two deny assignments of a managed resource group.
    Managed(ManagedOf),
    /// A protected workload's deny assignment.
    ProtectedWorkload,
}

/// A principal's number in the index: grants and memberships are keyed by it, so that a
/// lookup hashes and compares one integer instead of a string.
pub(crate) type Slot = u32;

/// A role grant as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedGrant {
    pub source: GrantSource,
    /// The role's slot in [`Index::roles`].
    pub role: Slot,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
}

/// Everything attached to one scope.
#[derive(Debug, Clone)]
pub(crate) struct ScopeEntry {
    pub scope: Scope,
    pub grants: FxHashMap<Slot, Vec<IndexedGrant>>,
    pub denies: Vec<DenyAssignment>,
    pub derived: Option<Derived>,
}

impl ScopeEntry {
    fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.denies.is_empty() && self.derived.is_none()
    }
}

/// One side of a role's permissions, split for speed: most patterns have no `*` and are
/// found by one hash lookup; the others are matched one by one.
#[derive(Debug, Clone, Default)]
struct Matcher {
    exact: FxHashSet<Box<str>>,
    wildcards: Vec<Pattern>,
}

impl Matcher {
    fn new(patterns: &[Pattern]) -> Matcher {
        let mut matcher = Matcher::default();
        for p in patterns {
            if p.has_wildcard() {
                matcher.wildcards.push(p.clone());
            } else {
                matcher.exact.insert(p.as_str().to_ascii_lowercase().into());
            }
        }
        matcher
    }

    fn any(&self, lower: &str) -> bool {
        self.exact.contains(lower) || self.wildcards.iter().any(|p| p.matches_lowercase(lower))
    }
}

/// A role definition with its permissions compiled; decides exactly as
/// [`RoleDefinition::grants`].
#[derive(Debug, Clone)]
pub(crate) struct CompiledRole {
    pub definition: RoleDefinition,
    actions: Matcher,
    not_actions: Matcher,
    data_actions: Matcher,
    not_data_actions: Matcher,
}

impl CompiledRole {
    fn new(definition: &RoleDefinition) -> CompiledRole {
        let p = &definition.permissions;
        CompiledRole {
            definition: definition.clone(),
            actions: Matcher::new(&p.actions),
            not_actions: Matcher::new(&p.not_actions),
            data_actions: Matcher::new(&p.data_actions),
            not_data_actions: Matcher::new(&p.not_data_actions),
        }
    }

    pub fn grants(&self, op: &Operation) -> bool {
        let (yes, no) = match op.kind() {
            OperationKind::Action => (&self.actions, &self.not_actions),
            OperationKind::DataAction => (&self.data_actions, &self.not_data_actions),
        };
        let lower = op.as_lowercase();
        yes.any(lower) && !no.any(lower)
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    scopes: FxHashMap<Scope, ScopeEntry>,
    /// Principal ids by slot, and slots by id. A slot is given to every id that holds a grant
    /// or a membership and is never reused, so the table grows with the number of distinct
    /// principal ids ever indexed.
    names: Vec<PrincipalId>,
    slots: FxHashMap<PrincipalId, Slot>,
    /// Direct groups of each principal, by slot (the reverse of groups' `members`).
    member_of: Vec<Vec<Slot>>,
    /// Built-in and custom roles by slot (a deleted role leaves `None`), and slots by id.
    roles: Vec<Option<CompiledRole>>,
    role_slots: FxHashMap<RoleId, Slot>,
    /// Connections by source enclave.
    connections_from: BTreeMap<Scope, BTreeSet<Scope>>,
}

impl Default for Index {
    fn default() -> Index {
        let mut index = Index {
            scopes: FxHashMap::default(),
            names: Vec::new(),
            slots: FxHashMap::default(),
            member_of: Vec::new(),
            roles: Vec::new(),
            role_slots: FxHashMap::default(),
            connections_from: BTreeMap::new(),
        };
        for role in built_in_roles().values() {
            index.put_role(role);
        }
        index
    }
}

fn slot_of(position: usize) -> Slot {
    // INVARIANT: fewer than 2^32 principals or roles are ever indexed (each needs a record
    // in memory); saturating keeps this total.
    Slot::try_from(position).unwrap_or(Slot::MAX)
}

impl Index {
    /// The entry of the scope whose canonical text is `scope`.
    pub fn at(&self, scope: &str) -> Option<&ScopeEntry> {
        self.scopes.get(scope)
    }

    fn entry(&mut self, scope: &Scope) -> &mut ScopeEntry {
        self.scopes
            .entry(scope.clone())
            .or_insert_with(|| ScopeEntry {
                scope: scope.clone(),
                grants: FxHashMap::default(),
                denies: Vec::new(),
                derived: None,
            })
    }

    fn prune(&mut self, scope: &Scope) {
        if self.scopes.get(scope).is_some_and(ScopeEntry::is_empty) {
            self.scopes.remove(scope);
        }
    }

    /// The slot of a principal id, if it has one.
    pub fn slot(&self, principal: &PrincipalId) -> Option<Slot> {
        self.slots.get(principal).copied()
    }

    fn slot_or_new(&mut self, principal: &PrincipalId) -> Slot {
        if let Some(slot) = self.slots.get(principal) {
            return *slot;
        }
        let slot = slot_of(self.names.len());
        self.names.push(principal.clone());
        self.member_of.push(Vec::new());
        self.slots.insert(principal.clone(), slot);
        slot
    }

    /// The id of a slot.
    pub fn name(&self, slot: Slot) -> Option<&PrincipalId> {
        self.names.get(usize::try_from(slot).ok()?)
    }

    pub fn add_grant(
        &mut self,
        scope: &Scope,
        principal: &PrincipalId,
        source: GrantSource,
        role: &RoleId,
        not_before: Option<Timestamp>,
        not_after: Option<Timestamp>,
    ) {
        let slot = self.slot_or_new(principal);
        // INVARIANT: `apply` checks that the role exists before it indexes a grant.
        let role = self.role_slots.get(role).copied().unwrap_or(Slot::MAX);
        let list = self.entry(scope).grants.entry(slot).or_default();
        // Sorted by source, so that the first grant found does not depend on history.
        let at = list.partition_point(|g| g.source < source);
        list.insert(
            at,
            IndexedGrant {
                source,
                role,
                not_before,
                not_after,
            },
        );
    }

    pub fn remove_grant(&mut self, scope: &Scope, principal: &PrincipalId, source: &GrantSource) {
        let slot = self.slot(principal);
        if let (Some(entry), Some(slot)) = (self.scopes.get_mut(scope), slot) {
            if let Some(list) = entry.grants.get_mut(&slot) {
                list.retain(|g| &g.source != source);
                if list.is_empty() {
                    entry.grants.remove(&slot);
                }
            }
        }
        self.prune(scope);
    }

    /// The role assignment (not activation) giving `role` to `principal` at `scope`, if any.
    pub fn assignment_of(
        &self,
        scope: &Scope,
        principal: &PrincipalId,
        role: &RoleId,
    ) -> Option<&AssignmentId> {
        let role = *self.role_slots.get(role)?;
        let slot = self.slot(principal)?;
        self.at(scope.as_str())?
            .grants
            .get(&slot)?
            .iter()
            .find_map(|g| match &g.source {
                GrantSource::RoleAssignment { id } if g.role == role => Some(id),
                _ => None,
            })
    }

    pub fn put_deny(&mut self, deny: &DenyAssignment) {
        let entry = self.entry(&deny.scope);
        entry.denies.retain(|d| d.id != deny.id);
        entry.denies.push(deny.clone());
    }

    pub fn remove_deny(&mut self, scope: &Scope, id: &AssignmentId) {
        if let Some(entry) = self.scopes.get_mut(scope) {
            entry.denies.retain(|d| &d.id != id);
        }
        self.prune(scope);
    }

    pub fn set_derived(&mut self, scope: &Scope, derived: Option<Derived>) {
        self.entry(scope).derived = derived;
        self.prune(scope);
    }

    pub fn add_membership(&mut self, group: &PrincipalId, member: &PrincipalId) {
        let group = self.slot_or_new(group);
        let member = self.slot_or_new(member);
        if let Some(groups) = self
            .member_of
            .get_mut(usize::try_from(member).unwrap_or(usize::MAX))
        {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }

    pub fn remove_membership(&mut self, group: &PrincipalId, member: &PrincipalId) {
        let (Some(group), Some(member)) = (self.slot(group), self.slot(member)) else {
            return;
        };
        if let Some(groups) = self
            .member_of
            .get_mut(usize::try_from(member).unwrap_or(usize::MAX))
        {
            groups.retain(|g| *g != group);
        }
    }

    /// The slots of the principal and of every group it belongs to, directly or through
    /// nested groups, in discovery order (the principal first); empty for an id the index
    /// has never seen.
    pub fn closure_slots(&self, principal: &PrincipalId) -> Vec<Slot> {
        let Some(first) = self.slot(principal) else {
            return Vec::new();
        };
        let mut found = vec![first];
        let mut next = 0;
        while let Some(&current) = found.get(next) {
            let groups = self
                .member_of
                .get(usize::try_from(current).unwrap_or(usize::MAX))
                .map_or(&[][..], Vec::as_slice);
            for &group in groups {
                if !found.contains(&group) {
                    found.push(group);
                }
            }
            next += 1;
        }
        found
    }

    /// The principal and every group it belongs to, directly or through nested groups,
    /// sorted.
    pub fn closure(&self, principal: &PrincipalId) -> Vec<PrincipalId> {
        let mut ids: Vec<PrincipalId> = self
            .closure_slots(principal)
            .iter()
            .filter_map(|slot| self.name(*slot).cloned())
            .collect();
        if ids.is_empty() {
            ids.push(principal.clone());
        }
        ids.sort();
        ids
    }

    pub fn put_role(&mut self, role: &RoleDefinition) {
        let compiled = Some(CompiledRole::new(role));
        match self
            .role_slots
            .get(&role.id)
            .and_then(|s| usize::try_from(*s).ok())
        {
            Some(slot) => {
                if let Some(place) = self.roles.get_mut(slot) {
                    *place = compiled;
                }
            }
            None => {
                self.role_slots
                    .insert(role.id.clone(), slot_of(self.roles.len()));
                self.roles.push(compiled);
            }
        }
    }

    pub fn remove_role(&mut self, id: &RoleId) {
        if let Some(slot) = self.role_slots.remove(id) {
            if let Some(place) = self
                .roles
                .get_mut(usize::try_from(slot).unwrap_or(usize::MAX))
            {
                *place = None;
            }
        }
    }

    /// A role by slot.
    pub fn compiled_role(&self, slot: Slot) -> Option<&CompiledRole> {
        self.roles.get(usize::try_from(slot).ok()?)?.as_ref()
    }

    pub fn role(&self, id: &RoleId) -> Option<&RoleDefinition> {
        let slot = *self.role_slots.get(id)?;
        Some(&self.compiled_role(slot)?.definition)
    }

    pub fn add_connection(&mut self, source: &Scope, connection: &Scope) {
        self.connections_from
            .entry(source.clone())
            .or_default()
            .insert(connection.clone());
    }

    pub fn remove_connection(&mut self, source: &Scope, connection: &Scope) {
        if let Some(set) = self.connections_from.get_mut(source) {
            set.remove(connection);
            if set.is_empty() {
                self.connections_from.remove(source);
            }
        }
    }

    /// Connections whose source is `enclave`, in order.
    pub fn connections_from(&self, enclave: &Scope) -> impl Iterator<Item = &Scope> {
        self.connections_from.get(enclave).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> PrincipalId {
        PrincipalId::new(id).unwrap()
    }

    #[test]
    fn closure_follows_nested_groups_once() {
        let mut index = Index::default();
        index.add_membership(&p("g1"), &p("u"));
        index.add_membership(&p("g2"), &p("g1"));
        index.add_membership(&p("g2"), &p("u"));
        index.add_membership(&p("g3"), &p("g2"));
        assert_eq!(
            index.closure(&p("u")),
            vec![p("g1"), p("g2"), p("g3"), p("u")]
        );
        index.remove_membership(&p("g2"), &p("g1"));
        assert_eq!(
            index.closure(&p("u")),
            vec![p("g1"), p("g2"), p("g3"), p("u")]
        );
        index.remove_membership(&p("g2"), &p("u"));
        assert_eq!(index.closure(&p("u")), vec![p("g1"), p("u")]);
    }

    #[test]
    fn empty_entries_are_pruned() {
        let mut index = Index::default();
        let scope = Scope::parse("/communities/c").unwrap();
        let source = GrantSource::RoleAssignment {
            id: AssignmentId::new("a").unwrap(),
        };
        let owner = RoleId::new("Owner").unwrap();
        index.add_grant(&scope, &p("u"), source.clone(), &owner, None, None);
        assert!(index.assignment_of(&scope, &p("u"), &owner).is_some());
        assert!(index.at(scope.as_str()).is_some());
        index.remove_grant(&scope, &p("u"), &source);
        assert!(index.at(scope.as_str()).is_none());
    }
}
