//! A store in memory, for tests of what sits on top of a store. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::cosigned::{append_to_note, parse_lines};
use super::{page_len, size_after_append, LogHead, LogStore, StoreError, StoredCheckpoint};

#[derive(Debug, Default)]
struct State {
    records: Vec<Vec<u8>>,
    checkpoints: BTreeMap<u64, String>,
    sealed_key: Option<Vec<u8>>,
    /// Size → (witness name, key id) → cosignature line.
    cosignatures: BTreeMap<u64, BTreeMap<(String, u32), String>>,
}

/// A [`LogStore`] in memory, with the same rules as the SQLite store.
#[derive(Debug, Default)]
pub struct MemoryLogStore {
    state: Mutex<State>,
}

impl MemoryLogStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below is complete before the guard drops, so a panic elsewhere cannot
        // have left the state half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LogStore for MemoryLogStore {
    fn head(&self) -> Result<LogHead, StoreError> {
        let state = self.state();
        Ok(LogHead {
            size: state.records.len() as u64,
            checkpoint: state
                .checkpoints
                .last_key_value()
                .map(|(size, note)| StoredCheckpoint {
                    size: *size,
                    note: note.clone(),
                }),
        })
    }

    fn append(
        &self,
        first_index: u64,
        records: &[Vec<u8>],
        checkpoint: &str,
    ) -> Result<u64, StoreError> {
        let mut state = self.state();
        let size = state.records.len() as u64;
        if first_index != size {
            return Err(StoreError::Conflict {
                expected: size,
                got: first_index,
            });
        }
        let new_size = size_after_append(first_index, records.len(), checkpoint)?;
        state.records.extend_from_slice(records);
        state.checkpoints.insert(new_size, checkpoint.to_owned());
        Ok(new_size)
    }

    fn read_records(
        &self,
        from: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let state = self.state();
        let rest = usize::try_from(from)
            .ok()
            .and_then(|from| state.records.get(from..))
            .unwrap_or_default();
        let take = page_len(rest.iter().map(Vec::len), max_count, max_bytes);
        Ok(rest.iter().take(take).cloned().collect())
    }

    fn read_checkpoints(
        &self,
        from_size: u64,
        max_count: usize,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        Ok(self
            .state()
            .checkpoints
            .range(from_size..)
            .take(max_count)
            .map(|(size, note)| StoredCheckpoint {
                size: *size,
                note: note.clone(),
            })
            .collect())
    }

    fn put_sealed_key(&self, sealed: &[u8]) -> Result<(), StoreError> {
        self.state().sealed_key = Some(sealed.to_vec());
        Ok(())
    }

    fn get_sealed_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().sealed_key.clone())
    }

    fn put_cosignatures(&self, size: u64, lines: &[String]) -> Result<(), StoreError> {
        let parsed = parse_lines(lines)?;
        let mut state = self.state();
        if !state.checkpoints.contains_key(&size) {
            return Err(StoreError::NoCheckpoint { size });
        }
        let kept = state.cosignatures.entry(size).or_default();
        for line in parsed {
            kept.insert((line.name, line.key_id), line.line);
        }
        Ok(())
    }

    fn cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let state = self.state();
        let latest = state
            .cosignatures
            .iter()
            .rev()
            .filter(|(_, lines)| !lines.is_empty())
            .find_map(|(size, lines)| Some((*size, state.checkpoints.get(size)?, lines)));
        Ok(latest.map(|(size, note, lines)| StoredCheckpoint {
            size,
            note: append_to_note(note, lines.values().map(String::as_str)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn follows_the_store_contract() {
        testing::contract(&MemoryLogStore::new());
    }
}
