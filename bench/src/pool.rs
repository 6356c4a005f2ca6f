//! The pool figures: `map` throughput beside `procspawn::Pool` and a plain loop, the
//! per-item cost with chunks of one beside a message round trip, and throughput while
//! a fifth of the items abort their worker beside the same pool's clean run.
//!
//! Each figure and its floor run in alternating rounds in this one process, as the
//! other figures do. procspawn's workers are this binary too: `main` calls
//! `procspawn::init()` first, which takes a procspawn child over there (the runtime's
//! own children were taken over before `main`, so they never reach it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;

use crate::messages::Pair;
use crate::{us, Row, Stats, Target};

/// Items of the throughput figure.
const MAP_ITEMS: u64 = 100_000;
/// Workers of the throughput and per-item figures.
const WORKERS: usize = 2;
/// Rounds of each side of the throughput figure.
const MAP_ROUNDS: usize = 5;
/// procspawn calls in flight at once: each holds three descriptors until it is joined.
const PROCSPAWN_WINDOW: usize = 64;
/// Items per block of the per-item figure, and blocks per side.
const ONE_ITEMS: u64 = 5_000;
const ONE_BLOCKS: usize = 6;
/// Round trips per block of the per-item figure's floor.
const PING_ROUNDS: usize = 2_000;
/// Workers, items and rounds of the abort figure; every `ABORT_EVERY`th item aborts.
const ABORT_WORKERS: usize = 4;
const ABORT_ITEMS: u64 = 2_000;
const ABORT_ROUNDS: usize = 3;
const ABORT_EVERY: u64 = 5;
/// CPU time of one item of the abort figure.
const ABORT_ITEM_WORK: Duration = Duration::from_millis(1);

/// The trivial function of the throughput figures.
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// Items per second.
fn rate(items: u64, took: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let items = items as f64;
    items / took.as_secs_f64()
}

/// `map` of [`MAP_ITEMS`] trivial items on `pool`.
fn ours_once(pool: &Pool) -> Duration {
    let t0 = Instant::now();
    let results = pool.map(plus_one, 0..MAP_ITEMS);
    let took = t0.elapsed();
    assert_eq!(results.len(), MAP_ITEMS as usize);
    assert_eq!(results[7], Ok(8));
    assert!(results.iter().all(Result::is_ok), "an item failed");
    took
}

/// The same items through `procspawn::Pool`, which runs one call per `spawn`; at most
/// [`PROCSPAWN_WINDOW`] calls are in flight, joined in order.
fn procspawn_once(pool: &procspawn::Pool) -> Duration {
    let t0 = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(PROCSPAWN_WINDOW);
    let mut results = Vec::with_capacity(MAP_ITEMS as usize);
    for x in 0..MAP_ITEMS {
        if pending.len() == PROCSPAWN_WINDOW {
            let handle: procspawn::JoinHandle<u64> = pending.pop_front().expect("a call");
            results.push(handle.join().expect("a procspawn call failed"));
        }
        pending.push_back(pool.spawn(x, plus_one));
    }
    for handle in pending {
        results.push(handle.join().expect("a procspawn call failed"));
    }
    let took = t0.elapsed();
    assert_eq!(results.len(), MAP_ITEMS as usize);
    assert_eq!(results[7], 8);
    took
}

/// The same work in one thread of this process: the items into a `Vec`, `x + 1` on
/// each, the results into another.
fn loop_once() -> Duration {
    let t0 = Instant::now();
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let results: Vec<u64> = black_box(items)
        .into_iter()
        .map(|x| plus_one(black_box(x)))
        .collect();
    let took = t0.elapsed();
    assert_eq!(black_box(results)[7], 8);
    took
}

