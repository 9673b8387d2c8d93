//! Communities, enclaves, workloads, endpoints, connections, maintenance mode and approval
//! settings.

use super::*;

impl PolicyState {
    pub(crate) fn check_maintenance(&self, config: &MaintenanceModeConfiguration) -> Checked {
        config
            .check_rules()
            .map_err(|p| Invalid::at("", Problem::Maintenance(p)))?;
        self.known_principals("principals", &config.principals)
    }

    pub(crate) fn check_approval_settings(
        &self,
        settings: &ApprovalSettings,
        enclave_level: bool,
    ) -> Checked {
        for (key, setting) in settings.iter() {
            let field = key.as_str();
            if enclave_level && !key.is_enclave_level() {
                return Err(Invalid::at(field, Problem::NotEnclaveLevel(key)));
            }
            range(
                &format!("{field}.minimumApproversRequired"),
                u64::from(setting.minimum_approvers_required),
                1,
                u64::from(MAX_MINIMUM_APPROVERS),
            )?;
            self.known_principals(
                &format!("{field}.mandatoryApprovers"),
                &setting.mandatory_approvers,
            )?;
        }
        if let Some(hours) = settings.approval_lifetime_hours {
            if enclave_level {
                return Err(Invalid::at(
                    "approvalLifetimeHours",
                    Problem::LifetimeOnEnclave,
                ));
            }
            range(
                "approvalLifetimeHours",
                u64::from(hours),
                1,
                u64::from(MAX_APPROVAL_LIFETIME_HOURS),
            )?;
        }
        Ok(())
    }

    pub(crate) fn check_community(&self, c: &Community, mode: Mode) -> Checked {
        kind("id", &c.id, ScopeKind::Community)?;
        self.fresh(
            mode,
            RecordKind::Community,
            self.communities.contains_key(&c.id),
            &c.id,
        )?;
        for e in self.enclaves.values().filter(|e| c.id.contains(&e.id)) {
            if !c.address_space.contains(&e.address_space) {
                return Err(Invalid::at(
                    "addressSpace",
                    Problem::WouldExclude {
                        address_space: c.address_space,
                        child: e.id.clone(),
                        child_space: e.address_space,
                    },
                ));
            }
        }
        self.check_maintenance(&c.maintenance_mode_configuration)
            .map_err(|e| e.under("maintenanceModeConfiguration"))?;
        self.check_approval_settings(&c.approval_settings, false)
            .map_err(|e| e.under("approvalSettings"))
    }

