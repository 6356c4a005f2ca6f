//! Timers: statistics over a series of durations, and the per-section set a process
//! keeps.
//!
//! # What a [`Timer`] keeps
//!
//! `num_times`, `total`, `most_recent`, `min`, `max` and `mean` are exact (durations
//! are counted in whole nanoseconds, and one above `u64::MAX` ns, 584 years, counts as
//! that); `variance` and `stdev` come from Welford's streaming method over every
//! duration. `median` and `percentile` are read from a histogram of the durations in
//! nanoseconds with logarithmic buckets: below 64 ns each value has a bucket of its
//! own; from there every power of two is cut into 36 buckets that each span the same
//! ratio, 2<sup>1/36</sup>; from 2<sup>48</sup> ns (78 hours) on, each power of two is
//! one bucket. A percentile is taken at the point of least relative error of its
//! bucket (between two ranks by linear interpolation, as for an exact percentile; the
//! first and last ranks are `min` and `max`), then clamped to `[min, max]`. Its
//! relative error against the exact percentile of the same durations is therefore below
//! [`Timer::PERCENTILE_RELATIVE_ERROR`], 0.97%, at any scale from a nanosecond to 78
//! hours. Two timers [merge](Timer::merge) into what one timer fed both series would
//! hold (percentiles included; the variance up to floating-point rounding).
//!
//! The histogram has 1,592 counters, so a `Timer` is a fixed 12,800 bytes however many
//! durations it saw, and adding one costs the same on the billionth call as on the
//! first: a few integer operations find the bucket. Serialized, only the counters that
//! are not zero are written, as `(index, count)` pairs, so a timer of durations that
//! vary within a factor of ten takes well under 1 KiB.
//!
//! Equal-width sub-buckets per power of two (an "HDR" layout) would need 64 per octave
//! for the same bound, and a 30 KiB timer; five of them in a [`ProcessTimers`] made a
//! value that a debug build cannot even decode on a 2 MiB thread stack.
//!
//! # Why not `hdrhistogram`
//!
//! The `hdrhistogram` crate answers percentiles with the same kind of bound, but its
//! counters live in a heap `Vec` and it brings its own serialization format. A process's
//! section timers live in memory the child shares with its parent, so that the parent
//! can read them after a timeout, a crash or a kill, when no report comes: for that a
//! `Timer` must be a fixed-size value without pointers, that any bytes form validly.
//! Writing it there costs nothing per lap that timing into a private timer does not.
//!
//! # Plain data
//!
//! `Timer` is `#[repr(C)]`, has no padding, and every field is an integer or a float,
//! so any bit pattern is a valid `Timer`: bytes written by another process, or torn by
//! a process killed in the middle of [`Timer::add_time`], are at worst wrong numbers,
//! never undefined behaviour, and no method panics on them. All-zero bytes are the
//! empty timer.

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use std::collections::BTreeMap;
use std::fmt;
use std::ptr::{addr_of, NonNull};
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Durations below this many nanoseconds have a bucket each.
const EXACT: usize = 64;
/// The power of two of [`EXACT`], where the geometric buckets begin.
const FIRST_OCTAVE: u32 = 6;
/// Buckets per power of two from [`EXACT`] to 2^[`COARSE_FROM`] ns: each spans a ratio
/// of 2^(1/36), so a bucket's estimate is within 0.963% of any value in it.
const PER_OCTAVE: usize = 36;
/// From 2^48 ns (78 hours) on, one bucket per power of two.
const COARSE_FROM: u32 = 48;
/// Buckets of the histogram: 64 exact, 42 octaves of 36, then 16 octaves of one.
const BUCKETS: usize =
    EXACT + (COARSE_FROM - FIRST_OCTAVE) as usize * PER_OCTAVE + (64 - COARSE_FROM) as usize;

/// 1.0 in the fixed-point format (62 fractional bits) the tables are computed in.
const FIXED_ONE: u128 = 1 << 62;

/// `x` (below 2) to the power `n`, in the 62-bit fixed point of [`FIXED_ONE`]
/// (truncating), or some value above 2 once the power passes 2.
const fn fixed_pow(x: u128, n: usize) -> u128 {
    let mut acc = FIXED_ONE;
    let mut i = 0;
    while i < n && acc <= 2 * FIXED_ONE {
        acc = (acc * x) >> 62;
        i += 1;
    }
    acc
}

/// Where each bucket of an octave starts, as the fraction of the octave above its
/// power of two, in 64-bit fixed point: `2^(j/36) - 1` for bucket `j`. The last entry,
/// `u64::MAX`, lies past every fraction.
const STARTS: [u64; PER_OCTAVE + 1] = {
    // The 36th root of two: the largest fixed-point value whose 36th power is at most 2.
    let (mut lo, mut hi) = (FIXED_ONE, 2 * FIXED_ONE);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fixed_pow(mid, PER_OCTAVE) <= 2 * FIXED_ONE {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut starts = [u64::MAX; PER_OCTAVE + 1];
    let mut power = FIXED_ONE;
    let mut j = 0;
    while j < PER_OCTAVE {
        // Below 2^62, so the shift to 64 fractional bits fits.
        #[allow(clippy::cast_possible_truncation)]
        {
            starts[j] = ((power - FIXED_ONE) << 2) as u64;
        }
        power = (power * lo) >> 62;
        j += 1;
    }
    starts
};

/// For each value of a fraction's top byte, the last bucket starting at or below the
/// lowest fraction with that byte. Buckets are wider than 1/256 of an octave, so the
/// fraction's bucket is that one or the next.
const FIRST_IN_CELL: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut cell = 0;
    let mut j = 0;
    while cell < 256 {
        while j + 1 < PER_OCTAVE && STARTS[j + 1] <= (cell as u64) << 56 {
            j += 1;
        }
        // j < 36.
        #[allow(clippy::cast_possible_truncation)]
        {
            table[cell] = j as u8;
        }
        cell += 1;
    }
    table
};