/// Throughput of `map` against procspawn and a plain loop.
fn map_rows() -> Vec<Row> {
    eprintln!(
        "[pool] map of {MAP_ITEMS} x + 1 on {WORKERS} workers, {MAP_ROUNDS} rounds each of ours, \
         procspawn::Pool and a plain loop..."
    );
    let ours = Pool::new(WORKERS).expect("start the pool");
    let theirs = procspawn::Pool::new(WORKERS).expect("start procspawn's pool");
    ours_once(&ours);
    procspawn_once(&theirs);
    let (mut ours_t, mut theirs_t, mut loop_t) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..MAP_ROUNDS {
        if round % 2 == 0 {
            theirs_t.push(procspawn_once(&theirs));
        }
        ours_t.push(ours_once(&ours));
        loop_t.push(loop_once());
        if round % 2 == 1 {
            theirs_t.push(procspawn_once(&theirs));
        }
    }
    theirs.shutdown();
    drop(ours);
    let (ours_s, theirs_s, loop_s) = (Stats::of(&ours_t), Stats::of(&theirs_t), Stats::of(&loop_t));
    let (ours_r, theirs_r, loop_r) = (
        rate(MAP_ITEMS, ours_s.median),
        rate(MAP_ITEMS, theirs_s.median),
        rate(MAP_ITEMS, loop_s.median),
    );
    let vs_procspawn = ours_r / theirs_r;
    let vs_loop = ours_r / loop_r;
    vec![
        Row {
            figure: format!("map of {MAP_ITEMS} x + 1, {WORKERS} workers (items/s)"),
            measured: format!(
                "{:.2} M/s ({:.1} ms; p10 {:.1}, p90 {:.1}, n={})",
                ours_r / 1e6,
                crate::ms(ours_s.median),
                crate::ms(ours_s.p10),
                crate::ms(ours_s.p90),
                ours_s.n
            ),
            floor: format!(
                "{:.3} M/s procspawn::Pool({WORKERS}) ({:.0} ms)",
                theirs_r / 1e6,
                crate::ms(theirs_s.median)
            ),
            ratio: format!("{vs_procspawn:.1}x"),
            checked: vs_procspawn,
            target: Target::AtLeast(5.0),
            target_text: ">= 5x procspawn".into(),
        },
        Row {
            figure: "  the same items in a plain loop, one thread".into(),
            measured: format!("{:.2} M/s (the pool)", ours_r / 1e6),
            floor: format!(
                "{:.0} M/s ({:.3} ms)",
                loop_r / 1e6,
                crate::ms(loop_s.median)
            ),
            ratio: format!("{vs_loop:.4}x"),
            checked: vs_loop,
            target: Target::None,
            target_text: "-".into(),
        },
    ]
}

/// Mean time per item of `map` with chunks of one.
fn one_by_one(pool: &Pool) -> Duration {
    let t0 = Instant::now();
    let results = pool.map(plus_one, 0..ONE_ITEMS);
    let took = t0.elapsed();
    assert!(results.iter().all(Result::is_ok), "an item failed");
    took / u32::try_from(ONE_ITEMS).expect("items fit u32")
}

/// Mean time per item of `imap` with chunks of one, each result taken as it comes.
fn one_by_one_lazily(pool: &Pool) -> Duration {
    let t0 = Instant::now();
    let mut taken = 0u64;
    for r in pool.imap(plus_one, 0..ONE_ITEMS) {
        assert!(r.is_ok(), "an item failed");
        taken += 1;
    }
    let took = t0.elapsed();
    assert_eq!(taken, ONE_ITEMS);
    took / u32::try_from(ONE_ITEMS).expect("items fit u32")
}

/// Mean time of `apply` over `rounds` calls, one at a time.
fn applies(pool: &Pool, rounds: u64) -> Duration {
    let t0 = Instant::now();
    for x in 0..rounds {
        assert_eq!(pool.apply(plus_one, x), Ok(x + 1));
    }
    t0.elapsed() / u32::try_from(rounds).expect("rounds fit u32")
}

/// Per-item cost with chunks of one, beside a message round trip: on [`WORKERS`]
/// workers (the figure), and on one, of `imap` taking each result as it comes (its
/// caller is woken for them), and of `apply` one call at a time (for context).
fn per_item_rows() -> Vec<Row> {
    eprintln!(
        "[pool] chunk_size(1): {ONE_BLOCKS} x {ONE_ITEMS} items on {WORKERS} workers and on 1, \
         through map and imap, and {ONE_BLOCKS} x {PING_ROUNDS} apply calls, beside message \
         round trips..."
    );
    let ones = |workers| {
        Pool::builder()
            .workers(workers)
            .chunk_size(1)
            .build()
            .expect("start the pool")
    };
    let (pool, single) = (ones(WORKERS), ones(1));
    let pair = Pair::start();
    one_by_one(&pool);
    one_by_one(&single);
    one_by_one_lazily(&pool);
    applies(&pool, 200);
    pair.message_pings(200);
    let (mut items, mut items_1, mut lazily, mut apply, mut trips) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for block in 0..ONE_BLOCKS {
        if block % 2 == 0 {
            trips.push(pair.message_pings(PING_ROUNDS));
        }
        items.push(one_by_one(&pool));
        items_1.push(one_by_one(&single));
        lazily.push(one_by_one_lazily(&pool));
        apply.push(applies(&pool, PING_ROUNDS as u64));
        if block % 2 == 1 {
            trips.push(pair.message_pings(PING_ROUNDS));
        }
    }
    pair.finish();
    drop((pool, single));
    let (items, items_1, lazily, apply, trips) = (
        Stats::of(&items),
        Stats::of(&items_1),
        Stats::of(&lazily),
        Stats::of(&apply),
        Stats::of(&trips),
    );
    let against = |s: &Stats| s.median.as_secs_f64() / trips.median.as_secs_f64();
    let floor = format!(
        "{:.1} us round trip, tell + listen of an echo",
        us(trips.median)
    );
    let row = |figure: String, s: &Stats, target: Target, target_text: &str| Row {
        figure,
        measured: format!(
            "{:.1} us (p10 {:.1}, p90 {:.1}, n={})",
            us(s.median),
            us(s.p10),
            us(s.p90),
            s.n
        ),
        floor: floor.clone(),
        ratio: format!("{:.2}x", against(s)),
        checked: against(s),
        target,
        target_text: target_text.into(),
    };
    vec![
        row(
            format!("per item, map with chunk_size(1), {WORKERS} workers"),
            &items,
            Target::AtMost(2.0),
            "<= 2x a round trip",
        ),
        row("  the same on 1 worker".into(), &items_1, Target::None, "-"),
        row(
            format!("  imap, chunk_size(1), {WORKERS} workers, taken as they come"),
            &lazily,
            Target::None,
            "-",
        ),
        row(
            "  apply, one call at a time".into(),
            &apply,
            Target::None,
            "-",
        ),
    ]
}

