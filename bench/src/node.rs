//! The node's figures: a round trip between two sibling children by pid, beside a raw
//! Unix stream ping-pong between the same two processes; the latency of a `Down` to a
//! monitoring sibling after a SIGKILL from outside; a thousand processes registered,
//! linked in a chain and monitored, whose head is killed.
//!
//! Every floor runs in the same processes as its figure, in the same run: the raw
//! stream is served by the very sibling that answers the pings, and the pinging sibling
//! alternates blocks of both.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use process_runtime::node::{self, Down, ExitReason, Pid};
use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::messages::{descriptors, threads, zombies, TempDir};
use crate::{ms, us, Row, Stats, Target};

/// Round trips per block, and blocks per side (raw and node alternate).
const PING_ROUNDS: u32 = 2_000;
const PING_BLOCKS: usize = 10;
/// Kills of the `Down` latency figure.
const DOWN_RUNS: usize = 40;
/// Processes of the chain figure.
const CHAIN: usize = 1_000;

/// A ping between siblings, by pid.
#[derive(Serialize, Deserialize)]
struct Ping(u64);

/// The answer to a [`Ping`].
#[derive(Serialize, Deserialize)]
struct Pong(u64);

/// Answers every [`Ping`] of the node with a [`Pong`] to its sender, and serves the
/// same pings over a raw Unix stream from a listener at `raw_path`, until stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Ponger {
    raw_path: String,
}

impl Lifecycle for Ponger {
    type Output = ();

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        // The preloop runs before each lap: the listener is bound once.
        if self.raw_path.is_empty() {
            return Ok(());
        }
        let listener = UnixListener::bind(std::mem::take(&mut self.raw_path))?;
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                serve_raw(stream);
            }
        });
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        match node::receive_from::<Ping>(Duration::from_millis(50)) {
            Ok((from, Ping(n))) => node::send(from, &Pong(n))?,
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Echoes 8 bytes at a time.
fn serve_raw(mut stream: UnixStream) {
    let mut buf = [0u8; 8];
    while stream.read_exact(&mut buf).is_ok() {
        if stream.write_all(&buf).is_err() {
            return;
        }
    }
}

/// Pings its sibling `to`, in blocks of [`PING_ROUNDS`]: node blocks, and raw blocks
/// over the sibling's stream at `raw_path`, alternating. Returns the mean round trip
/// of each block, in nanoseconds: (raw, node).
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "none")]
struct Pinger {
    to: Pid,
    raw_path: String,
}

impl Pinger {
    fn node_block(&self, rounds: u32) -> Result<u64, BoxError> {
        let t0 = Instant::now();
        for n in 0..u64::from(rounds) {
            node::send(self.to, &Ping(n))?;
            let Pong(m) = node::receive(Duration::from_secs(30))
                .map_err(|e| format!("no pong for ping {n} of {rounds}: {e}"))?;
            assert_eq!(m, n, "a pong out of turn");
        }
        Ok(nanos(t0.elapsed() / rounds))
    }