/// Statistics over the durations added to it.
///
/// A timer takes a fixed 12,800 bytes however many durations it saw, and adding one
/// costs the same every time. `num_times`, `total`, `most_recent`, `min`, `max` and
/// `mean` are exact (in whole nanoseconds); `variance` and `stdev` are streamed over
/// every duration (Welford's method); `median` and `percentile` come from a histogram
/// with logarithmic buckets and are within [`Timer::PERCENTILE_RELATIVE_ERROR`] (0.97%)
/// of the exact percentile for durations up to 2<sup>48</sup> ns (78 hours). Timers
/// [merge](Timer::merge), and serialize with only the histogram's non-zero counters.
///
/// A timer is plain data (`#[repr(C)]`, integers and floats, no padding, no pointers),
/// so any bytes are a valid timer: the runtime keeps a child's section timers in memory
/// it shares with the parent, which reads them even after the child was killed.
#[repr(C)]
#[derive(Clone, PartialEq)]
pub struct Timer {
    /// Sum of every duration, in nanoseconds (saturating).
    total: u128,
    /// Durations recorded (saturating).
    count: u64,
    /// The last duration, in nanoseconds; meaningless while `count` is 0.
    most_recent: u64,
    /// The shortest duration, in nanoseconds; meaningless while `count` is 0.
    min: u64,
    /// The longest duration, in nanoseconds; meaningless while `count` is 0.
    max: u64,
    /// Welford's running mean, in seconds.
    mean: f64,
    /// Welford's running sum of squared deviations, in seconds squared.
    m2: f64,
    /// Durations per bucket; see [`bucket_of`].
    buckets: [u64; BUCKETS],
}

// No padding: every byte is part of a field, so a copy of any bytes is a valid Timer.
const _: () = assert!(std::mem::size_of::<Timer>() == 16 + 6 * 8 + 8 * BUCKETS);
// Fits the u16 bucket indexes of the serialized form.
const _: () = assert!(BUCKETS <= u16::MAX as usize);

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    /// A bound on the relative error of [`Timer::percentile`] and [`Timer::median`]
    /// against the exact percentile of the same durations, 0.97%, when that
    /// percentile is below 2<sup>48</sup> ns (78 hours); above, it is placed by power
    /// of two (a relative error below 1/3).
    pub const PERCENTILE_RELATIVE_ERROR: f64 = 0.0097;

    /// An empty timer.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            total: 0,
            count: 0,
            most_recent: 0,
            min: 0,
            max: 0,
            mean: 0.0,
            m2: 0.0,
            buckets: [0; BUCKETS],
        }
    }

    /// An empty timer on the heap, made there rather than moved from the stack.
    pub(crate) fn new_boxed() -> Box<Self> {
        // SAFETY: all-zero bytes are the empty timer (every field is a number).
        unsafe { zeroed_box() }
    }

    /// Records one duration.
    #[inline]
    pub fn add_time(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        let first = self.count == 0;
        self.count = self.count.saturating_add(1);
        self.total = self.total.saturating_add(u128::from(ns));
        self.most_recent = ns;
        if first || ns < self.min {
            self.min = ns;
        }
        if first || ns > self.max {
            self.max = ns;
        }
        #[allow(clippy::cast_precision_loss)]
        let (x, n) = (ns as f64 * 1e-9, self.count as f64);
        let delta = x - self.mean;
        self.mean += delta / n;
        self.m2 += delta * (x - self.mean);
        let bucket = &mut self.buckets[bucket_of(ns)];
        *bucket = bucket.saturating_add(1);
    }

    /// Adds every duration `other` recorded, as if they had been added to `self`:
    /// afterwards `self` holds the statistics of both series (`most_recent` is
    /// `other`'s, when it has any).
    pub fn merge(&mut self, other: &Timer) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        // Chan et al.'s pairwise update of Welford's mean and M2.
        #[allow(clippy::cast_precision_loss)]
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count = self.count.saturating_add(other.count);
        self.total = self.total.saturating_add(other.total);
        self.most_recent = other.most_recent;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
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
        *self = Self::new();
    }

    /// How many durations were recorded.
    #[must_use]
    pub fn num_times(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// The sum of every recorded duration.
    #[must_use]
    pub fn total(&self) -> Duration {
        from_nanos(self.total)
    }

    /// The last recorded duration.
    #[must_use]
    pub fn most_recent(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.most_recent))
    }

    /// The shortest recorded duration.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.min))
    }

    /// The longest recorded duration.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.max))
    }

    /// The mean duration (exact: total over count, to the nanosecond below).
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| from_nanos(self.total / u128::from(self.count)))
    }

    /// The population variance, in seconds squared.
    #[must_use]
    pub fn variance(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.count > 0).then(|| self.m2 / self.count as f64)
    }

    /// The population standard deviation.
    #[must_use]
    pub fn stdev(&self) -> Option<Duration> {
        // `max` also turns a NaN into 0; only an infinite variance fails to convert.
        self.variance()
            .map(|v| Duration::try_from_secs_f64(v.max(0.0).sqrt()).unwrap_or(Duration::MAX))
    }

    /// The median (the 50th percentile), within
    /// [`Timer::PERCENTILE_RELATIVE_ERROR`] of the exact one.
    #[must_use]
    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// The `p`th percentile, `p` in `0.0..=100.0` (clamped), by linear interpolation
    /// between the two nearest ranks, within [`Timer::PERCENTILE_RELATIVE_ERROR`] of
    /// the exact percentile (the 0th and 100th are exact: `min` and `max`).
    #[must_use]
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let n: u128 = self.buckets.iter().map(|&c| u128::from(c)).sum();
        if n == 0 {
            return None;
        }
        let p = if p.is_nan() {
            50.0
        } else {
            p.clamp(0.0, 100.0)
        };
        #[allow(clippy::cast_precision_loss)]
        let rank = p / 100.0 * (n - 1) as f64;
        // `as` saturates; the rank is below n in any case.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let lo = (rank.floor() as u128).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        #[allow(clippy::cast_precision_loss)]
        let frac = (rank - lo as f64).clamp(0.0, 1.0);
        #[allow(clippy::cast_precision_loss)]
        let (min, max) = (self.min as f64, self.max as f64);
        // The first and last ranks are known exactly: `min` and `max`.
        let (a, b) = self.at_ranks(lo, hi);
        let exact = |rank: u128, estimate: f64| match rank {
            0 => min,
            r if r == n - 1 => max,
            _ => estimate,
        };
        let (a, b) = (exact(lo, a), exact(hi, b));
        // Not `clamp`: it panics when min > max, which torn bytes may hold.
        let ns = (a + (b - a) * frac).max(min).min(max);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(Duration::from_nanos(ns.round() as u64))
    }

    /// The estimates of the durations of ranks `lo <= hi` (0-based, in sorted order):
    /// the estimate of the bucket each falls in.
    fn at_ranks(&self, lo: u128, hi: u128) -> (f64, f64) {
        let mut seen: u128 = 0;
        let mut a = None;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += u128::from(c);
            if a.is_none() && seen > lo {
                a = Some(bucket_estimate(i));
            }
            if seen > hi {
                let b = bucket_estimate(i);
                return (a.unwrap_or(b), b);
            }
        }
        // Unreachable: both ranks are below the sum of the counters.
        let top = bucket_estimate(BUCKETS - 1);
        (a.unwrap_or(top), top)
    }

    /// Counters that are not zero, as `(index, count)`.
    fn used_buckets(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(|(i, &c)| (u16::try_from(i).expect("BUCKETS fits in u16"), c))
    }
}