/// Spins `rounds` rounds of arithmetic the optimizer cannot remove.
fn spin(rounds: u64) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..rounds {
        h = black_box(h.rotate_left(5) ^ i).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The rounds of [`spin`] that take [`ABORT_ITEM_WORK`] here, from the fastest of a
/// few trials.
fn calibrate() -> u64 {
    let trial = 1_000_000;
    let fastest = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            black_box(spin(trial));
            t0.elapsed()
        })
        .min()
        .expect("trials");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounds = (trial as f64 * ABORT_ITEM_WORK.as_secs_f64() / fastest.as_secs_f64()) as u64;
    rounds.max(1)
}

/// An item of the abort figure: `spins` rounds of work, then an abort when `dies`.
fn work_or_abort((spins, dies): (u64, bool)) -> u64 {
    let h = spin(spins);
    if dies {
        std::process::abort();
    }
    h
}

/// `map` of [`ABORT_ITEMS`] items of work on `pool`, every [`ABORT_EVERY`]th of them
/// aborting when `aborts`; checks each result.
fn abort_once(pool: &Pool, spins: u64, aborts: bool) -> Duration {
    let items = (0..ABORT_ITEMS).map(|x| (spins, aborts && x % ABORT_EVERY == 0));
    let t0 = Instant::now();
    let results = pool.map(work_or_abort, items);
    let took = t0.elapsed();
    for (x, r) in (0..ABORT_ITEMS).zip(results) {
        if aborts && x % ABORT_EVERY == 0 {
            assert!(
                matches!(r, Err(ProcessError::Crashed { .. })),
                "item {x}: {r:?}"
            );
        } else {
            assert!(r.is_ok(), "item {x}: {r:?}");
        }
    }
    took
}

/// No core files: hundreds of workers abort in this figure.
fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct passed; no other memory is touched. The
    // workers started afterwards inherit the limit.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}

/// Throughput while a fifth of the items abort their worker, beside the clean run.
fn abort_rows() -> Vec<Row> {
    no_core_dumps();
    let spins = calibrate();
    eprintln!(
        "[pool] {ABORT_ROUNDS} rounds of {ABORT_ITEMS} items of {} ms of work on \
         {ABORT_WORKERS} workers, clean and with one in {ABORT_EVERY} aborting...",
        crate::ms(ABORT_ITEM_WORK)
    );
    let pool = Pool::new(ABORT_WORKERS).expect("start the pool");
    abort_once(&pool, spins, false);
    let (mut clean, mut aborting) = (Vec::new(), Vec::new());
    for round in 0..ABORT_ROUNDS {
        if round % 2 == 0 {
            clean.push(abort_once(&pool, spins, false));
        }
        aborting.push(abort_once(&pool, spins, true));
        if round % 2 == 1 {
            clean.push(abort_once(&pool, spins, false));
        }
    }
    drop(pool);
    let (clean, aborting) = (Stats::of(&clean), Stats::of(&aborting));
    let (clean_r, aborting_r) = (
        rate(ABORT_ITEMS, clean.median),
        rate(ABORT_ITEMS, aborting.median),
    );
    let r = aborting_r / clean_r;
    vec![Row {
        figure: format!("pool of {ABORT_WORKERS}, 1 ms items, 1 in {ABORT_EVERY} aborts (items/s)"),
        measured: format!(
            "{aborting_r:.0}/s ({:.0} ms for {ABORT_ITEMS})",
            crate::ms(aborting.median)
        ),
        floor: format!(
            "{clean_r:.0}/s the same pool, no aborts ({:.0} ms)",
            crate::ms(clean.median)
        ),
        ratio: format!("{r:.2}x"),
        checked: r,
        target: Target::AtLeast(0.5),
        target_text: ">= 0.5x clean".into(),
    }]
}

/// The pool figures.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = map_rows();
    rows.extend(per_item_rows());
    rows.extend(abort_rows());
    rows
}
