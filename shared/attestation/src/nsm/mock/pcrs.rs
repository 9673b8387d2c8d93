//! The mock NSM's PCR bank: 32 SHA-384 registers with the device's rules.
//!
//! - `extend(i, data)`: `PCR[i] = SHA-384(PCR[i] || data)`, refused when `i` is locked;
//! - `lock(i)`: refused when `i` is already locked (the device answers ReadOnlyIndex);
//! - `lock_range(n)`: locks `0..n`, already locked ones included; `n > 32` is refused;
//! - indexes `>= 32` are refused everywhere.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest as _, Sha384};

use crate::limits::{PCR_COUNT, PCR_LEN};
use crate::nsm::{NsmError, PcrState};

/// PCRs `0..BOOT_LOCKED_PCRS` are set and locked when the enclave boots; applications use
/// `16..32`. (The nsm-api's own device test expects exactly this.)
pub const BOOT_LOCKED_PCRS: u16 = 16;

#[derive(Debug, Clone)]
struct Register {
    value: [u8; PCR_LEN],
    locked: bool,
}

/// 32 registers, all zero and unlocked until boot.
#[derive(Debug, Clone)]
pub(crate) struct PcrBank {
    registers: Vec<Register>,
}

impl PcrBank {
    pub(crate) fn new() -> Self {
        Self {
            registers: vec![
                Register {
                    value: [0; PCR_LEN],
                    locked: false,
                };
                usize::from(PCR_COUNT)
            ],
        }
    }

    /// Sets the boot measurements and locks `0..BOOT_LOCKED_PCRS`, as the enclave's boot does.
    pub(crate) fn boot(measurements: &BTreeMap<u16, [u8; PCR_LEN]>) -> Result<Self, NsmError> {
        let mut bank = Self::new();
        for (&index, value) in measurements {
            bank.register_mut(index)?.value = *value;
        }
        bank.lock_range(BOOT_LOCKED_PCRS)?;
        Ok(bank)
    }

    fn register(&self, index: u16) -> Result<&Register, NsmError> {
        self.registers
            .get(usize::from(index))
            .ok_or(NsmError::InvalidIndex { index })
    }

    fn register_mut(&mut self, index: u16) -> Result<&mut Register, NsmError> {
        self.registers
            .get_mut(usize::from(index))
            .ok_or(NsmError::InvalidIndex { index })
    }

    pub(crate) fn describe(&self, index: u16) -> Result<PcrState, NsmError> {
        let register = self.register(index)?;
        Ok(PcrState {
            locked: register.locked,
            value: register.value.to_vec(),
        })
    }

    pub(crate) fn extend(&mut self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        let register = self.register_mut(index)?;
        if register.locked {
            return Err(NsmError::ReadOnlyIndex { index });
        }
        let mut hasher = Sha384::new();
        hasher.update(register.value);
        hasher.update(data);
        register.value = hasher.finalize().into();
        Ok(register.value.to_vec())
    }

    pub(crate) fn lock(&mut self, index: u16) -> Result<(), NsmError> {
        let register = self.register_mut(index)?;
        if register.locked {
            return Err(NsmError::ReadOnlyIndex { index });
        }
        register.locked = true;
        Ok(())
    }

    pub(crate) fn lock_range(&mut self, range: u16) -> Result<(), NsmError> {
        if range > PCR_COUNT {
            return Err(NsmError::InvalidLockRange { range });
        }
        for register in self.registers.iter_mut().take(usize::from(range)) {
            register.locked = true;
        }
        Ok(())
    }

    pub(crate) fn locked(&self) -> BTreeSet<u16> {
        (0..PCR_COUNT)
            .zip(&self.registers)
            .filter(|(_, r)| r.locked)
            .map(|(i, _)| i)
            .collect()
    }

