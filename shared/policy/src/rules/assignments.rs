//! Role assignments, eligibilities, activations and deny assignments.

use super::*;

impl PolicyState {
    fn check_assignable(&self, role: &RoleId, scope: &Scope) -> Checked {
        let definition = self.index.role(role);
        self.exists(
            "roleDefinitionId",
            RecordKind::RoleDefinition,
            definition.is_some(),
            role,
        )?;
        self.scope_present("scope", scope)?;
        if definition.is_some_and(|d| !d.assignable_at(scope)) {
            return Err(Invalid::at(
                "scope",
                Problem::NotAssignableHere {
                    role: role.to_string(),
                    scope: scope.clone(),
                },
            ));
        }
        Ok(())
    }

    pub(crate) fn check_role_assignment(&self, a: &RoleAssignment) -> Checked {
        self.fresh(
            Mode::Create,
            RecordKind::RoleAssignment,
            self.role_assignments.contains_key(&a.id),
            &a.id,
        )?;
        self.known_principals("principalId", [&a.principal_id])?;
        self.check_assignable(&a.role_definition_id, &a.scope)?;
        window(a.not_before, a.not_after)?;
        // Through the index: a state with many assignments loads in linear time.
        let duplicate = self
            .index
            .assignment_of(&a.scope, &a.principal_id, &a.role_definition_id);
        match duplicate {
            Some(id) => Err(Invalid::at(
                "",
                Problem::DuplicateAssignment(id.to_string()),
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn check_eligible(&self, a: &EligibleRoleAssignment) -> Checked {
        self.fresh(
            Mode::Create,
            RecordKind::EligibleRoleAssignment,
            self.eligible.contains_key(&a.id),
            &a.id,
        )?;
        self.known_principals("principalId", [&a.principal_id])?;
        self.check_assignable(&a.role_definition_id, &a.scope)?;
        window(a.not_before, a.not_after)?;
        range(
            "maxActivationHours",
            u64::from(a.max_activation_hours),
            1,
            u64::from(MAX_ACTIVATION_HOURS),
        )?;
        let duplicate = self.eligible.values().find(|b| {
            b.principal_id == a.principal_id
                && b.role_definition_id == a.role_definition_id
                && b.scope == a.scope
        });
        match duplicate {
            Some(b) => Err(Invalid::at(
                "",
                Problem::DuplicateAssignment(b.id.to_string()),
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn check_activation(&self, a: &RoleActivation) -> Checked {
        self.fresh(
            Mode::Create,
            RecordKind::RoleActivation,
            self.activations.contains_key(&a.id),
            &a.id,
        )?;
        let eligible = self.eligible.get(&a.eligible_assignment_id);
        self.exists(
            "eligibleAssignmentId",
            RecordKind::EligibleRoleAssignment,
            eligible.is_some(),
            &a.eligible_assignment_id,
        )?;
        let Some(eligible) = eligible else {
            return Ok(());
        };
        let activator = self.principals.get(&a.principal_id);
        self.exists(
            "principalId",
            RecordKind::Principal,
            activator.is_some(),
            &a.principal_id,
        )?;
        let is_group = activator.is_some_and(|p| p.kind == PrincipalType::Group);
        if is_group
            || !self
                .index
                .closure(&a.principal_id)
                .contains(&eligible.principal_id)
        {
            return Err(Invalid::at(
                "principalId",
                Problem::NotEligible(a.principal_id.clone()),
            ));
        }
        if a.justification.trim().is_empty() {
            return Err(Invalid::at("justification", Problem::Empty));
        }
        text("justification", Some(&a.justification))?;
        window(Some(a.start), Some(a.end)).map_err(|e| Invalid {
            field: "end".into(),
            ..e
        })?;
        // Both instants lie within years 0000..=9999, so the difference cannot overflow.
        let length = a.end.unix_millis() - a.start.unix_millis();
        if length > i64::from(eligible.max_activation_hours) * 3_600_000 {
            return Err(Invalid::at(
                "end",
                Problem::ActivationTooLong(eligible.max_activation_hours),
            ));
        }
        if !crate::assignment::within(a.start, eligible.not_before, eligible.not_after) {
            return Err(Invalid::at("start", Problem::EligibilityNotActive(a.start)));
        }
        let overlapping = self.activations.values().find(|b| {
            b.eligible_assignment_id == a.eligible_assignment_id
                && b.principal_id == a.principal_id
                && b.start < a.end
                && a.start < b.end
        });
        match overlapping {
            Some(b) => Err(Invalid::at("", Problem::AlreadyActive(b.id.to_string()))),
            None => Ok(()),
        }
    }

    pub(crate) fn check_deny(&self, d: &DenyAssignment) -> Checked {
        self.fresh(
            Mode::Create,
            RecordKind::DenyAssignment,
            self.deny_assignments.contains_key(&d.id),
            &d.id,
        )?;
        text("name", d.name.as_deref())?;
        self.scope_present("scope", &d.scope)?;
        permissions("permissions", &d.permissions)?;
        if let DenyPrincipals::Listed(list) = &d.principals {
            if list.is_empty() {
                return Err(Invalid::at("principals", Problem::Empty));
            }
            self.known_principals("principals", list)?;
        }
        self.known_principals("excludePrincipals", &d.exclude_principals)
    }
}
