//! Time: the one RFC 3339 formatter, and the clock that TOTP waits and
//! session expiry read, as a trait so tests can run without sleeping.

use std::time::Duration;

use crate::error::{Error, Result};

/// A source of the current time and a way to wait.
pub trait Clock {
    /// Seconds since the Unix epoch.
    ///
    /// # Errors
    /// [`Error::Clock`] if the clock is before 1970.
    fn now(&self) -> Result<u64>;

    /// Waits for `d` (a test clock advances instead).
    fn sleep(&self, d: Duration);
}

/// The system clock and real sleeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Result<u64> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(Error::Clock)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> Result<u64> {
    SystemClock.now()
}

/// RFC 3339 UTC text, second precision, of a Unix time (the one
/// formatter of vault-core); `None` beyond year 9999.
pub(crate) fn rfc3339_checked(unix: u64) -> Option<String> {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// As [`rfc3339_checked`], with times beyond year 9999 as its last second.
pub(crate) fn rfc3339(unix: u64) -> String {
    rfc3339_checked(unix).unwrap_or_else(|| "9999-12-31T23:59:59Z".into())
}

/// The current time as RFC 3339 UTC with second precision.
pub(crate) fn now_rfc3339() -> Result<String> {
    Ok(rfc3339(unix_now()?))
}

#[cfg(test)]
pub(crate) mod test_clock {
    //! A clock for tests: starts at a given time, and sleeping advances it.
    use super::*;
    use std::cell::Cell;

    pub(crate) struct TestClock(pub Cell<u64>);

    impl Clock for TestClock {
        fn now(&self) -> Result<u64> {
            Ok(self.0.get())
        }
        fn sleep(&self, d: Duration) {
            self.0.set(self.0.get() + d.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert!(now_rfc3339().unwrap().ends_with('Z'));
    }
}