/// The bucket of a duration of `ns` nanoseconds: below 64 the value itself; then, in
/// the power of two that holds it, the bucket whose range holds the bits below its
/// leading one (compared as a fraction with [`STARTS`]); from 2^48 on, its power of two.
#[inline(always)]
fn bucket_of(ns: u64) -> usize {
    if ns < EXACT as u64 {
        // Below 64.
        #[allow(clippy::cast_possible_truncation)]
        return ns as usize;
    }
    let zeros = ns.leading_zeros();
    let octave = 63 - zeros;
    if octave >= COARSE_FROM {
        return BUCKETS - 64 + octave as usize;
    }
    // The bits below the leading one, as a fraction of the octave.
    let fraction = (ns << zeros) << 1;
    let mut j = usize::from(FIRST_IN_CELL[(fraction >> 56) as usize]);
    j += usize::from(fraction >= STARTS[j + 1]);
    EXACT + (octave - FIRST_OCTAVE) as usize * PER_OCTAVE + j
}

/// The range `[low, high)` of the durations, in nanoseconds, that bucket `i` holds.
fn bucket_range(i: usize) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    if i < EXACT {
        return (i as f64, i as f64 + 1.0);
    }
    let fine = i - EXACT;
    // Octaves are below 64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    if fine < (COARSE_FROM - FIRST_OCTAVE) as usize * PER_OCTAVE {
        let base = 2f64.powi((FIRST_OCTAVE as usize + fine / PER_OCTAVE) as i32);
        let j = fine % PER_OCTAVE;
        #[allow(clippy::cast_precision_loss)]
        let at = |start: u64| base * (1.0 + start as f64 / 2f64.powi(64));
        let high = if j + 1 < PER_OCTAVE {
            at(STARTS[j + 1])
        } else {
            2.0 * base
        };
        (at(STARTS[j]), high)
    } else {
        let octave = (i + 64 - BUCKETS) as i32;
        (2f64.powi(octave), 2f64.powi(octave + 1))
    }
}

/// The estimate of any duration in bucket `i`: the value itself in an exact bucket;
/// elsewhere the point of least relative error over the range, `2 low high / (low +
/// high)`, within `(high - low) / (high + low)` of every value in it.
fn bucket_estimate(i: usize) -> f64 {
    let (low, high) = bucket_range(i);
    if i < EXACT {
        low
    } else {
        2.0 * low * high / (low + high)
    }
}

