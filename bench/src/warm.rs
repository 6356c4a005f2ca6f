//! The warm-start figures (`keep_warm`): start-to-result and a restart after a crash,
//! each beside the cold floor measured in the same run, and what an idle warm child
//! costs. Measured last: the pool is emptied afterwards.

use std::time::{Duration, Instant};

use process_runtime::__testing::warm_pids;

use crate::{floor_once, ms, restart_once, trivial_once, Row, Stats, Target};

/// Samples of each side.
const RUNS: usize = 200;
/// Warm children kept.
const KEPT: usize = 2;

/// Waits until `n` warm children are ready, so that each sample measures a warm start
/// rather than the pool's refill.
fn wait_ready(n: usize) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let pids = warm_pids();
        if pids.len() >= n {
            return pids;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "warm children never got ready"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A field of `/proc/<pid>/status`, as a number.
fn status(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The warm figures.
pub(crate) fn rows() -> Vec<Row> {
    eprintln!("[warm] keep_warm({KEPT}); {RUNS} warm starts and restarts beside the cold floor...");
    process_runtime::keep_warm(KEPT).expect("keep warm children");
    wait_ready(KEPT);
    let (mut floor, mut warm, mut restarts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..RUNS {
        if round % 2 == 0 {
            floor.push(floor_once());
        }
        wait_ready(KEPT);
        warm.push(trivial_once());
        wait_ready(KEPT);
        restarts.push(restart_once());
        if round % 2 == 1 {
            floor.push(floor_once());
        }
    }
    // Idle cost: what each warm child holds, and how often it wakes while nobody
    // starts anything.
    let idle = wait_ready(KEPT);
    // Let the last one settle into its wait: the switch into it is not idle cost.
    std::thread::sleep(Duration::from_millis(200));
    let switches = |pid| {
        status(pid, "voluntary_ctxt_switches:").unwrap_or(0)
            + status(pid, "nonvoluntary_ctxt_switches:").unwrap_or(0)
    };
    let before: Vec<u64> = idle.iter().map(|&p| switches(p)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let wakeups: u64 = idle
        .iter()
        .zip(&before)
        .map(|(&p, b)| switches(p).saturating_sub(*b))
        .sum();
    let rss_kb: Vec<u64> = idle.iter().filter_map(|&p| status(p, "VmRSS:")).collect();
    process_runtime::keep_warm(0).expect("end the warm children");

    let (floor, warm, restart) = (Stats::of(&floor), Stats::of(&warm), Stats::of(&restarts));
    let start_ratio = warm.median.as_secs_f64() / floor.median.as_secs_f64();
    // A restart is a start, a crash and a second start: what it adds over a clean warm
    // start, against a clean (cold) start, and against a clean warm one.
    let added = restart.median.as_secs_f64() - warm.median.as_secs_f64();
    let extra = added / floor.median.as_secs_f64();
    let extra_warm = added / warm.median.as_secs_f64();
    let rss = rss_kb.iter().max().copied().unwrap_or(0);
    vec![
        Row {
            figure: format!("start-to-result with keep_warm({KEPT}) (exit included)"),
            measured: warm.ms(),
            floor: format!("{} cold floor (re-exec)", floor.ms()),
            ratio: format!("{start_ratio:.3}x"),
            checked: start_ratio,
            target: Target::AtMost(0.2),
            target_text: "<= 0.2x".into(),
        },
        Row {
            figure: "restart after an abort, warm: what it adds to a start".into(),
            measured: format!(
                "{:.3} ms added ({} total; {extra_warm:.2}x a warm start)",
                added * 1e3,
                restart.ms()
            ),
            floor: format!("{:.3} ms cold floor", ms(floor.median)),
            ratio: format!("{extra:.2}x"),
            checked: extra,
            target: Target::AtMost(0.3),
            target_text: "<= 0.3x a clean start".into(),
        },
        Row {
            figure: format!("idle warm children ({KEPT}): RSS each, wake-ups in 1 s"),
            measured: format!("{rss} KiB, {wakeups} wake-ups"),
            floor: "-".into(),
            ratio: "-".into(),
            checked: wakeups as f64,
            target: Target::AtMost(0.0),
            target_text: "0 wake-ups".into(),
        },
    ]
}