    /// The locked PCRs and their values: what an attestation document carries.
    pub(crate) fn locked_values(&self) -> BTreeMap<u16, Vec<u8>> {
        (0..PCR_COUNT)
            .zip(&self.registers)
            .filter(|(_, r)| r.locked)
            .map(|(i, r)| (i, r.value.to_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sha384(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = Sha384::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().to_vec()
    }

    #[test]
    fn extend_is_sha384_of_old_then_data() {
        let mut bank = PcrBank::new();
        let first = bank.extend(16, b"hello").unwrap();
        assert_eq!(first, sha384(&[&[0u8; 48], b"hello"]));
        let second = bank.extend(16, b"world").unwrap();
        assert_eq!(second, sha384(&[&first, b"world"]));
        assert_eq!(bank.describe(16).unwrap().value, second);
    }

    #[test]
    fn locked_pcrs_cannot_be_extended_or_relocked() {
        let mut bank = PcrBank::new();
        bank.extend(20, b"x").unwrap();
        bank.lock(20).unwrap();
        let before = bank.describe(20).unwrap();
        assert!(before.locked);
        assert!(matches!(
            bank.extend(20, b"y"),
            Err(NsmError::ReadOnlyIndex { index: 20 })
        ));
        assert!(matches!(
            bank.lock(20),
            Err(NsmError::ReadOnlyIndex { index: 20 })
        ));
        assert_eq!(bank.describe(20).unwrap(), before);
    }

    #[test]
    fn lock_range_locks_zero_to_range() {
        let mut bank = PcrBank::new();
        bank.lock_range(5).unwrap();
        assert_eq!(bank.locked(), (0..5).collect());
        bank.lock_range(32).unwrap();
        assert_eq!(bank.locked(), (0..32).collect());
        assert!(matches!(
            bank.lock_range(33),
            Err(NsmError::InvalidLockRange { range: 33 })
        ));
    }

    #[test]
    fn boot_sets_measurements_and_locks_the_first_sixteen() {
        let measurements = BTreeMap::from([(0, [1u8; 48]), (2, [2u8; 48])]);
        let bank = PcrBank::boot(&measurements).unwrap();
        assert_eq!(bank.locked(), (0..16).collect());
        let values = bank.locked_values();
        assert_eq!(values.len(), 16);
        assert_eq!(values[&0], vec![1u8; 48]);
        assert_eq!(values[&1], vec![0u8; 48]);
        assert_eq!(values[&2], vec![2u8; 48]);
        assert!(!bank.describe(16).unwrap().locked);
    }

    #[test]
    fn indexes_beyond_32_are_refused() {
        let mut bank = PcrBank::new();
        assert!(matches!(
            bank.describe(32),
            Err(NsmError::InvalidIndex { index: 32 })
        ));
        assert!(matches!(
            bank.extend(40, b""),
            Err(NsmError::InvalidIndex { index: 40 })
        ));
        assert!(matches!(
            bank.lock(32),
            Err(NsmError::InvalidIndex { index: 32 })
        ));
    }

    /// The reference model: a plain list of (value, locked), no shared code with the bank
    /// but the hash function.
    #[derive(Debug, Clone)]
    enum Op {
        Extend(u16, Vec<u8>),
        Lock(u16),
        LockRange(u16),
        Describe(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..34, proptest::collection::vec(any::<u8>(), 0..8))
                .prop_map(|(i, d)| Op::Extend(i, d)),
            (0u16..34).prop_map(Op::Lock),
            (0u16..34).prop_map(Op::LockRange),
            (0u16..34).prop_map(Op::Describe),
        ]
    }

    proptest! {
        #[test]
        fn bank_matches_reference_model(ops in proptest::collection::vec(op(), 0..40)) {
            let mut bank = PcrBank::new();
            let mut model: Vec<(Vec<u8>, bool)> = vec![(vec![0u8; 48], false); 32];
            for op in ops {
                match op {
                    Op::Extend(i, data) => {
                        let got = bank.extend(i, &data).ok();
                        let want = match model.get_mut(usize::from(i)) {
                            Some((value, false)) => {
                                *value = sha384(&[value, &data]);
                                Some(value.clone())
                            }
                            _ => None,
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Lock(i) => {
                        let got = bank.lock(i).is_ok();
                        let want = match model.get_mut(usize::from(i)) {
                            Some((_, locked @ false)) => { *locked = true; true }
                            _ => false,
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::LockRange(n) => {
                        let got = bank.lock_range(n).is_ok();
                        let want = n <= 32;
                        if want {
                            for entry in model.iter_mut().take(usize::from(n)) { entry.1 = true; }
                        }
                        prop_assert_eq!(got, want);
                    }
                    Op::Describe(i) => {
                        let got = bank.describe(i).ok().map(|s| (s.value, s.locked));
                        prop_assert_eq!(got, model.get(usize::from(i)).cloned());
                    }
                }
            }
            let locked: BTreeSet<u16> = (0u16..32).filter(|&i| model[usize::from(i)].1).collect();
            prop_assert_eq!(bank.locked(), locked);
        }
    }
}
