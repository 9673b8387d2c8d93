//! Network isolation decisions (SPEC-policy section 7).

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::network::{Address, ConnectionState, Protocol};
use crate::scope::Scope;
use crate::state::PolicyState;

/// A flow answer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowDecision {
    /// Allow or deny.
    pub allowed: bool,
    /// What decided.
    pub reason: FlowReason,
}

/// Why a flow is allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlowReason {
    /// Allowed: the destination is inside the source enclave's own address space.
    #[serde(rename_all = "camelCase")]
    SameEnclave {
        /// The enclave.
        enclave: Scope,
        /// Its address space.
        address_space: Cidr,
    },
    /// Allowed through these Active connections and rules (sorted).
    Connections(Vec<FlowMatch>),
    /// Denied: the source is not an enclave of the state.
    UnknownSourceEnclave(Scope),
    /// Denied: the enclave has no connection at all.
    NoConnection(Scope),
    /// Denied: for each connection of the enclave, the first missing piece.
    NotCovered(Vec<FlowMiss>),
}

/// A connection and rule that let the flow through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowMatch {
    /// The connection.
    pub connection: Scope,
    /// Its endpoint.
    pub endpoint: Scope,
    /// The rule's name.
    pub rule: String,
}

/// Why one connection does not carry the flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowMiss {
    /// The connection.
    pub connection: Scope,
    /// What is missing.
    pub missing: Missing,
}

/// The first thing a connection lacks for a flow, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Missing {
    /// The connection is not Active.
    NotActive(ConnectionState),
    /// Its endpoint was deleted.
    EndpointDeleted(Scope),
    /// No rule of the endpoint has the destination.
    NoRuleForDestination,
    /// Rules have the destination, none with the port.
    NoRuleForPort,
    /// Rules have the destination and port, none with the protocol.
    NoRuleForProtocol,
}

impl PolicyState {
    /// May traffic from `source` (an enclave) reach `destination` on `port` with `protocol`?
    /// Inside the enclave's own address space, yes; elsewhere only through an Active
    /// connection of that enclave to an endpoint with a rule covering destination, port and
    /// protocol. A denial names, per connection, the missing piece.
    pub fn flow(
        &self,
        source: &Scope,
        destination: &Address,
        port: u16,
        protocol: Protocol,
    ) -> FlowDecision {
        let deny = |reason| FlowDecision {
            allowed: false,
            reason,
        };
        let Some(enclave) = self.enclaves.get(source) else {
            return deny(FlowReason::UnknownSourceEnclave(source.clone()));
        };
        if let Address::Ip(ip) = destination {
            if enclave.address_space.contains_ip(*ip) {
                return FlowDecision {
                    allowed: true,
                    reason: FlowReason::SameEnclave {
                        enclave: enclave.id.clone(),
                        address_space: enclave.address_space,
                    },
                };
            }
        }
        let mut matched = Vec::new();
        let mut missed = Vec::new();
        for id in self.index.connections_from(source) {
            let Some(connection) = self.connections.get(id) else {
                continue;
            };
            let miss = |missing| FlowMiss {
                connection: id.clone(),
                missing,
            };
            if connection.state != ConnectionState::Active {
                missed.push(miss(Missing::NotActive(connection.state)));
                continue;
            }
            let endpoint_id = &connection.destination_endpoint_id;
            let Some(endpoint) = self.endpoints.get(endpoint_id) else {
                missed.push(miss(Missing::EndpointDeleted(endpoint_id.clone())));
                continue;
            };
            let rules = &endpoint.rule_collection;
            let mut found = false;
            for rule in rules
                .iter()
                .filter(|r| r.covers(destination, port, protocol))
            {
                found = true;
                matched.push(FlowMatch {
                    connection: id.clone(),
                    endpoint: endpoint_id.clone(),
                    rule: rule.endpoint_rule_name.clone(),
                });
            }
            if found {
                continue;
            }
            let to_destination = || rules.iter().filter(|r| r.destination.covers(destination));
            let missing = if to_destination().next().is_none() {
                Missing::NoRuleForDestination
            } else if !to_destination().any(|r| r.ports.covers(port)) {
                Missing::NoRuleForPort
            } else {
                Missing::NoRuleForProtocol
            };
            missed.push(miss(missing));
        }
        if !matched.is_empty() {
            matched.sort();
            return FlowDecision {
                allowed: true,
                reason: FlowReason::Connections(matched),
            };
        }
        if missed.is_empty() {
            return deny(FlowReason::NoConnection(source.clone()));
        }
        missed.sort();
        deny(FlowReason::NotCovered(missed))
    }
}