/// Nanoseconds as a `Duration`, saturating at `Duration::MAX`.
fn from_nanos(ns: u128) -> Duration {
    const NS_PER_S: u128 = 1_000_000_000;
    match u64::try_from(ns / NS_PER_S) {
        // The remainder is below 10^9.
        #[allow(clippy::cast_possible_truncation)]
        Ok(secs) => Duration::new(secs, (ns % NS_PER_S) as u32),
        Err(_) => Duration::MAX,
    }
}

/// A heap allocation of `T` with every byte zero, made in place: a [`Timer`] is 12.5
/// KiB and a [`ProcessTimers`] five times that, too much to build on a small thread
/// stack and move.
///
/// # Safety
/// All-zero bytes must be a valid `T`, and `T` must not be zero-sized.
unsafe fn zeroed_box<T>() -> Box<T> {
    let layout = Layout::new::<T>();
    // SAFETY: the layout is not zero-sized (the caller's promise).
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: a fresh allocation of T's layout from the global allocator, as Box
    // needs, holding a valid T (all-zero, by the caller's promise).
    unsafe { Box::from_raw(ptr) }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("num_times", &self.count)
            .field("total", &self.total())
            .field("min", &self.min())
            .field("max", &self.max())
            .field("mean", &self.mean())
            .field("stdev", &self.stdev())
            .field("most_recent", &self.most_recent())
            .field("buckets_used", &self.used_buckets().count())
            .finish()
    }
}

/// The serialized form of a timer; `B` is the sparse histogram: written from a
/// borrowed timer, read into a `Vec`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Timer")]
struct Wire<B> {
    num_times: u64,
    total: Duration,
    most_recent_ns: u64,
    min_ns: u64,
    max_ns: u64,
    mean_s: f64,
    m2_s2: f64,
    buckets: B,
}

/// A timer's counters that are not zero, serialized as `(index, count)` pairs.
struct UsedBuckets<'a>(&'a Timer);

impl Serialize for UsedBuckets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.used_buckets().count()))?;
        for pair in self.0.used_buckets() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl Serialize for Timer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            num_times: self.count,
            total: self.total(),
            most_recent_ns: self.most_recent,
            min_ns: self.min,
            max_ns: self.max,
            mean_s: self.mean,
            m2_s2: self.m2,
            buckets: UsedBuckets(self),
        }
        .serialize(serializer)
    }
}

/// A timer as it is serialized, decoded and checked but with its histogram still
/// sparse: a few hundred bytes rather than a [`Timer`]'s 12.5 KiB. The runtime decodes
/// reports with it on threads with small stacks. Not public API.
#[doc(hidden)]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct __SparseTimer(Wire<Vec<(u16, u64)>>);

impl Serialize for __SparseTimer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for __SparseTimer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<Vec<(u16, u64)>>::deserialize(deserializer)?;
        let mut next = 0usize;
        for &(index, _) in &wire.buckets {
            let index = usize::from(index);
            if index >= BUCKETS {
                return Err(D::Error::custom(format!(
                    "timer bucket {index} is out of range (0..{BUCKETS})"
                )));
            }
            if index < next {
                return Err(D::Error::custom(
                    "timer buckets are not in increasing order",
                ));
            }
            next = index + 1;
        }
        Ok(Self(wire))
    }
}

impl __SparseTimer {
    /// Writes the timer into `into`, which must be empty.
    fn fill(&self, into: &mut Timer) {
        let w = &self.0;
        into.total = w.total.as_nanos();
        into.count = w.num_times;
        into.most_recent = w.most_recent_ns;
        into.min = w.min_ns;
        into.max = w.max_ns;
        into.mean = w.mean_s;
        into.m2 = w.m2_s2;
        for &(index, count) in &w.buckets {
            // Checked when decoded.
            into.buckets[usize::from(index)] = count;
        }
    }
}

impl<'de> Deserialize<'de> for Timer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sparse = __SparseTimer::deserialize(deserializer)?;
        let mut timer = Timer::new();
        sparse.fill(&mut timer);
        Ok(timer)
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

/// Timers by name, each boxed: a map node holds eleven values, and a timer is 12.5 KiB.
type NamedMap = BTreeMap<String, Box<Timer>>;

/// The named timers of a [`ProcessTimers`], as a child's report carries them. Not
/// public API.
#[doc(hidden)]
pub type __NamedTimers = Option<Box<NamedMap>>;

/// The timers of one process: one per section that `#[timethis]` marks, `full_loop`
/// (per lap, the sum of that lap's timed `preloop`, `main_loop` and `postloop`), and
/// timers named after other marked methods.
///
/// In a running child, the value lives in memory shared with the parent, so that the
/// parent can read the five section timers even when the child dies without a report
/// (a timeout, a crash, a kill); named timers only reach the parent with a report.
// Layout: every field is valid as all-zero bytes (`None`, numbers, `false`), so zeroed
// shared memory is an empty `ProcessTimers` without a write; the small fields come
// first, so that they share the first page with the beacon. See `__from_zeroed`.
#[repr(C)]
#[derive(Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProcessTimers {
    named: __NamedTimers,
    attempt: u32,
    failed: bool,
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
}

/// The empty timers, for references to "nothing recorded yet".
static EMPTY: ProcessTimers = ProcessTimers::EMPTY;

