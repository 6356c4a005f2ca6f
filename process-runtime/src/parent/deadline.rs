//! Section deadlines, held by the parent from the beacon's samples.
//!
//! The parent cannot see when a section started, only when it first saw the beacon
//! word change; that is at most one tick late, so a timeout fires between its limit
//! and its limit plus two ticks, with the tick a tenth of the shortest limit (between
//! 1 ms and 250 ms).

use std::time::{Duration, Instant};

use crate::beacon;
use crate::{Section, Timeouts};

/// What a tick of the deadline check found.
#[derive(Debug, PartialEq)]
pub(crate) enum Overdue {
    No,
    Section(Section, Duration),
    Startup(Duration),
}

/// Holds the deadlines of one attempt from the beacon's samples.
#[derive(Debug)]
pub(crate) struct Watch {
    timeouts: Timeouts,
    started: Instant,
    word: u64,
    since: Instant,
}

impl Watch {
    /// How long a child may take from spawn to a completed handshake.
    pub(crate) const STARTUP_LIMIT: Duration = Duration::from_secs(30);

    pub(crate) fn new(timeouts: Timeouts) -> Self {
        let now = Instant::now();
        Self {
            timeouts,
            started: now,
            word: beacon::NOT_STARTED,
            since: now,
        }
    }

    /// The socket read timeout: how often the deadlines are checked.
    pub(crate) fn tick(timeouts: &Timeouts) -> Duration {
        let shortest = [
            timeouts.preloop,
            timeouts.main_loop,
            timeouts.postloop,
            timeouts.on_finish,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::MAX);
        (shortest / 10).clamp(Duration::from_millis(1), Duration::from_millis(250))
    }

    pub(crate) fn check(&mut self, word: u64, now: Instant) -> Overdue {
        if word != self.word {
            self.word = word;
            self.since = now;
            return Overdue::No;
        }
        if word == beacon::NOT_STARTED {
            // Before the first section: only the start-up limit applies (a child
            // that has not even sent its handshake, or is decoding a large state).
            return if now.duration_since(self.started) > Self::STARTUP_LIMIT {
                Overdue::Startup(Self::STARTUP_LIMIT)
            } else {
                Overdue::No
            };
        }
        match beacon::section_of(word).and_then(|s| Some((s, self.timeouts.get(s)?))) {
            Some((section, limit)) if now.duration_since(self.since) >= limit => {
                Overdue::Section(section, limit)
            }
            _ => Overdue::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProcessConfig;

    fn timeouts(main_loop: Option<Duration>) -> Timeouts {
        ProcessConfig::new("t")
            .with_timeout(Section::MainLoop, main_loop)
            .timeouts
    }

    #[test]
    fn the_tick_is_a_tenth_of_the_shortest_limit_within_bounds() {
        assert_eq!(
            Watch::tick(&timeouts(Some(Duration::from_millis(200)))),
            Duration::from_millis(20)
        );
        assert_eq!(
            Watch::tick(&timeouts(Some(Duration::from_micros(10)))),
            Duration::from_millis(1)
        );
        assert_eq!(
            Watch::tick(&Timeouts::default()),
            Duration::from_millis(250)
        );
        let none = ProcessConfig::new("t")
            .with_timeout(Section::Preloop, None)
            .with_timeout(Section::MainLoop, None)
            .with_timeout(Section::Postloop, None)
            .with_timeout(Section::OnFinish, None)
            .timeouts;
        assert_eq!(Watch::tick(&none), Duration::from_millis(250));
    }

    #[test]
    fn a_word_that_stays_the_same_past_its_limit_is_overdue() {
        let limit = Duration::from_millis(100);
        let mut w = Watch::new(timeouts(Some(limit)));
        let t0 = w.started;
        let word = beacon::encode(2, Section::MainLoop);
        assert_eq!(
            w.check(word, t0),
            Overdue::No,
            "first sight starts the clock"
        );
        assert_eq!(w.check(word, t0 + Duration::from_millis(99)), Overdue::No);
        assert_eq!(
            w.check(word, t0 + limit),
            Overdue::Section(Section::MainLoop, limit)
        );
        // The next lap's main_loop is a new word: the clock restarts.
        let next = beacon::encode(5, Section::MainLoop);
        assert_eq!(w.check(next, t0 + limit), Overdue::No);
        assert_eq!(
            w.check(next, t0 + limit + Duration::from_millis(50)),
            Overdue::No
        );
    }

    #[test]
    fn sections_without_a_limit_never_time_out_but_start_up_does() {
        let mut w = Watch::new(timeouts(None));
        let t0 = w.started;
        let word = beacon::encode(2, Section::MainLoop);
        w.check(word, t0);
        assert_eq!(w.check(word, t0 + Duration::from_secs(3600)), Overdue::No);
        let result = beacon::encode(3, Section::Result);
        w.check(result, t0);
        assert_eq!(w.check(result, t0 + Duration::from_secs(3600)), Overdue::No);

        let mut w = Watch::new(Timeouts::default());
        let t0 = w.started;
        assert_eq!(
            w.check(beacon::NOT_STARTED, t0 + Duration::from_secs(29)),
            Overdue::No
        );
        assert_eq!(
            w.check(beacon::NOT_STARTED, t0 + Duration::from_secs(31)),
            Overdue::Startup(Watch::STARTUP_LIMIT)
        );
    }
}
