//! The supervisor figures: how long a `OneForOne` supervisor takes from a child's
//! SIGKILL to its replacement running, beside a cold start of the same child measured
//! in the same run (both up to the child's first message reaching this process); and
//! a supervision tree under fire (3 supervisors, 30 workers, one worker killed every
//! 50 ms for 10 s): restarts missed, orphans left, supervisors that gave up.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use process_runtime::node::{self, Pid};
use process_runtime::prelude::*;
use process_runtime::{ChildSpec, Strategy, Supervisor};
use serde::{Deserialize, Serialize};

use crate::{floor_once, ms, Row, Stats, Target};

/// Samples of the restart figure (and of the cold start beside it).
const RUNS: usize = 100;
/// The restart figure's intensity period, which is also the quiet period after which
/// a restart starts at once.
const QUIET: Duration = Duration::from_millis(50);
/// The tree: workers under each of the two child supervisors.
const WORKERS_PER_SUB: usize = 15;
/// The tree: one kill every ...
const KILL_EVERY: Duration = Duration::from_millis(50);
/// ... for this long.
const FIRE_FOR: Duration = Duration::from_secs(10);

/// What a member tells the root as soon as it runs.
#[derive(Serialize, Deserialize, Debug)]
struct Running {
    name: String,
    os_pid: u32,
}

/// A supervised child that tells the root it runs, then idles until stopped.
#[derive(Process, Serialize, Deserialize)]
pub(crate) struct Member {
    name: String,
}

impl Lifecycle for Member {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            node::send(
                Pid::ROOT,
                &Running {
                    name: self.name.clone(),
                    os_pid: std::process::id(),
                },
            )?;
        }
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

fn next_running() -> Running {
    node::receive::<Running>(Duration::from_secs(30)).expect("a member reports that it runs")
}

