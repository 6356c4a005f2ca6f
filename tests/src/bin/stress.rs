//! Stress run (not part of `cargo test`): many children alive at once, then many
//! sequential starts; checks that descriptors, zombies and memory come back to where
//! they were, and prints the figures.
//!
//! ```sh
//! cargo run --release -p process-runtime-tests --bin stress
//! cargo run --release -p process-runtime-tests --bin stress -- 500 10000 2000
//! ```
//!
//! Arguments: children alive at once (500), sequential starts (10000), how long each
//! of the concurrent children sleeps in ms (2000). Exits with 1 if a check failed.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime_tests::{child_processes, open_descriptors, status_kb, zombie_children};
use serde::{Deserialize, Serialize};

/// Sleeps once in `main_loop`, then returns its pid.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, name = "sleeper")]
struct Sleeper {
    ms: u64,
}

impl Lifecycle for Sleeper {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.ms));
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.pid())
    }
}

/// Does nothing, once, and returns its input plus one.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, name = "trivial")]
struct Trivial {
    n: u64,
}

impl Lifecycle for Trivial {
    type Output = u64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.n + 1)
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn running_children() -> usize {
    child_processes().iter().filter(|p| p.state != 'Z').count()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[process_runtime::main]
fn main() {
    let alive = arg(1, 500);
    let sequential = arg(2, 10_000);
    let nap = arg(3, 2000);
    let mut failures = Vec::new();

    // Warm up: the spawner thread and lazily opened descriptors exist from here on.
    let h = Trivial { n: 0 }.start().expect("start");
    assert_eq!(h.result(), Ok(1));
    h.wait();

    let fds_start = open_descriptors();
    let rss_start = status_kb("VmRSS").unwrap_or(0);
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("start: {fds_start} descriptors, VmRSS {rss_start} kB");

    // Phase 1: `alive` children at once, each asleep for `nap` ms.
    let t0 = Instant::now();
    let mut handles: Vec<_> = (0..alive)
        .map(|_| Sleeper { ms: nap }.start().expect("start"))
        .collect();
    let started = t0.elapsed();
    let peak_children = running_children();
    let peak_fds = open_descriptors();
    let peak_rss = status_kb("VmRSS").unwrap_or(0);
    let mut ok = 0;
    for h in &mut handles {
        match h.result() {
            Ok(pid) if pid == h.pid() => ok += 1,
            other => failures.push(format!("a sleeper ended with {other:?}")),
        }
    }
    for h in &mut handles {
        h.wait();
        if h.exit_code() != Some(0) {
            failures.push(format!("a sleeper exited with {:?}", h.exit_code()));
        }
    }
    let all_done = t0.elapsed();
    drop(handles);
    println!(
        "phase 1: {alive} children asleep {nap} ms at once: started in {:.0} ms \
         ({:.2} ms each), {peak_children} running at the peak, {peak_fds} descriptors \
         and VmRSS {peak_rss} kB at the peak, {ok} results, all done and reaped in {:.0} ms",
        ms(started),
        ms(started) / alive as f64,
        ms(all_done)
    );
    let after_phase1 = (
        open_descriptors(),
        zombie_children().len(),
        running_children(),
    );
    println!(
        "after phase 1: {} descriptors, {} zombies, {} children running",
        after_phase1.0, after_phase1.1, after_phase1.2
    );
    if peak_children < alive as usize {
        failures.push(format!(
            "only {peak_children} of {alive} children were running at once"
        ));
    }

    // Phase 2: `sequential` starts of a trivial process, one after another.
    let mut times = Vec::with_capacity(sequential as usize);
    let rss_phase2_start = status_kb("VmRSS").unwrap_or(0);
    let mut rss_after_tenth = rss_phase2_start;
    let t1 = Instant::now();
    for n in 0..sequential {
        if n == sequential / 10 {
            rss_after_tenth = status_kb("VmRSS").unwrap_or(0);
        }
        let t = Instant::now();
        let h = Trivial { n }.start().expect("start");
        let r = h.result();
        h.wait();
        times.push(t.elapsed());
        if r != Ok(n + 1) || h.exit_code() != Some(0) {
            failures.push(format!("start {n}: {r:?}, exit {:?}", h.exit_code()));
        }
    }
    let total = t1.elapsed();
    times.sort();
    let pct = |p: f64| ms(times[((times.len() - 1) as f64 * p) as usize]);
    println!(
        "phase 2: {sequential} sequential starts in {:.2} s: mean {:.3} ms, min {:.3}, \
         p50 {:.3}, p99 {:.3}, max {:.3} ms per start (start + result + wait)",
        total.as_secs_f64(),
        ms(total) / sequential as f64,
        pct(0.0),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );

    let rss_phase2_end = status_kb("VmRSS").unwrap_or(0);
    println!(
        "phase 2 VmRSS: {rss_phase2_start} kB before, {rss_after_tenth} kB after {} starts, \
         {rss_phase2_end} kB after {sequential} ({:+.3} kB per start over the last 90%)",
        sequential / 10,
        (rss_phase2_end as f64 - rss_after_tenth as f64)
            / (sequential - sequential / 10).max(1) as f64
    );

    let fds_end = open_descriptors();
    let zombies = zombie_children();
    let children = running_children();
    let rss_end = status_kb("VmRSS").unwrap_or(0);
    println!(
        "end: {fds_end} descriptors (start {fds_start}), {} zombies, {children} children \
         running, VmRSS {rss_end} kB (start {rss_start} kB, {:+} kB), VmHWM {} kB",
        zombies.len(),
        i64::try_from(rss_end).unwrap_or(0) - i64::try_from(rss_start).unwrap_or(0),
        status_kb("VmHWM").unwrap_or(0)
    );
    if fds_end != fds_start {
        failures.push(format!(
            "descriptors: {fds_start} at the start, {fds_end} at the end"
        ));
    }
    if !zombies.is_empty() {
        failures.push(format!("zombies left: {zombies:?}"));
    }
    if children != 0 {
        failures.push(format!("{children} children still running"));
    }
    if failures.is_empty() {
        println!("stress: OK");
    } else {
        for f in failures.iter().take(20) {
            println!("FAILED: {f}");
        }
        println!("stress: {} failures", failures.len());
        std::process::exit(1);
    }
}
