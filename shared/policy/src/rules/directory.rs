//! Principals, group memberships and role definitions.

use super::*;

impl PolicyState {
    pub(crate) fn check_principal(&self, p: &Principal, mode: Mode) -> Checked {
        if p.id.is_platform() {
            return Err(Invalid::at(
                "id",
                Problem::ReservedPrincipalId(p.id.clone()),
            ));
        }
        let existing = self.principals.get(&p.id);
        self.fresh(mode, RecordKind::Principal, existing.is_some(), &p.id)?;
        text("displayName", p.display_name.as_deref())?;
        if p.kind == PrincipalType::Group {
            if !p.keys.is_empty() {
                return Err(Invalid::at("keys", Problem::KeysOnGroup));
            }
        } else if !p.members.is_empty() {
            return Err(Invalid::at("members", Problem::MembersOnNonGroup));
        }
        let mut seen = BTreeSet::new();
        for (i, key) in p.keys.iter().enumerate() {
            if !seen.insert(&key.key_id) {
                return Err(Invalid::at(
                    format!("keys[{i}].keyId"),
                    Problem::DuplicateKeyId(key.key_id.clone()),
                ));
            }
            key.check_encoding().map_err(|problem| {
                Invalid::at(
                    format!("keys[{i}].publicKey"),
                    Problem::BadKey {
                        principal: p.id.clone(),
                        key_id: key.key_id.clone(),
                        problem,
                    },
                )
            })?;
        }
        self.known_principals("members", &p.members)?;
        for member in &p.members {
            if self.would_cycle(&p.id, member) {
                return Err(Invalid::at(
                    "members",
                    Problem::GroupCycle {
                        group: p.id.clone(),
                        member: member.clone(),
                    },
                ));
            }
        }
        if let Some(old) = existing {
            if old.kind != p.kind {
                return Err(Invalid::at("type", Problem::PrincipalTypeChanged));
            }
            for old_key in &old.keys {
                let Some(new_key) = p.key(&old_key.key_id) else {
                    return Err(Invalid::at(
                        "keys",
                        Problem::KeyRemoved(old_key.key_id.clone()),
                    ));
                };
                if new_key.algorithm != old_key.algorithm
                    || new_key.public_key != old_key.public_key
                {
                    return Err(Invalid::at(
                        "keys",
                        Problem::KeyChanged(old_key.key_id.clone()),
                    ));
                }
                if old_key.revoked && !new_key.revoked {
                    return Err(Invalid::at(
                        "keys",
                        Problem::KeyUnrevoked(old_key.key_id.clone()),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn check_membership(
        &self,
        group: &PrincipalId,
        member: &PrincipalId,
        adding: bool,
    ) -> Checked {
        let g = self.principals.get(group);
        self.exists("group", RecordKind::Principal, g.is_some(), group)?;
        if g.is_some_and(|g| g.kind != PrincipalType::Group) {
            return Err(Invalid::at("group", Problem::NotAGroup(group.clone())));
        }
        self.known_principals("member", [member])?;
        let is_member = g.is_some_and(|g| g.members.contains(member));
        if is_member == adding {
            return Err(Invalid::at(
                "member",
                Problem::Membership {
                    group: group.clone(),
                    member: member.clone(),
                    is_member,
                },
            ));
        }
        if adding && self.would_cycle(group, member) {
            return Err(Invalid::at(
                "member",
                Problem::GroupCycle {
                    group: group.clone(),
                    member: member.clone(),
                },
            ));
        }
        Ok(())
    }

    pub(crate) fn check_role_definition(&self, role: &RoleDefinition, mode: Mode) -> Checked {
        if is_built_in(role.id.as_str()) {
            return Err(Invalid::at("id", Problem::BuiltInRole(role.id.to_string())));
        }
        let existing = self.role_definitions.contains_key(&role.id);
        self.fresh(mode, RecordKind::RoleDefinition, existing, &role.id)?;
        text("description", role.description.as_deref())?;
        permissions("permissions", &role.permissions)?;
        if role.assignable_scopes.is_empty() {
            return Err(Invalid::at("assignableScopes", Problem::NoAssignableScopes));
        }
        for scope in &role.assignable_scopes {
            self.scope_present("assignableScopes", scope)?;
        }
        let outside = |id: &AssignmentId, scope: &Scope| {
            Invalid::at(
                "assignableScopes",
                Problem::AssignmentOutsideAssignableScopes {
                    assignment: id.to_string(),
                    scope: scope.clone(),
                },
            )
        };
        for a in self
            .role_assignments
            .values()
            .filter(|a| a.role_definition_id == role.id)
        {
            if !role.assignable_at(&a.scope) {
                return Err(outside(&a.id, &a.scope));
            }
        }
        for a in self
            .eligible
            .values()
            .filter(|a| a.role_definition_id == role.id)
        {
            if !role.assignable_at(&a.scope) {
                return Err(outside(&a.id, &a.scope));
            }
        }
        Ok(())
    }
}
