//! process-runtime's figures, each measured next to its physical floor in one run.
//!
//! `cargo run --release -p process-runtime-bench [-- --big] [--only start|laps|stop|restart|timers|messages|stream|node|pool|poolrun|python|transfer|supervisor|warm]`
//!
//! Every figure and its floor are measured in alternating rounds (floor, measured,
//! measured, floor, ...), so that whatever the machine does meanwhile hits both sides.
//! The table at the end prints the measured value, the floor, the ratio and the target
//! of DESIGN.md section 8; "met" is computed from the numbers.
//!
//! The floor of a cold start is this very binary re-executed with [`FLOOR_ENV`] set: the
//! first statement of `main` after the runtime's entry (which returns at once, since
//! the runtime's own marker is absent) sees it and exits.

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

mod messages;
mod node;
mod pool;
mod pool_run;
mod python;
mod supervisor;
mod transfer;
mod warm;

/// Set in the environment of the floor's child: `main` exits at once when it sees it.
const FLOOR_ENV: &str = "PROCESS_RUNTIME_BENCH_FLOOR";

/// Runs of the trivial process (and of its floor) with a small parent.
const START_RUNS: usize = 300;
/// Runs of each side while the parent holds a large allocation.
const BIG_PARENT_RUNS: usize = 200;
/// Blocks the start measurements are split into (small and large parents alternate).
const START_BLOCKS: usize = 4;
/// Laps of the engine-overhead processes.
const LAPS: u64 = 10_000_000;
/// Rounds of the engine-overhead measurement (floor, engine, engine with timers).
const LAP_ROUNDS: usize = 3;
/// Stop-latency samples.
const STOP_RUNS: usize = 50;
/// Restart samples (each interleaved with a trivial start-to-result).
const RESTART_RUNS: usize = 50;
/// Laps before the timer figure's processes are stopped.
const TIMER_LAPS: u64 = 1_000_000;
/// Stops of each timer-figure process (with and without timers, interleaved).
const TIMER_RUNS: usize = 25;
/// Runs of each side before any measurement, to warm caches and the spawner thread.
const WARMUP: usize = 10;
/// Bytes in one GiB.
const GIB: usize = 1 << 30;
/// Page size used to make an allocation resident.
const PAGE: usize = 4096;

// ---------------------------------------------------------------------------------
// The process types. They live in this binary so that the derive registers them here.
// ---------------------------------------------------------------------------------

/// One lap of nothing, then a `u32`: the cold start-to-result figure.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Trivial {
    /// Returned by `result`, so the output crosses the channel.
    value: u32,
}

impl Lifecycle for Trivial {
    type Output = u32;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.value)
    }
}

/// Three empty sections for [`LAPS`] laps; reports the engine's own run time in ns.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 10_000_000)]
struct EmptyLaps;

impl Lifecycle for EmptyLaps {
    type Output = u64;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(duration_ns(cx.elapsed()))
    }
}

/// [`EmptyLaps`] with `#[timethis]` on all three sections.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 10_000_000)]
struct TimedLaps;

impl Lifecycle for TimedLaps {
    type Output = u64;

    #[timethis]
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(duration_ns(cx.elapsed()))
    }
}

/// [`EmptyLaps`] with `#[timethis]` only where no lap goes: `on_finish` and a method
/// the laps never call. The laps must cost what [`EmptyLaps`]'s do.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 10_000_000)]
struct TimedElsewhere;

impl TimedElsewhere {
    /// Marked, never called in a lap.
    #[timethis]
    fn summary(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
}

impl Lifecycle for TimedElsewhere {
    type Output = u64;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn on_finish(&mut self, cx: &mut Context) -> Outcome {
        self.summary(cx)
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(duration_ns(cx.elapsed()))
    }
}

/// Laps of empty sections until stopped: the stop-latency figure.
#[derive(Process, Serialize, Deserialize)]
struct Idle;

impl Lifecycle for Idle {
    type Output = u64;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

/// Writes `ready` after [`TIMER_LAPS`] laps, then laps on until stopped; five timers
/// (`#[timethis]` on the four sections, and `full_loop`): the timer figure.
#[derive(Process, Serialize, Deserialize)]
struct FiveTimers {
    /// The file written once [`TIMER_LAPS`] laps are done.
    ready: String,
}

impl Lifecycle for FiveTimers {
    type Output = u64;