// Default, Clone and Deserialize are written out so that they build the value in place:
// the derived ones make each 12.5 KiB timer a temporary first, and a debug build keeps
// every temporary on the stack.

impl Default for ProcessTimers {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Clone for ProcessTimers {
    fn clone(&self) -> Self {
        let mut copy = Self::EMPTY;
        copy.clone_from(self);
        copy
    }

    fn clone_from(&mut self, source: &Self) {
        self.named.clone_from(&source.named);
        self.attempt = source.attempt;
        self.failed = source.failed;
        self.preloop.clone_from(&source.preloop);
        self.main_loop.clone_from(&source.main_loop);
        self.postloop.clone_from(&source.postloop);
        self.on_finish.clone_from(&source.on_finish);
        self.full_loop.clone_from(&source.full_loop);
    }
}

/// A [`ProcessTimers`] as it is serialized, with its timers still sparse.
#[derive(Deserialize)]
#[serde(rename = "ProcessTimers")]
struct ProcessTimersWire {
    named: __NamedTimers,
    attempt: u32,
    failed: bool,
    preloop: __SparseTimer,
    main_loop: __SparseTimer,
    postloop: __SparseTimer,
    on_finish: __SparseTimer,
    full_loop: __SparseTimer,
}

impl<'de> Deserialize<'de> for ProcessTimers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ProcessTimersWire::deserialize(deserializer)?;
        let mut timers = Self::EMPTY;
        timers.named = wire.named;
        timers.attempt = wire.attempt;
        timers.failed = wire.failed;
        wire.preloop.fill(&mut timers.preloop);
        wire.main_loop.fill(&mut timers.main_loop);
        wire.postloop.fill(&mut timers.postloop);
        wire.on_finish.fill(&mut timers.on_finish);
        wire.full_loop.fill(&mut timers.full_loop);
        Ok(timers)
    }
}

impl ProcessTimers {
    /// No timer holds anything.
    const EMPTY: Self = Self {
        named: None,
        attempt: 0,
        failed: false,
        preloop: Timer::new(),
        main_loop: Timer::new(),
        postloop: Timer::new(),
        on_finish: Timer::new(),
        full_loop: Timer::new(),
    };

    /// The attempt these timers were recorded in (1 for the first; 0 before the
    /// process ended).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the attempt these timers come from failed: a section error or panic
    /// (even if `error` then recovered to a value), or an end without a report (a
    /// timeout, a crash, a kill).
    #[must_use]
    pub fn from_failed_attempt(&self) -> bool {
        self.failed
    }

    /// Records which attempt the timers describe; used by the runtime.
    #[doc(hidden)]
    pub fn __set_origin(&mut self, attempt: u32, failed: bool) {
        self.attempt = attempt;
        self.failed = failed;
    }

    /// The timer of a marked method other than the four sections, or of a timer made
    /// with [`ProcessTimers::named_mut`]; `None` if nothing was recorded under `name`.
    #[must_use]
    pub fn named(&self, name: &str) -> Option<&Timer> {
        self.named.as_ref()?.get(name).map(|t| &**t)
    }

    /// The timer called `name`, created empty if it does not exist yet.
    pub fn named_mut(&mut self, name: &str) -> &mut Timer {
        let map = self.named.get_or_insert_with(Box::default);
        if !map.contains_key(name) {
            map.insert(name.to_owned(), Timer::new_boxed());
        }
        map.get_mut(name).expect("inserted above")
    }

    /// The names of the named timers, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.iter().flat_map(|m| m.keys().map(String::as_str))
    }

    /// Empty timers, made on the heap rather than moved there from the stack. Not
    /// public API.
    #[doc(hidden)]
    #[must_use]
    pub fn __new_boxed() -> Box<Self> {
        // SAFETY: all-zero bytes are the empty ProcessTimers (see the layout note).
        unsafe { zeroed_box() }
    }

    /// The empty timers, as a `'static` reference. Not public API.
    #[doc(hidden)]
    #[must_use]
    pub fn __empty() -> &'static Self {
        &EMPTY
    }

    /// Moves the named timers out (a child's report carries them). Not public API.
    #[doc(hidden)]
    pub fn __take_named(&mut self) -> __NamedTimers {
        self.named.take()
    }

    /// Sets the named timers (from a child's report). Not public API.
    #[doc(hidden)]
    pub fn __set_named(&mut self, named: __NamedTimers) {
        self.named = named;
    }

    /// Views zeroed memory as empty timers: how a child keeps its timers in the memory
    /// it shares with its parent. Not public API.
    ///
    /// # Safety
    /// `ptr` must be aligned for `ProcessTimers` and valid for reads and writes of
    /// `size_of::<ProcessTimers>()` bytes for `'a`, every one of them zero, and nothing
    /// in this process may access those bytes during `'a` but through the returned
    /// reference. (Another process may read them: every section timer is plain data.)
    #[doc(hidden)]
    pub unsafe fn __from_zeroed<'a>(ptr: NonNull<Self>) -> &'a mut Self {
        // SAFETY: all-zero bytes are a valid, empty ProcessTimers: `named` is `None`
        // (std guarantees that for `Option<Box<_>>`), the timers are numbers, `attempt`
        // is 0 and `failed` false. The caller vouches for the memory.
        unsafe { &mut *ptr.as_ptr() }
    }

    /// Copies the five section timers of a `ProcessTimers` that another process keeps
    /// at `src` (its named timers are not read: their pointers are that process's).
    /// Not public API.
    ///
    /// # Safety
    /// `src` must be aligned for `ProcessTimers` and valid for reads of
    /// `size_of::<ProcessTimers>()` initialized bytes. They may be written meanwhile
    /// by another process: every section timer is plain data, so any bytes read are a
    /// valid timer (at worst a torn one).
    #[doc(hidden)]
    pub unsafe fn __read_sections(&mut self, src: *const Self) {
        // SAFETY: in bounds of `src` (the caller's promise); no reference is made.
        let sources = unsafe {
            [
                addr_of!((*src).preloop),
                addr_of!((*src).main_loop),
                addr_of!((*src).postloop),
                addr_of!((*src).on_finish),
                addr_of!((*src).full_loop),
            ]
        };
        let targets = [
            &mut self.preloop,
            &mut self.main_loop,
            &mut self.postloop,
            &mut self.on_finish,
            &mut self.full_loop,
        ];
        for (src, dst) in sources.into_iter().zip(targets) {
            // SAFETY: a timer inside `src`, as the caller promises.
            unsafe { read_shared(src, dst) };
        }
    }
}

