//! The `Pool::run` figures: many trivial processes run on a pool's warm workers, per
//! process, beside the same processes started one at a time with `start()` (cold, and
//! with `keep_warm`), each measured in alternating rounds in this one run.
//!
//! A started process costs a process: spawn (or a warm child's hand-over), handshake,
//! the lifecycle, the report and the exit. On a pool it costs its share of a chunk sent
//! to a worker that is already running. The ratio says how much of a start the pool
//! saves; the one-worker figure compares at the same parallelism as the one-at-a-time
//! starts, the two-worker figure shows what a second worker adds.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;

use crate::{trivial_once, Row, Stats, Target, Trivial};

/// Processes per `run` call.
const RUN_ITEMS: u32 = 2_000;
/// Starts one at a time per round of the floor.
const STARTS: usize = 40;
/// Rounds of each side.
const ROUNDS: usize = 5;
/// Warm children kept for the warm-start side.
const KEPT: usize = 2;

/// One `run` of [`RUN_ITEMS`] trivial processes: the time per process.
fn run_once(pool: &Pool) -> Duration {
    let t0 = Instant::now();
    let outcomes = pool.run((0..RUN_ITEMS).map(|value| Trivial { value }));
    let took = t0.elapsed();
    assert_eq!(outcomes.len(), RUN_ITEMS as usize);
    assert_eq!(outcomes[7], Ok(7));
    assert!(outcomes.iter().all(Result::is_ok), "a process failed");
    took / RUN_ITEMS
}

/// [`STARTS`] trivial processes started and awaited one at a time: each one's time.
fn starts_once(samples: &mut Vec<Duration>) {
    for _ in 0..STARTS {
        samples.push(trivial_once());
    }
}

/// Waits until `n` warm children are ready.
fn wait_warm(n: usize) {
    let t0 = Instant::now();
    while process_runtime::__testing::warm_pids().len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "warm children never got ready"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn row(figure: String, measured: &Stats, floor: &Stats, floor_text: &str) -> Row {
    let ratio = measured.median.as_secs_f64() / floor.median.as_secs_f64();
    Row {
        figure,
        measured: measured.us(),
        floor: format!("{} {floor_text}", floor.us()),
        ratio: format!("{ratio:.4}x (1/{:.0})", 1.0 / ratio),
        checked: ratio,
        target: Target::None,
        target_text: "-".into(),
    }
}

/// The `Pool::run` figures.
pub(crate) fn rows() -> Vec<Row> {
    eprintln!(
        "[pool run] {ROUNDS} rounds: run of {RUN_ITEMS} trivial processes on 1 and 2 workers, \
         {STARTS} start() one at a time..."
    );
    let one = Pool::new(1).expect("start a pool");
    let two = Pool::new(2).expect("start a pool");
    let unchunked = Pool::builder()
        .workers(1)
        .chunk_size(1)
        .build()
        .expect("start a pool");
    run_once(&one);
    run_once(&two);
    run_once(&unchunked);
    let (mut cold, mut on_one, mut on_two, mut one_by_one) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        starts_once(&mut cold);
        on_one.push(run_once(&one));
        on_two.push(run_once(&two));
        one_by_one.push(run_once(&unchunked));
        starts_once(&mut cold);
    }
    // Warm starts last: the pools' workers are started, and keep_warm changes nothing
    // for them.
    process_runtime::keep_warm(KEPT).expect("keep warm children");
    let mut warm = Vec::new();
    for _ in 0..ROUNDS * STARTS {
        wait_warm(KEPT);
        warm.push(trivial_once());
    }
    process_runtime::keep_warm(0).expect("end the warm children");
    drop((one, two, unchunked));

    let (cold, warm) = (Stats::of(&cold), Stats::of(&warm));
    let (on_one, on_two) = (Stats::of(&on_one), Stats::of(&on_two));
    let one_by_one = Stats::of(&one_by_one);
    vec![
        row(
            format!("pool.run of {RUN_ITEMS} trivial processes, 1 worker: per process"),
            &on_one,
            &cold,
            "start() then result(), one at a time",
        ),
        row(
            format!("pool.run of {RUN_ITEMS} trivial processes, 2 workers: per process"),
            &on_two,
            &cold,
            "start() then result(), one at a time",
        ),
        row(
            "pool.run, 1 worker, chunk_size(1): per process".into(),
            &one_by_one,
            &cold,
            "start() then result(), one at a time",
        ),
        row(
            format!("pool.run, 1 worker, beside keep_warm({KEPT}) starts"),
            &on_one,
            &warm,
            "warm start() then result(), one at a time",
        ),
    ]
}