    #[timethis]
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        tell_ready(cx, &self.ready)
    }

    #[timethis]
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

/// [`FiveTimers`] without `#[timethis]`: the floor of the timer figure.
#[derive(Process, Serialize, Deserialize)]
struct NoTimers {
    /// The file written once [`TIMER_LAPS`] laps are done.
    ready: String,
}

impl Lifecycle for NoTimers {
    type Output = u64;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        tell_ready(cx, &self.ready)
    }

    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

/// Writes `ready` on lap [`TIMER_LAPS`] (through a rename, so that it is read whole).
fn tell_ready(cx: &Context, ready: &str) -> Outcome {
    if cx.lap() == TIMER_LAPS {
        let tmp = format!("{ready}.tmp");
        std::fs::write(&tmp, b"ready")?;
        std::fs::rename(tmp, ready)?;
    }
    Ok(())
}

/// Aborts on its first attempt, succeeds on the second: the restart figure.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2)]
struct CrashOnce {
    /// Returned by `result`.
    value: u32,
}

impl Lifecycle for CrashOnce {
    type Output = u32;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if cx.attempt() == 1 {
            std::process::abort();
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.value)
    }
}

// ---------------------------------------------------------------------------------
// Measurement helpers.
// ---------------------------------------------------------------------------------

/// A duration in nanoseconds, saturated to `u64`.
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Summary of a sample set.
#[derive(Clone, Copy, Debug)]
struct Stats {
    /// 10th percentile.
    p10: Duration,
    /// Median.
    median: Duration,
    /// 90th percentile.
    p90: Duration,
    /// Number of samples.
    n: usize,
}

impl Stats {
    /// Summarizes `samples` (nearest-rank percentiles on the sorted set).
    fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let at = |p: f64| {
            // Rounding an index in 0..len: the cast cannot truncate meaningfully.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = (p * (sorted.len() - 1) as f64).round() as usize;
            sorted[i]
        };
        Self {
            p10: at(0.10),
            median: at(0.50),
            p90: at(0.90),
            n: sorted.len(),
        }
    }

    /// `median (p10 p90)` in milliseconds.
    fn ms(&self) -> String {
        format!(
            "{:.3} ms (p10 {:.3}, p90 {:.3}, n={})",
            ms(self.median),
            ms(self.p10),
            ms(self.p90),
            self.n
        )
    }

    /// `median (p10 p90)` in microseconds.
    fn us(&self) -> String {
        format!(
            "{:.1} us (p10 {:.1}, p90 {:.1}, n={})",
            us(self.median),
            us(self.p10),
            us(self.p90),
            self.n
        )
    }
}

/// A duration in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration in microseconds.
fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The floor of a cold start: re-execute this binary, which exits at the top of `main`.
fn floor_once() -> Duration {
    let t0 = Instant::now();
    let status = Command::new("/proc/self/exe")
        .env(FLOOR_ENV, "1")
        .status()
        .expect("cannot re-execute the bench binary");
    let took = t0.elapsed();
    assert!(status.success(), "the floor child failed: {status}");
    took
}

/// One trivial process: start to `result()` returning, which includes the child's
/// exit and reaping, as the floor includes its child's.
fn trivial_once() -> Duration {
    let t0 = Instant::now();
    let handle = Trivial { value: 7 }.start().expect("start failed");
    let value = handle.result().expect("the trivial process failed");
    let to_result = t0.elapsed();
    assert_eq!(value, 7);
    assert_eq!(
        handle.exit_code(),
        Some(0),
        "result() returns after the exit"
    );
    to_result
}