    /// Inside the community and clear of every sibling enclave but `id` itself.
    pub(crate) fn check_enclave_space(&self, id: &Scope, space: &Cidr) -> Checked {
        let community_id = id.community();
        let community = community_id.as_ref().and_then(|c| self.communities.get(c));
        let Some(community) = community else {
            let missing = community_id.map_or_else(|| id.to_string(), |c| c.to_string());
            return self.exists("id", RecordKind::Community, false, &missing);
        };
        if !community.address_space.contains(space) {
            return Err(Invalid::at(
                "addressSpace",
                Problem::OutsideAddressSpace {
                    inner: *space,
                    parent: community.id.clone(),
                    outer: community.address_space,
                },
            ));
        }
        let siblings = self
            .enclaves
            .values()
            .filter(|e| &e.id != id && community.id.contains(&e.id));
        for sibling in siblings {
            if sibling.address_space.overlaps(space) {
                return Err(Invalid::at(
                    "addressSpace",
                    Problem::OverlapsSibling {
                        address_space: *space,
                        sibling: sibling.id.clone(),
                        sibling_space: sibling.address_space,
                    },
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn check_enclave(&self, e: &VirtualEnclave, mode: Mode) -> Checked {
        kind("id", &e.id, ScopeKind::VirtualEnclave)?;
        self.fresh(
            mode,
            RecordKind::VirtualEnclave,
            self.enclaves.contains_key(&e.id),
            &e.id,
        )?;
        self.check_enclave_space(&e.id, &e.address_space)?;
        for c in self
            .connections
            .values()
            .filter(|c| c.source_resource_id == e.id)
        {
            if !e.address_space.contains(&c.source_cidr) {
                return Err(Invalid::at(
                    "addressSpace",
                    Problem::WouldExclude {
                        address_space: e.address_space,
                        child: c.id.clone(),
                        child_space: c.source_cidr,
                    },
                ));
            }
        }
        self.check_maintenance(&e.maintenance_mode_configuration)
            .map_err(|err| err.under("maintenanceModeConfiguration"))?;
        self.check_approval_settings(&e.approval_settings, true)
            .map_err(|err| err.under("approvalSettings"))
    }

    pub(crate) fn check_workload(&self, w: &Workload, mode: Mode) -> Checked {
        kind("id", &w.id, ScopeKind::Workload)?;
        self.fresh(
            mode,
            RecordKind::Workload,
            self.workloads.contains_key(&w.id),
            &w.id,
        )?;
        if let Some(enclave) = w.id.enclave() {
            self.scope_present("id", &enclave)?;
        }
        self.known_principals("privilegedPrincipals", &w.privileged_principals)
    }

    pub(crate) fn check_endpoint(&self, e: &Endpoint, mode: Mode) -> Checked {
        let (parent, community_level) = match e.id.kind() {
            ScopeKind::CommunityEndpoint => (e.id.community(), true),
            ScopeKind::EnclaveEndpoint => (e.id.enclave(), false),
            _ => return kind("id", &e.id, ScopeKind::EnclaveEndpoint),
        };
        self.fresh(
            mode,
            RecordKind::Endpoint,
            self.endpoints.contains_key(&e.id),
            &e.id,
        )?;
        if let Some(parent) = parent {
            self.scope_present("id", &parent)?;
        }
        if e.rule_collection.is_empty() {
            return Err(Invalid::at("ruleCollection", Problem::NoRules));
        }
        range(
            "ruleCollection",
            e.rule_collection.len() as u64,
            1,
            MAX_RULES as u64,
        )?;
        let mut names = BTreeSet::new();
        for (i, rule) in e.rule_collection.iter().enumerate() {
            let field = |f: &str| format!("ruleCollection[{i}].{f}");
            if rule.endpoint_rule_name.trim().is_empty() {
                return Err(Invalid::at(field("endpointRuleName"), Problem::Empty));
            }
            if rule.endpoint_rule_name.chars().count() > 80 {
                return Err(Invalid::at(
                    field("endpointRuleName"),
                    Problem::TextTooLong(80),
                ));
            }
            if !names.insert(rule.endpoint_rule_name.to_ascii_lowercase()) {
                return Err(Invalid::at(
                    field("endpointRuleName"),
                    Problem::DuplicateRuleName(rule.endpoint_rule_name.clone()),
                ));
            }
            if rule.protocols.is_empty() {
                return Err(Invalid::at(field("protocols"), Problem::NoProtocols));
            }
            if !community_level && rule.protocols.iter().any(|p| p.is_application()) {
                return Err(Invalid::at(
                    field("protocols"),
                    Problem::ApplicationProtocolOnEnclaveEndpoint,
                ));
            }
        }
        self.known_principals("approvers", &e.approvers)
    }

    pub(crate) fn check_connection(&self, c: &Connection, mode: Mode) -> Checked {
        kind("id", &c.id, ScopeKind::EnclaveConnection)?;
        self.fresh(
            mode,
            RecordKind::Connection,
            self.connections.contains_key(&c.id),
            &c.id,
        )?;
        let Some(community) = c.id.community() else {
            return kind("id", &c.id, ScopeKind::EnclaveConnection);
        };
        self.scope_present("id", &community)?;
        kind(
            "sourceResourceId",
            &c.source_resource_id,
            ScopeKind::VirtualEnclave,
        )?;
        let other = |field: &str, found: &Scope| {
            Invalid::at(
                field,
                Problem::OtherCommunity {
                    community: community.clone(),
                    found: found.clone(),
                },
            )
        };
        if !community.contains(&c.source_resource_id) {
            return Err(other("sourceResourceId", &c.source_resource_id));
        }
        let source = self.enclaves.get(&c.source_resource_id);
        self.exists(
            "sourceResourceId",
            RecordKind::VirtualEnclave,
            source.is_some(),
            &c.source_resource_id,
        )?;
        if let Some(source) = source {
            if !source.address_space.contains(&c.source_cidr) {
                return Err(Invalid::at(
                    "sourceCidr",
                    Problem::OutsideAddressSpace {
                        inner: c.source_cidr,
                        parent: source.id.clone(),
                        outer: source.address_space,
                    },
                ));
            }
        }
        let destination = &c.destination_endpoint_id;
        if !matches!(
            destination.kind(),
            ScopeKind::EnclaveEndpoint | ScopeKind::CommunityEndpoint
        ) {
            return kind(
                "destinationEndpointId",
                destination,
                ScopeKind::EnclaveEndpoint,
            );
        }
        if !community.contains(destination) {
            return Err(other("destinationEndpointId", destination));
        }
        if !self.endpoints.contains_key(destination) && c.state != ConnectionState::Disconnected {
            return Err(Invalid::at(
                "destinationEndpointId",
                Problem::DanglingConnection(destination.clone()),
            ));
        }
        Ok(())
    }
}
