//! The supervisor's decisions, as pure functions of what happened and when: whether an
//! ended child is restarted, which children a restart takes along, whether restarts
//! came too fast (the intensity window), and how long a restart waits (the backoff).
//! No process is touched here, so each rule is tested on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Restart, Strategy};

/// How a child ended, as far as its restart type cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It delivered its result, or was ended with the `Normal` or `Shutdown` reason.
    Normal,
    /// It failed: an error, a panic, a timeout, a crash, a kill.
    Failure,
}

/// Whether a child of restart type `restart` that ended as `ending` starts again.
pub(crate) fn restarts(restart: Restart, ending: Ending) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Transient => ending == Ending::Failure,
        Restart::Temporary => false,
    }
}

/// The positions (in start order, among `len` children) that restart when the child at
/// `failed` does: itself alone, every child, or itself and those started after it.
pub(crate) fn group(strategy: Strategy, failed: usize, len: usize) -> std::ops::Range<usize> {
    match strategy {
        Strategy::OneForOne => failed..failed + 1,
        Strategy::OneForAll => 0..len,
        Strategy::RestForOne => failed..len,
    }
}

/// The restarts made within the last `period`: more than `max` of them and the
/// supervisor gives up (OTP's restart intensity, a sliding window).
#[derive(Debug)]
pub(crate) struct Intensity {
    max: u32,
    period: Duration,
    restarts: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max: u32, period: Duration) -> Self {
        Self {
            max,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Counts a restart at `now`; returns how many fall within the window ending now,
    /// and whether that is more than allowed.
    pub(crate) fn record(&mut self, now: Instant) -> (u32, bool) {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        let count = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        (count, count > self.max)
    }
}

/// The spacing of one child's restarts: the first after a quiet period is at once, the
/// next ones wait `min`, then twice as long each time, up to `max`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    /// The wait of the next restart unless a quiet period passes first.
    next: Duration,
    /// When the last restart was decided.
    last: Option<Instant>,
}

impl Backoff {
    /// How long the restart decided at `now` waits. A restart `quiet` or longer after
    /// the previous one starts the doubling again.
    pub(crate) fn delay(
        &mut self,
        now: Instant,
        min: Duration,
        max: Duration,
        quiet: Duration,
    ) -> Duration {
        let calm = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= quiet);
        self.last = Some(now);
        if calm {
            self.next = min;
            return Duration::ZERO;
        }
        let delay = self.next.min(max);
        self.next = delay.saturating_mul(2).min(max).max(min);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_types_follow_otp() {
        assert!(restarts(Restart::Permanent, Ending::Normal));
        assert!(restarts(Restart::Permanent, Ending::Failure));
        assert!(!restarts(Restart::Transient, Ending::Normal));
        assert!(restarts(Restart::Transient, Ending::Failure));
        assert!(!restarts(Restart::Temporary, Ending::Normal));
        assert!(!restarts(Restart::Temporary, Ending::Failure));
    }

    #[test]
    fn strategies_pick_their_groups() {
        assert_eq!(group(Strategy::OneForOne, 1, 3), 1..2);
        assert_eq!(group(Strategy::OneForAll, 1, 3), 0..3);
        assert_eq!(group(Strategy::RestForOne, 1, 3), 1..3);
        assert_eq!(group(Strategy::RestForOne, 2, 3), 2..3);
    }

    #[test]
    fn intensity_trips_past_max_within_period_only() {
        let t0 = Instant::now();
        let period = Duration::from_secs(5);
        let mut window = Intensity::new(2, period);
        assert_eq!(window.record(t0), (1, false));
        assert_eq!(window.record(t0 + Duration::from_secs(1)), (2, false));
        assert_eq!(window.record(t0 + Duration::from_secs(2)), (3, true));
        // Spread out, the same number of restarts never trips it.
        let mut window = Intensity::new(2, period);
        for i in 0..10 {
            assert!(!window.record(t0 + period * i).1);
        }
    }

    #[test]
    fn backoff_doubles_to_max_and_resets_when_quiet() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (min, max, quiet) = (ms(10), ms(45), Duration::from_secs(1));
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..5)
            .map(|i| b.delay(t0 + ms(i), min, max, quiet))
            .collect();
        assert_eq!(waits, [ms(0), ms(10), ms(20), ms(40), ms(45)]);
        // A quiet second later: at once again, then from `min`.
        let later = t0 + ms(4) + quiet;
        assert_eq!(b.delay(later, min, max, quiet), ms(0));
        assert_eq!(b.delay(later + ms(1), min, max, quiet), ms(10));
    }
}