fn sigkill(os_pid: u32) {
    let pid = i32::try_from(os_pid).expect("a pid fits an i32");
    // SAFETY: a plain signal to a child this program started and that it reaps.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// A cold start of a member: `start()` to its first message here.
fn cold_once(n: usize, steps: &mut Steps) -> Duration {
    process_runtime::__testing::record_timeline(true);
    let t0 = Instant::now();
    let h = Member {
        name: format!("cold-{n}"),
    }
    .start()
    .expect("start");
    let running = next_running();
    let took = t0.elapsed();
    let mut marks = process_runtime::__testing::timeline();
    process_runtime::__testing::record_timeline(false);
    marks.push(("the child's message received", t0 + took));
    steps.add(t0, &marks);
    assert_eq!(running.name, format!("cold-{n}"));
    h.kill();
    h.wait();
    took
}

/// SIGKILLs the supervised child running as `current`; returns the time until its
/// replacement reports, and the replacement's OS pid. The runtime's marks of the
/// restart's steps are added to `steps`, as offsets from the kill.
fn kill_once(current: u32, steps: &mut Steps) -> (Duration, u32) {
    process_runtime::__testing::record_timeline(true);
    let t0 = Instant::now();
    sigkill(current);
    let running = next_running();
    let took = t0.elapsed();
    let mut marks = process_runtime::__testing::timeline();
    process_runtime::__testing::record_timeline(false);
    marks.push(("the child's message received", t0 + took));
    steps.add(t0, &marks);
    assert_ne!(running.os_pid, current);
    (took, running.os_pid)
}

/// The steps of many restarts: for each step (a mark's name, and which occurrence of
/// it within one restart), its offsets from the kill.
#[derive(Default)]
struct Steps(Vec<((&'static str, usize), Vec<Duration>)>);

impl Steps {
    fn add(&mut self, t0: Instant, marks: &[(&'static str, Instant)]) {
        let mut seen: HashMap<&'static str, usize> = HashMap::new();
        for &(name, at) in marks {
            let n = seen.entry(name).or_default();
            *n += 1;
            let key = (name, *n);
            let offset = at.saturating_duration_since(t0);
            match self.0.iter_mut().find(|(k, _)| *k == key) {
                Some((_, offsets)) => offsets.push(offset),
                None => self.0.push((key, vec![offset])),
            }
        }
    }

    /// The median offset of each step from the kill, in the order of those medians.
    fn print(&self, what: &str, from: &str) {
        let mut rows: Vec<(Duration, String, usize)> = self
            .0
            .iter()
            .map(|((name, n), offsets)| {
                let label = if *n > 1 {
                    format!("{name} (#{n})")
                } else {
                    (*name).to_owned()
                };
                (Stats::of(offsets).median, label, offsets.len())
            })
            .collect();
        rows.sort();
        eprintln!("[supervisor] where the time of {what} goes (median from {from}):");
        for (median, label, n) in rows {
            eprintln!("[supervisor]   {:>8.3} ms  {label} (n={n})", ms(median));
        }
    }
}

/// Waits longer than the intensity period: each restart comes after a quiet period,
/// so the backoff lets it start at once, as a single crash would.
///
/// The wait comes before the floor and the cold start of a round, not between them and
/// the kill: the three are measured alike, each right after the one before. (A kill
/// right after a long sleep would also time the cores waking from their idle states,
/// which the cold start beside it would not pay.)
fn quiet() {
    std::thread::sleep(QUIET + Duration::from_millis(10));
}

/// Waits until `n` warm children are ready, so that a restart finds one.
fn warm_ready(n: usize) {
    let t0 = Instant::now();
    while process_runtime::__testing::warm_pids().len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "warm children never got ready"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The restart figures (cold, then with warm children), and the cold start and floor
/// beside them.
fn restart_rows() -> Vec<Row> {
    eprintln!("[supervisor] {RUNS} SIGKILLs of a supervised child beside {RUNS} cold starts, then {RUNS} with keep_warm(2)...");
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(u32::MAX, QUIET)
        .child(ChildSpec::new(
            "bench.member",
            Member {
                name: "bench.member".into(),
            },
        ))
        .start()
        .expect("start the supervisor");
    let mut current = next_running().os_pid;
    let (mut cold, mut restart, mut warm, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut start_steps, mut cold_steps, mut warm_steps) =
        (Steps::default(), Steps::default(), Steps::default());
    for round in 0..RUNS {
        quiet();
        floor.push(floor_once());
        cold.push(cold_once(round, &mut start_steps));
        let (took, next) = kill_once(current, &mut cold_steps);
        restart.push(took);
        current = next;
    }
    process_runtime::keep_warm(2).expect("keep warm children");
    for _ in 0..RUNS {
        quiet();
        warm_ready(2);
        let (took, next) = kill_once(current, &mut warm_steps);
        warm.push(took);
        current = next;
    }
    start_steps.print("a cold start, from start()", "start()");
    cold_steps.print("a restart", "the SIGKILL");
    warm_steps.print("a restart with keep_warm(2)", "the SIGKILL");
    process_runtime::keep_warm(0).expect("end the warm children");
    let restarts = sup.which_children()[0].restarts;
    sup.stop();
    assert_eq!(restarts as usize, 2 * RUNS);
    let (cold, floor) = (Stats::of(&cold), Stats::of(&floor));
    let row = |figure: &str, samples: &[Duration]| {
        let stats = Stats::of(samples);
        let ratio = stats.median.as_secs_f64() / cold.median.as_secs_f64();
        Row {
            figure: figure.into(),
            measured: stats.ms(),
            floor: format!(
                "{} cold start to running ({:.3} ms re-exec floor)",
                cold.ms(),
                ms(floor.median)
            ),
            ratio: format!("{ratio:.3}x"),
            checked: ratio,
            target: Target::AtMost(1.3),
            target_text: "<= 1.3x a cold start".into(),
        }
    };
    vec![
        row(
            "supervisor: SIGKILL to replacement running (OneForOne)",
            &restart,
        ),
        row("  the same with keep_warm(2)", &warm),
    ]
}

/// xorshift64: which worker to kill next; no need for more.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).expect("below n")
    }
}

/// The tree under fire.
fn tree_rows() -> Vec<Row> {
    let workers = 2 * WORKERS_PER_SUB;
    eprintln!(
        "[supervisor] tree of 3 supervisors and {workers} workers, one SIGKILL every {KILL_EVERY:?} for {FIRE_FOR:?}..."
    );
    // Each child supervisor allows more restarts per second than the kills can make
    // (at most 20 within any second, all of them its own), so it must never give up.
    let sub = |s: usize| {
        let mut sup = Supervisor::new(Strategy::OneForOne).intensity(25, Duration::from_secs(1));
        for w in 0..WORKERS_PER_SUB {
            let name = format!("tree.{s}.{w}");
            sup = sup.child(ChildSpec::new(name.clone(), Member { name }));
        }
        sup
    };
    let root = Supervisor::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(1))
        .child(ChildSpec::supervisor("tree.sub0", sub(0)))
        .child(ChildSpec::supervisor("tree.sub1", sub(1)))
        .start()
        .expect("start the tree");
    let mut current: HashMap<String, u32> = HashMap::new();
    let mut seen: HashSet<u32> = HashSet::new();
    let mut record = |r: Running, current: &mut HashMap<String, u32>| {
        seen.insert(r.os_pid);
        current.insert(r.name, r.os_pid);
    };
    while current.len() < workers {
        record(next_running(), &mut current);
    }
    let names: Vec<String> = current.keys().cloned().collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut killed: HashSet<u32> = HashSet::new();
    let mut waiting_restart: HashSet<String> = HashSet::new();
    let began = Instant::now();
    let mut next = began;
    let mut skipped = 0usize;
    while began.elapsed() < FIRE_FOR {
        // Take in whatever reports arrived, until the next kill is due.
        loop {
            let left = next.saturating_duration_since(Instant::now());
            match node::receive::<Running>(left) {
                Ok(r) => {
                    waiting_restart.remove(&r.name);
                    record(r, &mut current);
                }
                Err(RecvError::Timeout) => break,
                Err(e) => panic!("receive: {e}"),
            }
        }
        next += KILL_EVERY;
        let name = &names[dice.below(names.len())];
        if waiting_restart.contains(name) {
            // Its replacement has not reported yet: the pid to kill is not known.
            skipped += 1;
            continue;
        }
        sigkill(current[name]);
        killed.insert(current[name]);
        waiting_restart.insert(name.clone());
    }
    // Every killed worker must come back.
    let settle = Instant::now() + Duration::from_secs(30);
    while !waiting_restart.is_empty() && Instant::now() < settle {
        if let Ok(r) = node::receive::<Running>(Duration::from_millis(100)) {
            waiting_restart.remove(&r.name);
            record(r, &mut current);
        }
    }
    let missed = waiting_restart.len();
    let gave_up = root.wait_timeout(Duration::ZERO).is_some()
        || root.which_children().iter().any(|c| c.restarts > 0);
    let kills = killed.len();
    root.stop();
    // No orphan: every worker process that ever ran is gone once the tree stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = |pid: &&u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    while seen.iter().any(|p| alive(&p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let orphans = seen.iter().filter(alive).count();
    let info = format!(
        "{kills} kills ({skipped} ticks skipped: target not back yet), {} worker processes",
        seen.len()
    );
    #[allow(clippy::cast_precision_loss)]
    let (missed_f, orphans_f) = (missed as f64, orphans as f64);
    vec![
        Row {
            figure: "supervision tree under fire: restarts missed".into(),
            measured: format!("{missed} of {kills}"),
            floor: info,
            ratio: "-".into(),
            checked: missed_f,
            target: Target::AtMost(0.0),
            target_text: "0".into(),
        },
        Row {
            figure: "  orphans left after stop".into(),
            measured: orphans.to_string(),
            floor: "-".into(),
            ratio: "-".into(),
            checked: orphans_f,
            target: Target::AtMost(0.0),
            target_text: "0".into(),
        },
        Row {
            figure: "  a supervisor gave up (intensity tripped)".into(),
            measured: if gave_up { "yes" } else { "no" }.into(),
            floor: "-".into(),
            ratio: "-".into(),
            checked: f64::from(u8::from(gave_up)),
            target: Target::AtMost(0.0),
            target_text: "no".into(),
        },
    ]
}

/// The supervisor figures.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = restart_rows();
    rows.extend(tree_rows());
    rows
}
