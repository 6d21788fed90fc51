//! The controller's clock: milliseconds since 1970, read once from the
//! wall clock at start and carried on by the monotonic clock. The engine's
//! freshness, cooldown, retry and deadline arithmetic all use it, so a
//! wall-clock step backwards (or forwards) while running never makes an
//! old observation look fresh or a deadline pass early. Across restarts
//! its values stay comparable, to within the wall clock's own error.

use std::{sync::OnceLock, time::Instant};

/// A wall-clock reading carried on by a monotonic one.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: u64,
    start: Instant,
}

impl Clock {
    /// A clock that reads `wall_ms` now and runs on monotonically.
    pub fn anchored(wall_ms: u64) -> Self {
        Self {
            wall_at_start: wall_ms,
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> u64 {
        self.wall_at_start + self.start.elapsed().as_millis() as u64
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The controller's time, in milliseconds since 1970.
pub fn now_ms() -> u64 {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock::anchored(wall_ms())).now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the wall clock does after the start, the controller's time
    /// only moves forward with real time: an observation 50 ms old is
    /// 50 ms old, not an hour in the future.
    #[test]
    fn time_moves_with_the_monotonic_clock_not_the_wall() {
        let clock = Clock::anchored(1_795_305_600_000);
        let observed = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let later = clock.now();
        assert!(later >= observed + 50, "{observed} -> {later}");
        assert!(later < observed + 5_000, "{observed} -> {later}");
        assert!(now_ms() <= now_ms());
    }
}
