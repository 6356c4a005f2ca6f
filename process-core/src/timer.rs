//! Timers: statistics over a series of durations, and the per-section set a process
//! keeps.
//!
//! Memory policy: a [`Timer`] keeps every sample up to [`Timer::EXACT_SAMPLES`]; past
//! that it keeps a uniform random sample of that many (reservoir sampling with a fixed
//! seed, so runs are repeatable), which bounds memory for processes that run for ever.
//! `num_times`, `total`, `most_recent`, `min`, `max` and `mean` are always exact;
//! `variance` and `stdev` are computed by Welford's streaming method over every sample;
//! `median` and `percentile` are exact up to the cap and estimates past it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Statistics over the durations added to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    count: u64,
    total: Duration,
    most_recent: Option<Duration>,
    min: Option<Duration>,
    max: Option<Duration>,
    // Welford's running mean and sum of squared deviations, in seconds.
    w_mean: f64,
    w_m2: f64,
    samples: Vec<Duration>,
    rng: u64,
}

impl Timer {
    /// Samples kept exactly; past this, percentiles are estimated from a uniform sample.
    pub const EXACT_SAMPLES: usize = 65_536;

    /// An empty timer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration.
    pub fn add_time(&mut self, d: Duration) {
        self.count += 1;
        self.total = self.total.saturating_add(d);
        self.most_recent = Some(d);
        self.min = Some(self.min.map_or(d, |m| m.min(d)));
        self.max = Some(self.max.map_or(d, |m| m.max(d)));
        let x = d.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let n = self.count as f64;
        let delta = x - self.w_mean;
        self.w_mean += delta / n;
        self.w_m2 += delta * (x - self.w_mean);
        if self.samples.len() < Self::EXACT_SAMPLES {
            self.samples.push(d);
        } else {
            // Algorithm R: the new sample replaces a kept one with probability cap/count.
            let slot = self.next_random() % self.count;
            if let Ok(slot) = usize::try_from(slot) {
                if slot < Self::EXACT_SAMPLES {
                    self.samples[slot] = d;
                }
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: small, fast, and deterministic for repeatable statistics.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Times `f` and records its duration.
    pub fn time_this<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = f();
        self.add_time(start.elapsed());
        r
    }

    /// Starts timing; the duration is recorded when the returned guard is dropped.
    pub fn time(&mut self) -> TimeThis<'_> {
        TimeThis::new(self)
    }

    /// Forgets every recorded duration.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// How many durations were recorded.
    #[must_use]
    pub fn num_times(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// The sum of every recorded duration.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.total
    }

    /// The last recorded duration.
    #[must_use]
    pub fn most_recent(&self) -> Option<Duration> {
        self.most_recent
    }

    /// The shortest recorded duration.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    /// The longest recorded duration.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        self.max
    }

    /// The mean duration (exact: total over count).
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.count).ok();
        match count {
            Some(0) => None,
            Some(n) => Some(self.total / n),
            #[allow(clippy::cast_precision_loss)]
            None => Some(Duration::from_secs_f64(
                self.total.as_secs_f64() / self.count as f64,
            )),
        }
    }

    /// The population variance, in seconds squared.
    #[must_use]
    pub fn variance(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.count > 0).then(|| self.w_m2 / self.count as f64)
    }

    /// The population standard deviation.
    #[must_use]
    pub fn stdev(&self) -> Option<Duration> {
        self.variance()
            .map(|v| Duration::from_secs_f64(v.max(0.0).sqrt()))
    }

    /// The median (the 50th percentile).
    #[must_use]
    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// The `p`th percentile, `p` in `0.0..=100.0` (clamped), by linear interpolation
    /// between the two nearest ranks.
    #[must_use]
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let p = if p.is_nan() {
            50.0
        } else {
            p.clamp(0.0, 100.0)
        };
        #[allow(clippy::cast_precision_loss)]
        let rank = p / 100.0 * (sorted.len() - 1) as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        #[allow(clippy::cast_precision_loss)]
        let frac = rank - lo as f64;
        let a = sorted[lo].as_secs_f64();
        let b = sorted[hi].as_secs_f64();
        Some(Duration::from_secs_f64(a + (b - a) * frac))
    }
}

/// A guard that records the time from its creation to its drop into a [`Timer`].
#[derive(Debug)]
#[must_use = "the time is recorded when the guard is dropped; bind it to a variable"]
pub struct TimeThis<'a> {
    timer: &'a mut Timer,
    start: Instant,
}

impl<'a> TimeThis<'a> {
    /// Starts timing into `timer`.
    pub fn new(timer: &'a mut Timer) -> Self {
        Self {
            timer,
            start: Instant::now(),
        }
    }
}

impl Drop for TimeThis<'_> {
    fn drop(&mut self) {
        self.timer.add_time(self.start.elapsed());
    }
}

