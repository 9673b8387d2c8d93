//! Maintenance mode (SPEC-policy section 4.2): who is excluded from a managed group's two
//! platform deny assignments, and until when.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::PrincipalId;
use crate::time::Timestamp;

/// The mode.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum MaintenanceMode {
    /// Everyone but `platform` may only read and tag in the managed group.
    #[default]
    Off,
    /// Maintenance principals are excluded from Deny All.
    General,
    /// Maintenance principals are excluded from both deny assignments.
    Advanced,
}

/// Why maintenance mode is on.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum MaintenanceJustification {
    /// Required with mode Off.
    #[default]
    Off,
    /// Network maintenance.
    Networking,
    /// Governance maintenance.
    Governance,
}

/// `maintenanceModeConfiguration` of a community or an enclave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceModeConfiguration {
    /// The mode.
    pub mode: MaintenanceMode,
    /// Who is excluded (directly or through a group) while the mode is on.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub principals: BTreeSet<PrincipalId>,
    /// Why.
    pub justification: MaintenanceJustification,
    /// At this instant the mode turns Off by itself (beyond Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// A maintenance configuration that breaks a rule of section 4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MaintenanceProblem {
    /// General or Advanced with nobody to let in.
    #[error("mode {0:?} requires at least one principal")]
    NoPrincipals(MaintenanceMode),
    /// General or Advanced need a reason.
    #[error("mode {0:?} requires justification Networking or Governance")]
    JustificationRequired(MaintenanceMode),
    /// Off takes justification Off.
    #[error("mode Off requires justification Off")]
    JustificationWithModeOff,
    /// Off has nobody to let in.
    #[error("mode Off takes no principals")]
    PrincipalsWithModeOff,
    /// Off does not expire.
    #[error("mode Off takes no expiresAt")]
    ExpiryWithModeOff,
}

impl MaintenanceModeConfiguration {
    /// The mode in force at `at`: Off from `expires_at` on.
    pub fn effective_mode(&self, at: Timestamp) -> MaintenanceMode {
        match self.expires_at {
            Some(end) if at >= end => MaintenanceMode::Off,
            _ => self.mode,
        }
    }

    /// The rules of section 4.2, which hold for every stored configuration.
    pub fn check_rules(&self) -> Result<(), MaintenanceProblem> {
        match self.mode {
            MaintenanceMode::Off => {
                if self.justification != MaintenanceJustification::Off {
                    Err(MaintenanceProblem::JustificationWithModeOff)
                } else if !self.principals.is_empty() {
                    Err(MaintenanceProblem::PrincipalsWithModeOff)
                } else if self.expires_at.is_some() {
                    Err(MaintenanceProblem::ExpiryWithModeOff)
                } else {
                    Ok(())
                }
            }
            mode @ (MaintenanceMode::General | MaintenanceMode::Advanced) => {
                if self.principals.is_empty() {
                    Err(MaintenanceProblem::NoPrincipals(mode))
                } else if self.justification == MaintenanceJustification::Off {
                    Err(MaintenanceProblem::JustificationRequired(mode))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether the configuration is the canonical Off one.
    pub fn is_off(&self) -> bool {
        *self == MaintenanceModeConfiguration::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        mode: MaintenanceMode,
        principals: &[&str],
        justification: MaintenanceJustification,
    ) -> MaintenanceModeConfiguration {
        MaintenanceModeConfiguration {
            mode,
            principals: principals
                .iter()
                .map(|p| PrincipalId::new(p).unwrap())
                .collect(),
            justification,
            expires_at: None,
        }
    }

    /// Section 4.2's validation sentences, one row each.
    #[test]
    fn rules() {
        use MaintenanceJustification as J;
        use MaintenanceMode as M;
        type Row<'a> = (M, &'a [&'a str], J, Result<(), MaintenanceProblem>);
        let rows: &[Row] = &[
            (M::Off, &[], J::Off, Ok(())),
            (
                M::Off,
                &[],
                J::Networking,
                Err(MaintenanceProblem::JustificationWithModeOff),
            ),
            (
                M::Off,
                &["ops"],
                J::Off,
                Err(MaintenanceProblem::PrincipalsWithModeOff),
            ),
            (M::General, &["ops"], J::Networking, Ok(())),
            (M::Advanced, &["ops"], J::Governance, Ok(())),
            (
                M::General,
                &[],
                J::Networking,
                Err(MaintenanceProblem::NoPrincipals(M::General)),
            ),
            (
                M::Advanced,
                &[],
                J::Governance,
                Err(MaintenanceProblem::NoPrincipals(M::Advanced)),
            ),
            (
                M::General,
                &["ops"],
                J::Off,
                Err(MaintenanceProblem::JustificationRequired(M::General)),
            ),
            (
                M::Advanced,
                &["ops"],
                J::Off,
                Err(MaintenanceProblem::JustificationRequired(M::Advanced)),
            ),
        ];
        for (mode, principals, justification, expected) in rows {
            let c = config(*mode, principals, *justification);
            assert_eq!(c.check_rules(), *expected, "{c:?}");
        }
        let mut off = config(M::Off, &[], J::Off);
        off.expires_at = Some(Timestamp::EPOCH);
        assert_eq!(
            off.check_rules(),
            Err(MaintenanceProblem::ExpiryWithModeOff)
        );
    }

    #[test]
    fn expiry_turns_the_mode_off_at_that_instant() {
        let mut c = config(
            MaintenanceMode::Advanced,
            &["ops"],
            MaintenanceJustification::Networking,
        );
        let end = Timestamp::from_unix_millis(1_000).unwrap();
        c.expires_at = Some(end);
        assert_eq!(
            c.effective_mode(Timestamp::from_unix_millis(999).unwrap()),
            MaintenanceMode::Advanced
        );
        assert_eq!(c.effective_mode(end), MaintenanceMode::Off);
    }
}
