//! The bar users know: Python's `multiprocessing` doing the work of four of our figures
//! on this machine, in this run (DESIGN.md section 11 asks for 2x each).
//!
//! A `python3` found on the `PATH` runs [`SCRIPT`], which prints one `name value` line
//! per figure; our side runs the same work right after, and the two alternate for
//! [`ROUNDS`] rounds. Without `python3` (or without its `multiprocessing`), the section
//! says so and prints no row: the rest of the bench does not need Python.
//!
//! The four figures, on each side:
//! - `map` of 100,000 `x + 1` items on 2 workers, with the pool's own chunking;
//! - the same with chunks of one item, per item;
//! - a round trip parent -> child -> parent (Python: a `Pipe`, `send`/`recv` of an int;
//!   ours: `tell` then `listen`);
//! - 1 KiB messages child -> parent (Python: `send_bytes`/`recv_bytes` on a `Pipe`,
//!   its fastest way; ours: `tell`/`listen` of a message holding the bytes).

use std::process::{Command, Stdio};
use std::time::Instant;

use process_runtime::prelude::*;

use crate::messages::Pair;
use crate::{us, Row, Target};

/// Rounds of each side (Python, then ours): five, so that the median is not one of
/// the first rounds, where both sides still grow their memory.
const ROUNDS: usize = 5;
/// Items of the `map` figure.
const MAP_ITEMS: u64 = 100_000;
/// Items of the chunks-of-one figure.
const ONE_ITEMS: u64 = 5_000;
/// Round trips of the round-trip figure.
const TRIPS: usize = 2_000;
/// Messages of the stream figure.
const BLOBS: usize = 20_000;
/// Workers of both pools.
const WORKERS: usize = 2;
/// How many times faster than Python each figure must be.
const BAR: f64 = 2.0;

/// What Python measures; the numbers above are passed as arguments, in that order.
const SCRIPT: &str = r#"
import multiprocessing as mp, sys, time

def plus_one(x):
    return x + 1

def echo(conn):
    while True:
        n = conn.recv()
        if n is None:
            return
        conn.send(n)

def blobs(conn, count):
    blob = bytes(1024)
    for _ in range(count):
        conn.send_bytes(blob)
    conn.close()

if __name__ == "__main__":
    items, ones, trips, count, workers = map(int, sys.argv[1:6])
    with mp.Pool(workers) as pool:
        pool.map(plus_one, range(1000))
        t = time.perf_counter()
        out = pool.map(plus_one, range(items))
        took = time.perf_counter() - t
        assert out[7] == 8
        print("map_per_s", items / took)
        t = time.perf_counter()
        pool.map(plus_one, range(ones), chunksize=1)
        print("one_us", (time.perf_counter() - t) / ones * 1e6)
    here, there = mp.Pipe()
    child = mp.Process(target=echo, args=(there,))
    child.start()
    here.send(0); here.recv()
    t = time.perf_counter()
    for n in range(trips):
        here.send(n)
        assert here.recv() == n
    print("trip_us", (time.perf_counter() - t) / trips * 1e6)
    here.send(None)
    child.join()
    here, there = mp.Pipe(duplex=False)
    child = mp.Process(target=blobs, args=(there, count))
    t = time.perf_counter()
    child.start()
    for _ in range(count):
        assert len(here.recv_bytes()) == 1024
    print("blobs_per_s", count / (time.perf_counter() - t))
    child.join()
"#;

/// One round of Python's figures, or why there is none.
fn python_once() -> Result<Figures, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(
            [
                MAP_ITEMS,
                ONE_ITEMS,
                TRIPS as u64,
                BLOBS as u64,
                WORKERS as u64,
            ]
            .map(|n| n.to_string()),
        )
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("python3 not found ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "python3 failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| -> Result<f64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .ok_or_else(|| format!("python3 printed no {name}"))
    };
    Ok(Figures {
        map_per_s: value("map_per_s")?,
        one_us: value("one_us")?,
        trip_us: value("trip_us")?,
        blobs_per_s: value("blobs_per_s")?,
    })
}

