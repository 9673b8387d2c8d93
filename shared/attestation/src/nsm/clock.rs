use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the mock NSM reads the time its documents and certificates carry. The real NSM uses
/// the hypervisor's clock; tests pass a fixed one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            // A clock before 1970 is broken; 0 makes every certificate check fail loudly.
            .unwrap_or(0)
    }
}