/// Copies a timer another process may be writing, one volatile word at a time. An
/// empty one is not copied, so that its pages are not touched (they are likely never
/// written, and reading them would fault them in for nothing).
///
/// # Safety
/// `src` must be aligned for `Timer` and valid for reads of `size_of::<Timer>()`
/// initialized bytes.
unsafe fn read_shared(src: *const Timer, dst: &mut Timer) {
    const WORDS: usize = std::mem::size_of::<Timer>() / 8;
    // SAFETY: `count` is inside `*src`; a u64 read of initialized bytes is valid.
    let count = unsafe { addr_of!((*src).count).read_volatile() };
    if count == 0 {
        if dst.count != 0 {
            dst.reset();
        }
        return;
    }
    let from = src.cast::<u64>();
    let to = std::ptr::from_mut(dst).cast::<u64>();
    for i in 0..WORDS {
        // SAFETY: Timer has no padding and an alignment of at least 8, so it is WORDS
        // whole u64s; any u64 written into any of its fields leaves a valid Timer
        // (every field is an integer or a float).
        unsafe { to.add(i).write(from.add(i).read_volatile()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    /// A small deterministic generator (splitmix64) for repeatable random data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// A float in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The exact percentile of the sorted durations, as `Timer` defines it.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn exact_percentile(sorted: &[u64], p: f64) -> f64 {
        let rank = p / 100.0 * (sorted.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        let frac = rank - lo as f64;
        let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
        a + (b - a) * frac
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
        assert_eq!(t.min(), None);
        assert_eq!(t.max(), None);
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
        // Population variance of 1,2,3,4,10 ms: mean 4, squares 9+4+1+0+36 = 50, /5 = 10 ms^2.
        let var = t.variance().unwrap();
        assert!((var - 10e-6).abs() < 1e-12, "{var}");
        let sd = t.stdev().unwrap().as_secs_f64();
        assert!((sd - 10e-6_f64.sqrt()).abs() < 1e-9);
        // Ranks 0..4 over sorted [1,2,3,4,10]: the median is rank 2 -> 3 ms; p75 is
        // rank 3 -> 4 ms; p90 is rank 3.6 -> 7.6 ms; each within the stated bound.
        let close = |d: Option<Duration>, exact: f64| {
            let d = d.unwrap().as_secs_f64();
            assert!(
                (d - exact).abs() <= exact * Timer::PERCENTILE_RELATIVE_ERROR,
                "{d} vs {exact}"
            );
        };
        close(t.median(), 0.003);
        close(t.percentile(75.0), 0.004);
        close(t.percentile(90.0), 0.0076);
        // The ends are exact: min and max.
        assert_eq!(t.percentile(0.0), Some(ms(1)));
        assert_eq!(t.percentile(100.0), Some(ms(10)));
        assert_eq!(t.percentile(250.0), Some(ms(10)));
        assert_eq!(t.percentile(f64::NAN), t.median());
    }

    #[test]
    fn buckets_cover_every_value_in_order() {
        // Every bucket is wider than a top-byte cell of the fraction, so one step from
        // FIRST_IN_CELL finds it.
        for j in 0..PER_OCTAVE - 1 {
            assert!(STARTS[j + 1] - STARTS[j] > 1 << 56, "bucket {j}");
        }
        assert_eq!(STARTS[0], 0);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(63), 63);
        assert_eq!(bucket_of(64), 64);
        assert_eq!(bucket_of(127), 64 + PER_OCTAVE - 1);
        assert_eq!(bucket_of(128), 64 + PER_OCTAVE);
        assert_eq!(bucket_of(1 << 48), BUCKETS - 16);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // Ranges tile the line, and each is within the bound around its estimate.
        for i in 0..BUCKETS - 1 {
            let (low, high) = bucket_range(i);
            let next = bucket_range(i + 1).0;
            assert!(
                (high - next).abs() <= high * 1e-15,
                "bucket {i}: {high} vs {next}"
            );
            if (EXACT..BUCKETS - 16).contains(&i) {
                let error = (high - low) / (high + low);
                assert!(
                    error <= Timer::PERCENTILE_RELATIVE_ERROR,
                    "bucket {i}: {error}"
                );
            }
        }
        // Values land in order, each inside its bucket's range, and every bucket below
        // 2^48 holds some whole number of nanoseconds.
        let mut rng = Rng(1);
        let mut values: Vec<u64> = (0..200_000).collect();
        values.extend((0..200_000).map(|_| rng.next() >> (rng.next() % 64)));
        values.extend((1..64).flat_map(|k| [(1u64 << k) - 1, 1 << k, (1 << k) + 1]));
        values.sort_unstable();
        let mut seen = vec![false; BUCKETS];
        let mut previous = 0;
        for v in values {
            let i = bucket_of(v);
            assert!(i >= previous, "{v} went back to bucket {i}");
            previous = i;
            seen[i] = true;
            let (low, high) = bucket_range(i);
            #[allow(clippy::cast_precision_loss)]
            let x = v as f64;
            assert!(
                x >= low * (1.0 - 1e-15) && x < high * (1.0 + 1e-15),
                "{v} in bucket {i} [{low}, {high})"
            );
        }
        assert!(seen[..BUCKETS - 16].iter().all(|&s| s));
    }

    #[test]
    fn small_durations_are_exact() {
        let mut t = Timer::new();
        for n in 0..64 {
            t.add_time(ns(n));
        }
        for p in [0.0, 10.0, 25.0, 50.0, 90.0, 99.0, 100.0] {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let exact = (p / 100.0 * 63.0_f64).round() as u64;
            assert_eq!(t.percentile(p), Some(ns(exact)), "p{p}");
        }
    }

    #[test]
    fn percentiles_are_within_the_stated_bound_on_random_data() {
        let mut rng = Rng(7);
        // Log-uniform over 1 ns .. 1000 s, uniform over a narrow band, and a two-mode
        // mix: each checked at many percentiles against the sorted durations.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let shapes: [&dyn Fn(&mut Rng) -> u64; 3] = [
            &|r| 10f64.powf(r.unit() * 12.0) as u64,
            &|r| 50_000 + r.next() % 1_000,
            &|r| {
                if r.next() % 10 == 0 {
                    5_000_000 + r.next() % 5_000_000
                } else {
                    200 + r.next() % 300
                }
            },
        ];
        for (shape, draw) in shapes.iter().enumerate() {
            for n in [1usize, 2, 3, 10, 1_000, 100_000] {
                let mut t = Timer::new();
                let mut values: Vec<u64> = (0..n).map(|_| draw(&mut rng)).collect();
                for &v in &values {
                    t.add_time(ns(v));
                }
                values.sort_unstable();
                for i in 0..=200 {
                    let p = f64::from(i) / 2.0;
                    let exact = exact_percentile(&values, p);
                    #[allow(clippy::cast_precision_loss)]
                    let got = t.percentile(p).unwrap().as_nanos() as f64;
                    // The bound, plus half a nanosecond for rounding to whole ns.
                    let allowed = exact * Timer::PERCENTILE_RELATIVE_ERROR + 0.5;
                    assert!(
                        (got - exact).abs() <= allowed,
                        "shape {shape}, n {n}, p{p}: {got} vs exact {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn exact_figures_stay_exact_and_memory_stays_fixed() {
        let mut t = Timer::new();
        let n = 1_000_000u64;
        let mut total = 0u128;
        for i in 0..n {
            let v = (i * 7919) % 1_000_003;
            total += u128::from(v);
            t.add_time(ns(v));
        }
        assert_eq!(t.num_times() as u64, n);
        assert_eq!(t.total().as_nanos(), total);
        assert_eq!(t.min(), Some(Duration::ZERO));
        assert_eq!(t.max(), Some(ns(1_000_002)));
        assert_eq!(t.mean().unwrap().as_nanos(), total / u128::from(n));
        assert_eq!(std::mem::size_of::<Timer>(), 12_800);
        assert_eq!(std::mem::size_of::<ProcessTimers>(), 64_016);
        let median = t.median().unwrap().as_nanos();
        assert!((495_000..505_000).contains(&median), "median {median}");
    }

    #[test]
    fn merging_equals_recording_both_series() {
        let mut rng = Rng(11);
        let (mut a, mut b, mut both) = (Timer::new(), Timer::new(), Timer::new());
        for i in 0..10_000 {
            let v = ns(rng.next() % 10_000_000);
            (if i % 3 == 0 { &mut a } else { &mut b }).add_time(v);
            both.add_time(v);
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.num_times(), both.num_times());
        assert_eq!(merged.total(), both.total());
        assert_eq!(merged.min(), both.min());
        assert_eq!(merged.max(), both.max());
        assert_eq!(merged.mean(), both.mean());
        assert_eq!(merged.buckets, both.buckets);
        for p in [1.0, 25.0, 50.0, 75.0, 99.0, 99.9] {
            assert_eq!(merged.percentile(p), both.percentile(p));
        }
        let (v1, v2) = (merged.variance().unwrap(), both.variance().unwrap());
        assert!((v1 - v2).abs() <= v2 * 1e-9, "{v1} vs {v2}");
        assert_eq!(merged.most_recent(), b.most_recent());

        // Empty on either side changes nothing.
        let mut empty = Timer::new();
        empty.merge(&a);
        assert_eq!(empty.num_times(), a.num_times());
        assert_eq!(empty.min(), a.min());
        assert_eq!(empty.median(), a.median());
        let before = a.clone();
        a.merge(&Timer::new());
        assert_eq!(a, before);
    }

    #[test]
    fn serde_round_trips_and_stays_small() {
        let mut t = Timer::new();
        let mut rng = Rng(3);
        for _ in 0..1_000_000 {
            // Durations within a factor of ten: 100 ns .. 1 us.
            t.add_time(ns(100 + rng.next() % 900));
        }
        let bytes = postcard::to_allocvec(&t).unwrap();
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let back: Timer = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, t);

        let empty = postcard::to_allocvec(&Timer::new()).unwrap();
        assert!(empty.len() < 32, "{} bytes", empty.len());
        assert_eq!(postcard::from_bytes::<Timer>(&empty).unwrap(), Timer::new());
    }

    #[test]
    fn invalid_input_is_a_serde_error() {
        let mut t = Timer::new();
        t.add_time(ns(5));
        t.add_time(ns(500));
        let good = postcard::to_allocvec(&t).unwrap();
        // The two pairs are the last bytes: (5, 1) and (index of 500, 1).
        let wire: __SparseTimer = postcard::from_bytes(&good).unwrap();
        assert_eq!(
            wire.0.buckets,
            [(5, 1), (u16::try_from(bucket_of(500)).unwrap(), 1)]
        );
        let mut out_of_range = wire.clone();
        out_of_range.0.buckets[1].0 = u16::try_from(BUCKETS).unwrap();
        let bytes = postcard::to_allocvec(&out_of_range).unwrap();
        let e = postcard::from_bytes::<Timer>(&bytes).unwrap_err();
        assert!(matches!(e, postcard::Error::SerdeDeCustom), "{e:?}");
        let mut out_of_order = wire.clone();
        out_of_order.0.buckets.reverse();
        let bytes = postcard::to_allocvec(&out_of_order).unwrap();
        assert!(postcard::from_bytes::<Timer>(&bytes).is_err());
        let mut repeated = wire;
        repeated.0.buckets[1].0 = 5;
        let bytes = postcard::to_allocvec(&repeated).unwrap();
        assert!(postcard::from_bytes::<Timer>(&bytes).is_err());
        // Truncations are errors too, never panics.
        for cut in 0..good.len() {
            assert!(postcard::from_bytes::<Timer>(&good[..cut]).is_err());
        }
    }

    #[test]
    fn any_bytes_are_a_timer_that_never_panics() {
        let mut rng = Rng(5);
        for round in 0..200 {
            let mut t = Timer::new_boxed();
            // SAFETY: Timer is plain data without padding (the module's invariant
            // under test): any bytes are a valid Timer.
            let words = unsafe {
                std::slice::from_raw_parts_mut(
                    std::ptr::from_mut(&mut *t).cast::<u64>(),
                    std::mem::size_of::<Timer>() / 8,
                )
            };
            for w in words.iter_mut() {
                *w = match round % 4 {
                    0 => rng.next(),
                    1 => u64::MAX,
                    2 => rng.next() % 3,
                    _ => rng.next() >> (rng.next() % 64),
                };
            }
            let _ = format!("{t:?}");
            let _ = (t.num_times(), t.total(), t.mean(), t.min(), t.max());
            let _ = (t.variance(), t.stdev(), t.most_recent());
            for p in [0.0, 50.0, 99.0, 100.0, f64::NAN] {
                let _ = t.percentile(p);
            }
            let mut other = Timer::new_boxed();
            other.merge(&t);
            t.merge(&other);
            t.add_time(ms(1));
            let _ = postcard::to_allocvec(&*t).unwrap();
        }
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
        let named = timers.__take_named();
        assert!(timers.named("fetch").is_none());
        assert_eq!(timers.names().count(), 0);
        timers.__set_named(named);
        assert_eq!(timers.named("fetch").unwrap().num_times(), 2);
    }

    #[test]
    fn zeroed_memory_is_empty_timers() {
        assert_eq!(*Timer::new_boxed(), Timer::new());
        assert_eq!(*ProcessTimers::__new_boxed(), ProcessTimers::default());
        assert_eq!(ProcessTimers::__empty(), &ProcessTimers::default());
        let mut memory = ProcessTimers::__new_boxed();
        let ptr = NonNull::from(&mut *memory);
        // SAFETY: zeroed, aligned, and used only through the reference below.
        let shared = unsafe { ProcessTimers::__from_zeroed(ptr) };
        shared.main_loop.add_time(ms(2));
        shared.named_mut("x").add_time(ms(1));
        let mut copy = ProcessTimers::__new_boxed();
        // SAFETY: a valid ProcessTimers.
        unsafe { copy.__read_sections(ptr.as_ptr()) };
        assert_eq!(copy.main_loop.num_times(), 1);
        assert_eq!(copy.main_loop, memory.main_loop);
        assert!(copy.named("x").is_none(), "named timers are not read");
        assert_eq!(copy.preloop.num_times(), 0);
    }

    #[test]
    fn process_timers_round_trip() {
        let mut timers = ProcessTimers::default();
        timers.main_loop.add_time(ms(2));
        timers.named_mut("fetch").add_time(ms(1));
        timers.__set_origin(2, true);
        let bytes = postcard::to_allocvec(&timers).unwrap();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let back: ProcessTimers = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, timers);
    }
}