/// The four figures of one side.
#[derive(Clone, Copy)]
struct Figures {
    /// `map` items per second.
    map_per_s: f64,
    /// Microseconds per item with chunks of one.
    one_us: f64,
    /// Microseconds per round trip.
    trip_us: f64,
    /// 1 KiB messages per second.
    blobs_per_s: f64,
}

/// The trivial function of the pool figures.
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// Our side of the four figures.
struct Ours {
    pool: Pool,
    ones: Pool,
    pair: Pair,
}

impl Ours {
    fn start() -> Self {
        let ones = Pool::builder()
            .workers(WORKERS)
            .chunk_size(1)
            .build()
            .expect("start the pool");
        let ours = Self {
            pool: Pool::new(WORKERS).expect("start the pool"),
            ones,
            pair: Pair::start(),
        };
        // As Python's side does: one small call first.
        drop(ours.pool.map(plus_one, 0..1000));
        drop(ours.ones.map(plus_one, 0..10));
        ours.pair.message_pings(100);
        ours
    }

    fn once(&self) -> Figures {
        // Each round of Python's side times its map right after a small one on the same
        // pool (its script starts a pool and warms it each round): so does ours, rather
        // than timing a pool asleep through Python's whole run.
        drop(self.pool.map(plus_one, 0..1000));
        let t0 = Instant::now();
        let out = self.pool.map(plus_one, 0..MAP_ITEMS);
        let map = t0.elapsed();
        assert_eq!(out[7], Ok(8));
        let t0 = Instant::now();
        let out = self.ones.map(plus_one, 0..ONE_ITEMS);
        let one = t0.elapsed();
        assert!(out.iter().all(Result::is_ok), "an item failed");
        let trip = self.pair.message_pings(TRIPS);
        let blobs = self.pair.message_stream(BLOBS);
        #[allow(clippy::cast_precision_loss)]
        Figures {
            map_per_s: MAP_ITEMS as f64 / map.as_secs_f64(),
            one_us: us(one) / ONE_ITEMS as f64,
            trip_us: us(trip),
            blobs_per_s: BLOBS as f64 / blobs.as_secs_f64(),
        }
    }
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The rows: each of our figures beside Python's, as how many times faster ours is.
pub(crate) fn rows() -> Vec<Row> {
    eprintln!("[python] Python's multiprocessing beside ours, {ROUNDS} rounds each...");
    let ours = Ours::start();
    let (mut theirs_all, mut ours_all) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        match python_once() {
            Ok(f) => theirs_all.push(f),
            Err(why) => {
                eprintln!("[python] no Python bar: {why}");
                return Vec::new();
            }
        }
        ours_all.push(ours.once());
    }
    let Ours { pair, .. } = ours;
    pair.finish();
    let pick = |all: &[Figures], f: fn(&Figures) -> f64| median(all.iter().map(f).collect());
    let mut rows = Vec::new();
    let mut row = |figure: &str, unit: &str, f: fn(&Figures) -> f64, higher_is_better: bool| {
        let (o, t) = (pick(&ours_all, f), pick(&theirs_all, f));
        let speedup = if higher_is_better { o / t } else { t / o };
        rows.push(Row {
            figure: format!("vs Python: {figure}"),
            measured: format!("{} {unit}", shown(o)),
            floor: format!("{} {unit} (python3)", shown(t)),
            ratio: format!("{speedup:.2}x faster"),
            checked: speedup,
            target: Target::AtLeast(BAR),
            target_text: format!(">= {BAR:.0}x faster"),
        });
    };
    row(
        "map of 100k x+1, 2 workers",
        "items/s",
        |f| f.map_per_s,
        true,
    );
    row("map, chunks of one, per item", "us", |f| f.one_us, false);
    row("round trip parent-child", "us", |f| f.trip_us, false);
    row("1 KiB child->parent", "msg/s", |f| f.blobs_per_s, true);
    rows
}

/// A figure with three significant digits, in plain or scaled units.
fn shown(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}