    fn raw_block(stream: &mut UnixStream, rounds: u32) -> Result<u64, BoxError> {
        let t0 = Instant::now();
        let mut back = [0u8; 8];
        for n in 0..u64::from(rounds) {
            stream.write_all(&n.to_le_bytes())?;
            stream.read_exact(&mut back)?;
            assert_eq!(u64::from_le_bytes(back), n, "a raw pong out of turn");
        }
        Ok(nanos(t0.elapsed() / rounds))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Lifecycle for Pinger {
    type Output = (Vec<u64>, Vec<u64>);

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(Vec<u64>, Vec<u64>), BoxError> {
        // The sibling binds its listener in its preloop: wait for it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match UnixStream::connect(&self.raw_path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Self::raw_block(&mut stream, 200)?;
        self.node_block(200)?;
        let (mut raw, mut ours) = (Vec::new(), Vec::new());
        for block in 0..PING_BLOCKS {
            if block % 2 == 0 {
                raw.push(Self::raw_block(&mut stream, PING_ROUNDS)?);
            }
            ours.push(self.node_block(PING_ROUNDS)?);
            if block % 2 == 1 {
                raw.push(Self::raw_block(&mut stream, PING_ROUNDS)?);
            }
        }
        Ok((raw, ours))
    }
}

/// The sibling round trip, beside a raw stream between the same siblings.
fn sibling_rows() -> Vec<Row> {
    eprintln!(
        "[node] {PING_BLOCKS} x {PING_ROUNDS} round trips between two siblings, raw and by pid, alternating..."
    );
    let dir = TempDir::new();
    let raw_path = dir.0.join("sibling.sock").to_string_lossy().into_owned();
    let ponger = Ponger {
        raw_path: raw_path.clone(),
    }
    .start()
    .expect("start the ponger");
    let pinger = Pinger {
        to: ponger.id(),
        raw_path,
    }
    .start()
    .expect("start the pinger");
    let (raw, ours) = pinger.result().expect("the pinger's blocks");
    ponger.stop();
    ponger.result().expect("the ponger ends cleanly");
    let durations = |v: Vec<u64>| v.into_iter().map(Duration::from_nanos).collect::<Vec<_>>();
    let (raw, ours) = (Stats::of(&durations(raw)), Stats::of(&durations(ours)));
    let ratio = ours.median.as_secs_f64() / raw.median.as_secs_f64();
    vec![Row {
        figure: "sibling round trip, node::send + receive by pid".into(),
        measured: format!(
            "{:.1} us (p10 {:.1}, p90 {:.1}, n={} blocks)",
            us(ours.median),
            us(ours.p10),
            us(ours.p90),
            ours.n
        ),
        floor: format!(
            "{:.1} us raw Unix stream ping-pong, same siblings",
            us(raw.median)
        ),
        ratio: format!("{ratio:.2}x"),
        checked: ratio,
        target: Target::AtMost(1.5),
        target_text: "<= 1.5x".into(),
    }]
}

/// Sleeps until killed or stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Victim;

impl Lifecycle for Victim {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// What the root asks of the [`DownWatcher`].
#[derive(Serialize, Deserialize)]
struct Watch(Pid);

/// The watcher's word that its monitor is made.
#[derive(Serialize, Deserialize)]
struct Watching;

/// The monotonic clock when the watcher took the `Down`, in nanoseconds.
#[derive(Serialize, Deserialize)]
struct TookDown(u64);

/// For each [`Watch`]: monitors the pid, says so, and tells the parent when its `Down`
/// was taken, until stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct DownWatcher;

impl Lifecycle for DownWatcher {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Watch>(Duration::from_millis(50)) {
            Ok(Watch(pid)) => {
                let mref = node::monitor(pid);
                cx.tell(&Watching)?;
                let down: Down = node::receive(Duration::from_secs(30))?;
                let took = monotonic_ns();
                assert_eq!(down.monitor, mref, "a Down of another monitor");
                assert!(
                    matches!(down.reason, ExitReason::Error(ProcessError::Crashed { .. })),
                    "{:?}",
                    down.reason
                );
                cx.tell(&TookDown(took))?;
            }
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The system's monotonic clock, the same in every process of the machine (so a time
/// taken in one process compares with one taken in another).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a plain system call writing into a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    u64::try_from(ts.tv_sec).expect("a positive clock") * 1_000_000_000
        + u64::try_from(ts.tv_nsec).expect("a positive clock")
}

fn kill_9(os_pid: u32) {
    let pid = libc::pid_t::try_from(os_pid).expect("an OS pid fits pid_t");
    // SAFETY: a plain system call on a process of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill");
}

/// The floor: from a SIGKILL to `wait` returning for a plain child (`sleep`), which
/// is as soon as any parent can know of the death.
fn plain_kill_once() -> Duration {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    std::thread::sleep(Duration::from_millis(2));
    let t0 = Instant::now();
    kill_9(child.id());
    child.wait().expect("wait for sleep");
    t0.elapsed()
}

/// A function run as a process: sleeps until killed.
fn sleep_long(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

/// Kills `victim` from outside while `watcher` monitors it; returns the time from the
/// SIGKILL to the watcher's taking the `Down`.
fn down_once<T>(watcher: &Handle<()>, victim: &Handle<T>) -> Duration
where
    T: serde::de::DeserializeOwned + Clone + std::fmt::Debug + 'static,
{
    watcher.tell(&Watch(victim.id())).expect("tell the watcher");
    let Watching = watcher
        .listen(Duration::from_secs(30))
        .expect("the watcher monitors");
    let killed = monotonic_ns();
    kill_9(victim.pid());
    let TookDown(took) = watcher
        .listen(Duration::from_secs(30))
        .expect("the watcher took its Down");
    assert!(victim.result().is_err(), "a victim killed by SIGKILL fails");
    Duration::from_nanos(took.saturating_sub(killed))
}

/// The `Down` latency after a SIGKILL from outside, to a monitoring sibling: for a
/// `Process` struct, whose `error` hook runs in a new child before its end is known
/// (so the `Down` waits for that child), and for a function run as a process, which
/// has no hook.
fn down_rows() -> Vec<Row> {
    eprintln!("[node] {DOWN_RUNS} x 2 SIGKILLs of a monitored sibling...");
    let watcher = DownWatcher.start().expect("start the watcher");
    let (mut structs, mut functions, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..DOWN_RUNS {
        let victim = Victim.start().expect("start a victim");
        structs.push(down_once(&watcher, &victim));
        let victim = process_runtime::spawn(30, sleep_long).expect("spawn a victim");
        functions.push(down_once(&watcher, &victim));
        floors.push(plain_kill_once());
    }
    watcher.stop();
    watcher.result().expect("the watcher ends cleanly");
    let floor = Stats::of(&floors);
    let row = |figure: &str, samples: &[Duration]| {
        let max = samples.iter().max().copied().unwrap_or_default();
        let ours = Stats::of(samples);
        Row {
            figure: figure.into(),
            measured: format!(
                "{:.3} ms (p90 {:.3}, max {:.3}, n={})",
                ms(ours.median),
                ms(ours.p90),
                ms(max),
                ours.n
            ),
            floor: format!("{:.3} ms kill to wait() of a plain child", ms(floor.median)),
            ratio: format!(
                "{:.2}x",
                ours.median.as_secs_f64() / floor.median.as_secs_f64()
            ),
            checked: ms(ours.median),
            target: Target::AtMost(5.0),
            target_text: "median <= 5 ms".into(),
        }
    };
    vec![
        row(
            "Down to a sibling after SIGKILL: a struct (error hook)",
            &structs,
        ),
        row(
            "Down to a sibling after SIGKILL: a spawned function",
            &functions,
        ),
    ]
}

/// One link of the chain: registers itself as `name`, links to `prev`, says so to its
/// parent, then sleeps until an exit signal ends it.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct ChainLink {
    name: String,
    prev: Option<Pid>,
}

/// A link's word that it is registered and linked.
#[derive(Serialize, Deserialize)]
struct Linked;

impl Lifecycle for ChainLink {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        // Set up on the first lap only: the name is taken once.
        if !self.name.is_empty() {
            node::register(&std::mem::take(&mut self.name), cx.id())?;
            if let Some(prev) = self.prev {
                node::link(prev)?;
            }
            cx.tell(&Linked)?;
        }
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// What the chain figure counted.
struct ChainRun {
    /// From the SIGKILL of the head to the last `Down`.
    took: Duration,
    /// `Down`s received, and how many monitors had more than one.
    downs: usize,
    /// Processes whose outcome was `Linked` from their predecessor.
    linked: usize,
}

/// `n` processes registered, linked in a chain and monitored by the root; the head is
/// killed with SIGKILL: checks that every monitor fires once, every link once (each
/// process but the head ends with `Linked` from its predecessor), and that no name,
/// process, descriptor, thread or zombie is left.
fn chain_once(n: usize) -> ChainRun {
    let fds_before = descriptors();
    let threads_before = threads();
    let mut handles: Vec<Handle<()>> = Vec::with_capacity(n);
    let mut monitors = BTreeMap::new();
    for i in 0..n {
        let h = ChainLink {
            name: format!("chain-{i}"),
            prev: handles.last().map(Handle::id),
        }
        .start()
        .expect("start a link of the chain");
        if h.listen::<Linked>(Duration::from_secs(60)).is_err() {
            panic!("link {i} of the chain: {:?}", h.result());
        }
        monitors.insert(node::monitor(h.id()), h.id());
        handles.push(h);
    }
    assert_eq!(node::registered().len(), n, "every link registered");
    let t0 = Instant::now();
    kill_9(handles[0].pid());
    let mut downs = 0;
    while !monitors.is_empty() {
        let down: Down = node::receive(Duration::from_secs(60)).expect("a Down");
        let pid = monitors
            .remove(&down.monitor)
            .expect("one Down per monitor");
        assert_eq!(pid, down.pid);
        downs += 1;
    }
    let took = t0.elapsed();
    let no_more: Result<Down, _> = node::receive(Duration::from_millis(100));
    assert!(no_more.is_err(), "a Down too many");
    let mut linked = 0;
    for (i, h) in handles.iter().enumerate() {
        match h.result() {
            Err(ProcessError::Crashed { .. }) if i == 0 => {}
            Err(ProcessError::Linked { from, .. }) if i > 0 && from == handles[i - 1].id() => {
                linked += 1;
            }
            other => panic!("link {i} of the chain ended with {other:?}"),
        }
    }
    drop(handles);
    assert!(node::registered().is_empty(), "names left");
    assert_eq!(node::processes(), vec![Pid::ROOT], "processes left");
    let (fds_after, threads_after, zombies) = (descriptors(), threads(), zombies());
    println!(
        "  chain of {n}: {downs} Downs, {linked} Linked ends, descriptors {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}, {zombies} zombies"
    );
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    assert_eq!(threads_after, threads_before, "threads leaked");
    assert_eq!(zombies, 0, "zombies left");
    ChainRun {
        took,
        downs,
        linked,
    }
}

/// The floor of the chain: `n` bare children killed at once with SIGKILL, until every
/// result is in.
fn kill_all_once(n: usize) -> Duration {
    let handles: Vec<_> = (0..n)
        .map(|_| Victim.start().expect("start a victim"))
        .collect();
    let t0 = Instant::now();
    for h in &handles {
        kill_9(h.pid());
    }
    for h in &handles {
        assert!(h.result().is_err());
    }
    t0.elapsed()
}

fn chain_rows() -> Vec<Row> {
    eprintln!("[node] a chain of {CHAIN} linked, registered, monitored processes...");
    // A small chain first: whatever the runtime starts once (its threads) is started
    // before the counts are taken.
    chain_once(10);
    let run = chain_once(CHAIN);
    assert_eq!(run.downs, CHAIN);
    assert_eq!(run.linked, CHAIN - 1);
    let floor = kill_all_once(CHAIN);
    let ratio = run.took.as_secs_f64() / floor.as_secs_f64();
    vec![Row {
        figure: format!("chain of {CHAIN} linked + monitored, head SIGKILLed"),
        measured: format!(
            "{:.1} ms to the last Down ({} Downs, {} Linked, nothing left)",
            ms(run.took),
            run.downs,
            run.linked
        ),
        floor: format!(
            "{:.1} ms {CHAIN} bare children SIGKILLed at once",
            ms(floor)
        ),
        ratio: format!("{ratio:.2}x"),
        checked: ratio,
        target: Target::None,
        target_text: "each fires once".into(),
    }]
}

/// The node figures.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = sibling_rows();
    rows.extend(down_rows());
    rows.extend(chain_rows());
    rows
}