/// Raw samples of the trivial process and its floor, accumulated over blocks.
#[derive(Default)]
struct StartSamples {
    /// The re-exec floor.
    floor: Vec<Duration>,
    /// `start()` to `result()` returning.
    to_result: Vec<Duration>,
}

impl StartSamples {
    /// Adds `runs` interleaved rounds of the floor and the trivial process.
    fn measure(&mut self, runs: usize) {
        for round in 0..runs {
            // Alternate which side goes first, so neither always follows the other.
            if round % 2 == 0 {
                self.floor.push(floor_once());
            }
            self.to_result.push(trivial_once());
            if round % 2 == 1 {
                self.floor.push(floor_once());
            }
        }
    }

    /// Summarizes the samples.
    fn figures(&self) -> StartFigures {
        StartFigures {
            floor: Stats::of(&self.floor),
            to_result: Stats::of(&self.to_result),
        }
    }
}

/// Start-to-result of the trivial process, with its floor.
struct StartFigures {
    /// The re-exec floor.
    floor: Stats,
    /// `start()` to `result()` returning.
    to_result: Stats,
}

/// Allocates `bytes` and writes one byte per page so that all of it is resident.
fn resident_allocation(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(PAGE) {
        v[i] = 1;
    }
    black_box(&mut v);
    v
}

/// The resident set size of this process, from `/proc/self/statm`, in bytes.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE as u64)
}

/// Engine ns/lap inside the child.
fn engine_ns_per_lap<P: Process<Output = u64>>(obj: &P) -> f64 {
    let handle = obj.start().expect("start failed");
    let ns = handle.take_result().expect("the lap process failed");
    handle.wait();
    #[allow(clippy::cast_precision_loss)]
    let per = ns as f64 / LAPS as f64;
    per
}

/// The same laps run in this process, straight through `Lifecycle`, no engine.
fn direct_ns_per_lap() -> f64 {
    let mut obj = EmptyLaps;
    let mut cx = Context::__new(
        EmptyLaps::config(),
        Box::leak(Box::new(AtomicBool::new(false))),
        std::process::id(),
        std::process::id(),
        1,
    );
    let t0 = Instant::now();
    for _ in 0..LAPS {
        let o = black_box(&mut obj);
        o.preloop(&mut cx).expect("preloop");
        let o = black_box(&mut obj);
        o.main_loop(&mut cx).expect("main_loop");
        let o = black_box(&mut obj);
        o.postloop(&mut cx).expect("postloop");
    }
    let took = t0.elapsed();
    black_box(&mut obj);
    #[allow(clippy::cast_precision_loss)]
    let per = duration_ns(took) as f64 / LAPS as f64;
    per
}

/// The same laps in this process with each call timed by hand: two clock reads per
/// section, summed into one `Duration` per section (what a timer needs at least).
fn hand_timed_ns_per_lap() -> f64 {
    let mut obj = EmptyLaps;
    let mut cx = Context::__new(
        EmptyLaps::config(),
        Box::leak(Box::new(AtomicBool::new(false))),
        std::process::id(),
        std::process::id(),
        1,
    );
    let mut totals = [Duration::ZERO; 3];
    let t0 = Instant::now();
    for _ in 0..LAPS {
        let s = Instant::now();
        black_box(&mut obj).preloop(&mut cx).expect("preloop");
        totals[0] += s.elapsed();
        let s = Instant::now();
        black_box(&mut obj).main_loop(&mut cx).expect("main_loop");
        totals[1] += s.elapsed();
        let s = Instant::now();
        black_box(&mut obj).postloop(&mut cx).expect("postloop");
        totals[2] += s.elapsed();
    }
    let took = t0.elapsed();
    black_box(&totals);
    #[allow(clippy::cast_precision_loss)]
    let per = duration_ns(took) as f64 / LAPS as f64;
    per
}