/// The timers of one process: one per section that `#[timethis]` marks, `full_loop`
/// (per lap, the sum of that lap's timed `preloop`, `main_loop` and `postloop`), and
/// timers named after other marked methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessTimers {
    /// `preloop` calls, when marked.
    pub preloop: Timer,
    /// `main_loop` calls, when marked.
    pub main_loop: Timer,
    /// `postloop` calls, when marked.
    pub postloop: Timer,
    /// `on_finish`, when marked.
    pub on_finish: Timer,
    /// Per lap, the sum of the timed sections of that lap.
    pub full_loop: Timer,
    named: BTreeMap<String, Timer>,
    attempt: u32,
    failed: bool,
}

impl ProcessTimers {
    /// The attempt these timers were recorded in (1 for the first; 0 when nothing was
    /// reported, e.g. before the end or after a crash of the only attempt).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the attempt these timers come from failed (a section error or panic),
    /// even if `error` then recovered to a value.
    #[must_use]
    pub fn from_failed_attempt(&self) -> bool {
        self.failed
    }

    /// Records which attempt the timers describe; used by the runtime before sending.
    #[doc(hidden)]
    pub fn __set_origin(&mut self, attempt: u32, failed: bool) {
        self.attempt = attempt;
        self.failed = failed;
    }

    /// The timer of a marked method other than the four sections, or of a timer made
    /// with [`ProcessTimers::named_mut`]; `None` if nothing was recorded under `name`.
    #[must_use]
    pub fn named(&self, name: &str) -> Option<&Timer> {
        self.named.get(name)
    }

    /// The timer called `name`, created empty if it does not exist yet.
    pub fn named_mut(&mut self, name: &str) -> &mut Timer {
        if !self.named.contains_key(name) {
            self.named.insert(name.to_owned(), Timer::new());
        }
        self.named.get_mut(name).expect("inserted above")
    }

    /// The names of the named timers, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_timer_has_no_statistics() {
        let t = Timer::new();
        assert_eq!(t.num_times(), 0);
        assert_eq!(t.total(), Duration::ZERO);
        assert_eq!(t.mean(), None);
        assert_eq!(t.median(), None);
        assert_eq!(t.stdev(), None);
        assert_eq!(t.percentile(95.0), None);
        assert_eq!(t.most_recent(), None);
    }

    #[test]
    fn statistics_match_a_reference_computation() {
        let mut t = Timer::new();
        for n in [4, 1, 3, 2, 10] {
            t.add_time(ms(n));
        }
        assert_eq!(t.num_times(), 5);
        assert_eq!(t.total(), ms(20));
        assert_eq!(t.most_recent(), Some(ms(10)));
        assert_eq!(t.min(), Some(ms(1)));
        assert_eq!(t.max(), Some(ms(10)));
        assert_eq!(t.mean(), Some(ms(4)));
        assert_eq!(t.median(), Some(ms(3)));
        // Population variance of 1,2,3,4,10 ms: mean 4, squares 9+4+1+0+36 = 50, /5 = 10 ms^2.
        let var = t.variance().unwrap();
        assert!((var - 10e-6).abs() < 1e-12, "{var}");
        let sd = t.stdev().unwrap().as_secs_f64();
        assert!((sd - 10e-6_f64.sqrt()).abs() < 1e-9);
        // Ranks 0..4 over sorted [1,2,3,4,10]: p75 is rank 3 -> 4 ms; p90 is rank 3.6.
        assert_eq!(t.percentile(75.0), Some(ms(4)));
        let p90 = t.percentile(90.0).unwrap().as_secs_f64();
        assert!((p90 - 0.0076).abs() < 1e-9, "{p90}");
        assert_eq!(t.percentile(0.0), Some(ms(1)));
        assert_eq!(t.percentile(100.0), Some(ms(10)));
        assert_eq!(t.percentile(250.0), Some(ms(10)));
    }

    #[test]
    fn memory_is_bounded_and_exact_figures_stay_exact() {
        let mut t = Timer::new();
        let n = Timer::EXACT_SAMPLES as u64 * 2;
        for i in 0..n {
            t.add_time(Duration::from_nanos(i % 1000));
        }
        assert_eq!(t.samples.len(), Timer::EXACT_SAMPLES);
        assert_eq!(t.num_times() as u64, n);
        assert_eq!(t.min(), Some(Duration::ZERO));
        assert_eq!(t.max(), Some(Duration::from_nanos(999)));
        let median = t.median().unwrap().as_nanos();
        assert!((450..550).contains(&median), "estimated median {median}");
    }

    #[test]
    fn guard_and_closure_record_once_each() {
        let mut t = Timer::new();
        {
            let _g = t.time();
            std::thread::sleep(ms(2));
        }
        let v = t.time_this(|| 7);
        assert_eq!(v, 7);
        assert_eq!(t.num_times(), 2);
        assert!(t.max().unwrap() >= ms(2));
        t.reset();
        assert_eq!(t.num_times(), 0);
    }

    #[test]
    fn named_timers() {
        let mut timers = ProcessTimers::default();
        assert!(timers.named("fetch").is_none());
        timers.named_mut("fetch").add_time(ms(1));
        timers.named_mut("fetch").add_time(ms(3));
        assert_eq!(timers.named("fetch").unwrap().num_times(), 2);
        assert_eq!(timers.names().collect::<Vec<_>>(), ["fetch"]);
    }
}
