//! [`Backoff`]: exponential delays for retries, `base · 2^(failures-1)` capped at `max`.
//!
//! Used per key by the work queue (a reconcile that keeps failing is retried less and less
//! often, so one broken object cannot monopolise the workers) and by informers between
//! failed list/watch attempts. No jitter: retries of different keys already spread out,
//! and deterministic delays keep tests exact under `tokio::time::pause()`.

use std::time::Duration;

/// Exponential backoff. `delay(1) == base`, each further failure doubles it, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The controllers' default: 5 ms like client-go, but capped at 60 s rather than
    /// client-go's 1000 s, so a key failing on a condition someone then fixes (a missing
    /// namespace, a quota) is picked up again within a minute.
    pub const CONTROLLER: Backoff = Backoff { base: Duration::from_millis(5), max: Duration::from_secs(60) };

    /// Between failed list/watch attempts of an informer: in process, failures are "no
    /// leader yet" or a store shutting down, so retry soon but never spin.
    pub const INFORMER: Backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5) };

    /// The delay before the retry that follows the `failures`-th consecutive failure
    /// (`failures == 0` means no failure: no delay).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // 2^31 · anything positive exceeds every sensible cap; saturate instead of overflowing.
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.base.is_zero() {
            return Err("backoff base must be positive".into());
        }
        if self.max < self.base {
            return Err(format!("backoff max {:?} is below its base {:?}", self.max, self.base));
        }
        Ok(())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::CONTROLLER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_and_saturates_at_max() {
        let b = Backoff { base: Duration::from_millis(5), max: Duration::from_secs(1) };
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.delay(1), Duration::from_millis(5));
        assert_eq!(b.delay(2), Duration::from_millis(10));
        assert_eq!(b.delay(8), Duration::from_millis(640));
        assert_eq!(b.delay(9), Duration::from_secs(1));
        assert_eq!(b.delay(40), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn validate_rejects_zero_base_and_inverted_bounds() {
        assert!(Backoff::CONTROLLER.validate().is_ok());
        assert!(Backoff { base: Duration::ZERO, max: Duration::from_secs(1) }.validate().is_err());
        assert!(Backoff { base: Duration::from_secs(2), max: Duration::from_secs(1) }.validate().is_err());
    }
}