/// Median of a set of floats.
fn median_f64(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `handle.stop()` to `handle.result()` returning, for a process in its idle loop.
fn stop_once() -> Duration {
    let handle = Idle.start().expect("start failed");
    // Let it reach its loop: the spawn takes ~1-2 ms; 10 ms leaves ample margin.
    std::thread::sleep(Duration::from_millis(10));
    assert!(handle.is_alive(), "the idle process ended by itself");
    let t0 = Instant::now();
    handle.stop();
    let laps = handle.result().expect("the idle process failed");
    let took = t0.elapsed();
    handle.wait();
    assert!(laps > 0, "the idle process never ran a lap");
    took
}

/// Start-to-result of [`CrashOnce`]: one aborted attempt, then a successful one.
fn restart_once() -> Duration {
    let t0 = Instant::now();
    let handle = CrashOnce { value: 9 }.start().expect("start failed");
    let value = handle.result().expect("the restarted process failed");
    let took = t0.elapsed();
    handle.wait();
    assert_eq!(value, 9);
    assert_eq!(handle.lives_used(), 2, "expected exactly one restart");
    took
}

/// One stop of a timer-figure process after [`TIMER_LAPS`] laps: `stop()` to
/// `result()`, the laps run, the report frame's bytes and the timers.
fn timers_once<P: Process<Output = u64>>(
    make: impl FnOnce(String) -> P,
    round: usize,
) -> (Duration, u64, usize, ProcessTimers) {
    let ready = std::env::temp_dir().join(format!(
        "process-runtime-bench-{}-{round}-ready",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&ready);
    let handle = make(ready.to_string_lossy().into_owned())
        .start()
        .expect("start failed");
    while !ready.exists() {
        assert!(handle.is_alive(), "the timer process ended by itself");
        std::thread::sleep(Duration::from_micros(200));
    }
    let t0 = Instant::now();
    handle.stop();
    let laps = handle.result().expect("the timer process failed");
    let took = t0.elapsed();
    handle.wait();
    let _ = std::fs::remove_file(&ready);
    assert!(laps >= TIMER_LAPS, "stopped after {laps} laps");
    let report = handle.__report_len().expect("a process with an output");
    (took, laps, report, handle.timers().clone())
}

/// Figure 6: five marked sections after a million laps: the report's size, and the
/// stop latency against the same process without timers.
fn timer_rows() -> Vec<Row> {
    eprintln!(
        "[timers] {TIMER_RUNS} stops after {TIMER_LAPS} laps, with and without five timers..."
    );
    let (mut timed, mut untimed, mut reports) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..TIMER_RUNS {
        let plain = |ready| NoTimers { ready };
        let five = |ready| FiveTimers { ready };
        if round % 2 == 0 {
            untimed.push(timers_once(plain, 2 * round).0);
        }
        let (took, laps, report, timers) = timers_once(five, 2 * round + 1);
        timed.push(took);
        reports.push(report);
        last = Some((laps, timers));
        if round % 2 == 1 {
            untimed.push(timers_once(plain, 2 * round).0);
        }
    }
    let (laps, timers) = last.expect("at least one run");
    assert!(timers.main_loop.num_times() >= usize::try_from(TIMER_LAPS).unwrap_or(usize::MAX));
    assert_eq!(timers.on_finish.num_times(), 1);
    let report = reports.iter().copied().max().unwrap_or(0);
    let sections = process_runtime::__private::serialized_len(&timers);
    let (timed, untimed) = (Stats::of(&timed), Stats::of(&untimed));
    let r = ratio(timed.median, untimed.median);
    #[allow(clippy::cast_precision_loss)]
    let report_kib = report as f64 / 1024.0;
    vec![
        Row {
            figure: format!("report frame, 5 marked sections after {laps} laps"),
            measured: format!("{report} B (largest of {})", reports.len()),
            floor: format!("{sections} B (the 5 section timers, serialized)"),
            ratio: "-".into(),
            checked: report_kib,
            target: Target::AtMost(64.0),
            target_text: "<= 64 KiB".into(),
        },
        Row {
            figure: "stop latency, 5 marked sections after 1M laps".into(),
            measured: format!(
                "{:.1} us (p10 {:.1}, p90 {:.1}, n={})",
                us(timed.median),
                us(timed.p10),
                us(timed.p90),
                timed.n
            ),
            floor: format!(
                "{:.1} us (same process, no timers; p10 {:.1}, p90 {:.1})",
                us(untimed.median),
                us(untimed.p10),
                us(untimed.p90)
            ),
            ratio: format!("{r:.2}x"),
            checked: r,
            target: Target::AtMost(1.2),
            target_text: "<= 1.2x".into(),
        },
    ]
}

// ---------------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------------

/// How a figure compares with its target.
#[derive(Clone, Copy)]
enum Target {
    /// The value must be at most this.
    AtMost(f64),
    /// The value must be at least this.
    AtLeast(f64),
    /// Printed for context only.
    None,
}

/// One row of the table.
struct Row {
    /// What is measured.
    figure: String,
    /// The measured value, formatted.
    measured: String,
    /// The floor, formatted ("-" when there is none).
    floor: String,
    /// The ratio, formatted ("-" when there is none).
    ratio: String,
    /// The number the target applies to.
    checked: f64,
    /// The target.
    target: Target,
    /// The target, formatted.
    target_text: String,
}

impl Row {
    /// "met", "NOT met", or "info", computed from `checked` and `target`.
    fn verdict(&self) -> &'static str {
        match self.target {
            Target::AtMost(limit) if self.checked <= limit => "met",
            Target::AtLeast(limit) if self.checked >= limit => "met",
            Target::AtMost(_) | Target::AtLeast(_) => "NOT met",
            Target::None => "info",
        }
    }
}

/// Prints the rows as an aligned table.
fn print_table(rows: &[Row]) {
    let header = ["figure", "measured", "floor", "ratio", "target", "met"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.measured.clone(),
                r.floor.clone(),
                r.ratio.clone(),
                r.target_text.clone(),
                r.verdict().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&header.map(str::to_owned));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}

/// Samples taken while the parent holds a large allocation.
struct BigParent {
    /// GiB held.
    gib: usize,
    /// The parent's largest resident set size seen while measuring.
    rss: Option<u64>,
    /// Samples under that condition.
    samples: StartSamples,
}

impl BigParent {
    /// No samples yet.
    fn new(gib: usize) -> Self {
        Self {
            gib,
            rss: None,
            samples: StartSamples::default(),
        }
    }

    /// Allocates and touches the memory, measures `runs` rounds, frees it.
    fn measure(&mut self, runs: usize) {
        let memory = resident_allocation(self.gib * GIB);
        self.rss = self.rss.max(rss_bytes());
        self.samples.measure(runs);
        black_box(&memory);
        drop(memory);
    }
}

/// The ratio `a / b`.
fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Figures 1 and 2: start-to-result (the exit included), with a small parent and with
/// large ones. Returns the rows and the parents' resident set sizes.
fn start_rows(big: bool) -> (Vec<Row>, Vec<(usize, Option<u64>)>) {
    // The small- and large-parent conditions alternate in blocks, so that the ratio
    // of a large parent against the small-parent floor is also measured side by side.
    let mut small = StartSamples::default();
    let mut bigs = vec![BigParent::new(1)];
    if big {
        bigs.push(BigParent::new(4));
    }
    let sizes: Vec<String> = bigs.iter().map(|b| b.gib.to_string()).collect();
    eprintln!(
        "[start] warm-up, then {START_BLOCKS} blocks of {} small-parent rounds and {} rounds \
         per large parent ({} GiB)...",
        START_RUNS / START_BLOCKS,
        BIG_PARENT_RUNS / START_BLOCKS,
        sizes.join(" and "),
    );
    for _ in 0..WARMUP {
        floor_once();
        trivial_once();
    }
    for _ in 0..START_BLOCKS {
        small.measure(START_RUNS / START_BLOCKS);
        for b in &mut bigs {
            b.measure(BIG_PARENT_RUNS / START_BLOCKS);
        }
    }
    let small = small.figures();

    let mut rows = Vec::new();
    let r = ratio(small.to_result.median, small.floor.median);
    rows.push(Row {
        figure: "start-to-result (exit included), trivial process".into(),
        measured: small.to_result.ms(),
        floor: small.floor.ms(),
        ratio: format!("{r:.3}x"),
        checked: r,
        target: Target::AtMost(1.10),
        target_text: "<= 1.10x".into(),
    });
    for b in &bigs {
        let fig = b.samples.figures();
        let same = ratio(fig.to_result.median, fig.floor.median);
        rows.push(Row {
            figure: format!("start-to-result, {} GiB parent, vs same-size floor", b.gib),
            measured: fig.to_result.ms(),
            floor: fig.floor.ms(),
            ratio: format!("{same:.3}x"),
            checked: same,
            target: Target::None,
            target_text: "-".into(),
        });
        let vs_small = ratio(fig.to_result.median, small.floor.median);
        rows.push(Row {
            figure: format!(
                "start-to-result, {} GiB parent, vs small-parent floor",
                b.gib
            ),
            measured: fig.to_result.ms(),
            floor: small.floor.ms(),
            ratio: format!("{vs_small:.3}x"),
            checked: vs_small,
            target: Target::AtMost(1.2),
            target_text: "<= 1.2x".into(),
        });
    }
    (rows, bigs.iter().map(|b| (b.gib, b.rss)).collect())
}

/// Figure 3: engine overhead per lap, without and with `#[timethis]`.
fn lap_rows() -> Vec<Row> {
    eprintln!(
        "[laps] {LAP_ROUNDS} rounds of {LAPS} laps: direct, hand-timed, engine, engine with \
         timers..."
    );
    let (mut direct, mut hand, mut engine, mut timed, mut elsewhere) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..LAP_ROUNDS {
        direct.push(direct_ns_per_lap());
        engine.push(engine_ns_per_lap(&EmptyLaps));
        hand.push(hand_timed_ns_per_lap());
        timed.push(engine_ns_per_lap(&TimedLaps));
        elsewhere.push(engine_ns_per_lap(&TimedElsewhere));
    }
    let (direct, hand, engine, timed, elsewhere) = (
        median_f64(&direct),
        median_f64(&hand),
        median_f64(&engine),
        median_f64(&timed),
        median_f64(&elsewhere),
    );
    vec![
        Row {
            figure: "engine overhead per lap, 3 empty sections".into(),
            measured: format!("{engine:.2} ns/lap"),
            floor: format!("{direct:.2} ns/lap (direct calls)"),
            ratio: format!("{:.1}x", engine / direct),
            checked: engine,
            target: Target::AtMost(50.0),
            target_text: "<= 50 ns/lap".into(),
        },
        Row {
            figure: "  with #[timethis] on on_finish and a helper only".into(),
            measured: format!("{elsewhere:.2} ns/lap"),
            floor: format!("{engine:.2} ns/lap (no #[timethis] at all)"),
            ratio: format!("{:.2}x", elsewhere / engine),
            checked: elsewhere,
            target: Target::AtMost(50.0),
            target_text: "<= 50 ns/lap".into(),
        },
        Row {
            figure: "  with #[timethis] on all three sections".into(),
            measured: format!("{timed:.2} ns/lap"),
            floor: format!("{hand:.2} ns/lap (direct calls, timed by hand)"),
            ratio: format!("{:.2}x", timed / hand),
            checked: timed,
            target: Target::None,
            target_text: "-".into(),
        },
    ]
}

/// Figure 4: stop latency of an idle process.
fn stop_rows() -> Vec<Row> {
    eprintln!("[stop] {STOP_RUNS} stops of an idle process...");
    let stops: Vec<Duration> = (0..STOP_RUNS).map(|_| stop_once()).collect();
    let stop = Stats::of(&stops);
    vec![Row {
        figure: "stop latency, idle loop (stop() to result())".into(),
        measured: format!(
            "{:.1} us (p10 {:.1}, p90 {:.1}, n={})",
            us(stop.median),
            us(stop.p10),
            us(stop.p90),
            stop.n
        ),
        floor: "-".into(),
        ratio: "-".into(),
        checked: us(stop.median),
        target: Target::AtMost(1000.0),
        target_text: "<= 1000 us".into(),
    }]
}

/// Figure 5: restart after a crash, against trivial starts interleaved with it.
fn restart_rows() -> Vec<Row> {
    eprintln!("[restart] {RESTART_RUNS} restarts, interleaved with trivial starts...");
    let mut restarts = Vec::with_capacity(RESTART_RUNS);
    let mut trivials = Vec::with_capacity(RESTART_RUNS);
    for round in 0..RESTART_RUNS {
        if round % 2 == 0 {
            trivials.push(trivial_once());
        }
        restarts.push(restart_once());
        if round % 2 == 1 {
            trivials.push(trivial_once());
        }
    }
    let restart = Stats::of(&restarts);
    let reference = Stats::of(&trivials);
    let cost = (restart.median.as_secs_f64() - reference.median.as_secs_f64())
        / reference.median.as_secs_f64();
    vec![Row {
        figure: "restart cost / start-to-result (abort, lives = 2)".into(),
        measured: format!("{} total", restart.ms()),
        floor: format!("{} start-to-result", reference.ms()),
        ratio: format!("{cost:.3}x"),
        checked: cost,
        target: Target::AtMost(1.5),
        target_text: "<= 1.5x".into(),
    }]
}

/// Which figures to measure: all, or the one named by
/// `--only <start|laps|stop|restart|timers|messages|stream|node|pool|poolrun|python|transfer|supervisor|warm>`.
fn wanted(args: &[String], figure: &str) -> bool {
    match args.iter().position(|a| a == "--only") {
        Some(i) => args.get(i + 1).is_some_and(|f| f == figure),
        None => true,
    }
}

#[process_runtime::main]
fn main() {
    if std::env::var_os(FLOOR_ENV).is_some() {
        std::process::exit(0);
    }
    // The pool figures compare with procspawn, whose workers are this binary too: in
    // one of them this call runs the work and never returns. The runtime's own
    // children never get here: they were taken over before `main`.
    procspawn::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let big = args.iter().any(|a| a == "--big");
    let began = Instant::now();

    let mut rows = Vec::new();
    let mut rss = Vec::new();
    if wanted(&args, "start") {
        let (r, sizes) = start_rows(big);
        rows.extend(r);
        rss = sizes;
    }
    if wanted(&args, "laps") {
        rows.extend(lap_rows());
    }
    if wanted(&args, "stop") {
        rows.extend(stop_rows());
    }
    if wanted(&args, "restart") {
        rows.extend(restart_rows());
    }
    if wanted(&args, "timers") {
        rows.extend(timer_rows());
    }
    if wanted(&args, "messages") {
        rows.extend(messages::rows());
    }
    // The round trip and the stream without the thousand children.
    if wanted(&args, "stream") && !wanted(&args, "messages") {
        rows.extend(messages::pair_rows());
    }
    if wanted(&args, "node") {
        rows.extend(node::rows());
    }
    if wanted(&args, "pool") {
        rows.extend(pool::rows());
    }
    if wanted(&args, "poolrun") {
        rows.extend(pool_run::rows());
    }
    if wanted(&args, "python") {
        rows.extend(python::rows());
    }
    if wanted(&args, "transfer") {
        rows.extend(transfer::rows());
    }
    if wanted(&args, "supervisor") {
        rows.extend(supervisor::rows());
    }
    // Last: it starts warm children, which the other figures must not use.
    if wanted(&args, "warm") {
        rows.extend(warm::rows());
    }

    println!();
    println!(
        "process-runtime bench: {} cores, {:.1} s",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        began.elapsed().as_secs_f64()
    );
    for (gib, rss) in rss {
        if let Some(rss) = rss {
            #[allow(clippy::cast_precision_loss)]
            let held = rss as f64 / GIB as f64;
            println!("  {gib} GiB parent: resident set {held:.2} GiB while measuring");
        }
    }
    println!();
    print_table(&rows);
}
