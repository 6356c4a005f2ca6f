//! The message figures: a round trip and a stream of 1 KiB messages, each beside a raw
//! Unix stream between the same two processes, and a thousand children talking at
//! once.
//!
//! The raw floor runs inside the very child that serves the messages: its `preloop`
//! connects to a listener of the parent and serves it from a thread of its own, so the
//! floor and the figure share the processes, the machine's state and the run.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{us, Row, Stats, Target};

/// Round trips per block, and blocks per side (raw and messages alternate).
const PING_ROUNDS: usize = 2_000;
const PING_BLOCKS: usize = 10;
/// 1 KiB messages per block of the stream figure, and blocks per side.
const STREAM_MESSAGES: usize = 50_000;
const STREAM_BLOCKS: usize = 6;
/// Bytes of one stream message.
const KIB: usize = 1024;
/// Children of the fan-out figure, and messages each exchanges with the parent.
const FAN_CHILDREN: usize = 1_000;
const FAN_MESSAGES: u64 = 100;

/// What the parent asks of the [`Echo`] child.
#[derive(Serialize, Deserialize)]
enum Cmd {
    /// Answer with [`Pong`] carrying the same number.
    Ping(u64),
    /// Tell this many [`Blob`]s of [`KIB`] bytes.
    Stream(u64),
}

/// The answer to a [`Cmd::Ping`].
#[derive(Serialize, Deserialize)]
struct Pong(u64);

/// One message of the stream figure: bytes as one block (`serde_bytes`), the way to
/// send a byte payload; a plain `Vec<u8>` goes through serde one `u8` at a time.
#[derive(Serialize, Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

/// Serves the parent's commands as messages, and the same commands over a raw Unix
/// stream to `raw_path`, on a thread of its own, until stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Echo {
    /// Where the parent's raw listener is; empty for none.
    raw_path: String,
}

impl Lifecycle for Echo {
    type Output = ();

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        if !self.raw_path.is_empty() && self.raw_path != "done" {
            let stream = UnixStream::connect(&self.raw_path)?;
            std::thread::spawn(move || serve_raw(stream));
            // Once per process, not per lap.
            self.raw_path = "done".into();
        }
        Ok(())
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Cmd>(Duration::from_millis(50)) {
            Ok(Cmd::Ping(n)) => cx.tell(&Pong(n))?,
            Ok(Cmd::Stream(count)) => {
                let blob = Blob(vec![7u8; KIB]);
                for _ in 0..count {
                    cx.tell(&blob)?;
                }
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

/// The raw side of [`Echo`]: a command byte, then 8 bytes: `P` echoes the 8 bytes,
/// `S` writes that many KiB through a buffered writer.
fn serve_raw(stream: UnixStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the raw stream"));
    let mut writer = BufWriter::with_capacity(64 * KIB, stream);
    let blob = [7u8; KIB];
    loop {
        let mut cmd = [0u8; 9];
        if reader.read_exact(&mut cmd).is_err() {
            return;
        }
        let arg: [u8; 8] = cmd[1..].try_into().expect("8 bytes");
        match cmd[0] {
            b'P' => {
                if writer
                    .write_all(&arg)
                    .and_then(|()| writer.flush())
                    .is_err()
                {
                    return;
                }
            }
            b'S' => {
                for _ in 0..u64::from_le_bytes(arg) {
                    if writer.write_all(&blob).is_err() {
                        return;
                    }
                }
                if writer.flush().is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// An [`Echo`] child with its raw stream connected.
pub(crate) struct Pair {
    handle: Handle<()>,
    raw: UnixStream,
    _dir: TempDir,
}

impl Pair {
    pub(crate) fn start() -> Self {
        let dir = TempDir::new();
        let path = dir.0.join("raw.sock");
        let listener = UnixListener::bind(&path).expect("bind the raw listener");
        let handle = Echo {
            raw_path: path.to_string_lossy().into_owned(),
        }
        .start()
        .expect("start the echo child");
        let (raw, _) = listener.accept().expect("the child connects");
        Self {
            handle,
            raw,
            _dir: dir,
        }
    }

    /// Mean time of one raw round trip over `rounds`.
    fn raw_pings(&mut self, rounds: usize) -> Duration {
        let t0 = Instant::now();
        let mut back = [0u8; 8];
        for n in 0..rounds as u64 {
            let mut cmd = [b'P'; 9];
            cmd[1..].copy_from_slice(&n.to_le_bytes());
            self.raw.write_all(&cmd).expect("raw write");
            self.raw.read_exact(&mut back).expect("raw read");
            assert_eq!(u64::from_le_bytes(back), n);
        }
        t0.elapsed() / u32::try_from(rounds).expect("rounds fit u32")
    }

    /// Mean time of one `tell` then `listen` round trip over `rounds`.
    pub(crate) fn message_pings(&self, rounds: usize) -> Duration {
        let t0 = Instant::now();
        for n in 0..rounds as u64 {
            self.handle.tell(&Cmd::Ping(n)).expect("tell");
            let Pong(m) = self.handle.listen(None).expect("listen");
            assert_eq!(m, n);
        }
        t0.elapsed() / u32::try_from(rounds).expect("rounds fit u32")
    }

    /// CPU time of this process and of the child so far (see [`Cpu`]).
    fn cpu(&self) -> [Cpu; 2] {
        [Cpu::of(std::process::id()), Cpu::of(self.handle.pid())]
    }

    /// Time to receive `count` KiB over the raw stream, buffered on both sides.
    fn raw_stream(&mut self, count: usize) -> Duration {
        let t0 = Instant::now();
        let mut cmd = [b'S'; 9];
        cmd[1..].copy_from_slice(&(count as u64).to_le_bytes());
        self.raw.write_all(&cmd).expect("raw write");
        let mut reader = BufReader::with_capacity(64 * KIB, &self.raw);
        let mut blob = [0u8; KIB];
        for _ in 0..count {
            reader.read_exact(&mut blob).expect("raw read");
        }
        assert_eq!(blob[KIB - 1], 7);
        t0.elapsed()
    }

    /// Time to receive `count` 1 KiB messages.
    pub(crate) fn message_stream(&self, count: usize) -> Duration {
        let t0 = Instant::now();
        self.handle.tell(&Cmd::Stream(count as u64)).expect("tell");
        for _ in 0..count {
            let Blob(bytes) = self.handle.listen(None).expect("listen");
            assert_eq!(bytes.len(), KIB);
        }
        t0.elapsed()
    }

    pub(crate) fn finish(self) {
        self.handle.stop();
        self.handle.result().expect("the echo child ends cleanly");
    }
}

/// What the scheduler says of a process's threads, summed: nanoseconds on a CPU, and
/// nanoseconds runnable but waiting for one (`/proc/<pid>/task/*/schedstat`; zero where
/// there is no such file). Where the stream's time goes: its own work, or waiting for
/// the other side's.
#[derive(Clone, Copy, Default)]
struct Cpu {
    run_ns: u64,
    wait_ns: u64,
}

impl Cpu {
    fn of(pid: u32) -> Self {
        let mut total = Self::default();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten();
        for task in tasks.filter_map(Result::ok) {
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            total.run_ns += fields.next().unwrap_or(0);
            total.wait_ns += fields.next().unwrap_or(0);
        }
        total
    }

    /// What was spent between `before` and `after`, added to `self`.
    fn add_between(&mut self, before: Self, after: Self) {
        self.run_ns += after.run_ns.saturating_sub(before.run_ns);
        self.wait_ns += after.wait_ns.saturating_sub(before.wait_ns);
    }
}

/// CPU spent on each side of a stream, per KiB received, as printed beside its row.
fn per_kib(side: &[Cpu; 2], kib: usize) -> String {
    let ns = |v: u64| v as f64 / kib as f64;
    format!(
        "parent {:.0} ns + child {:.0} ns on a CPU, {:.0} + {:.0} ns runnable but waiting",
        ns(side[0].run_ns),
        ns(side[1].run_ns),
        ns(side[0].wait_ns),
        ns(side[1].wait_ns)
    )
}

/// A private directory for the raw socket, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "process-runtime-bench-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&path).expect("create the bench's temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Round trip and stream rows (alone: `--only stream`).
pub(crate) fn pair_rows() -> Vec<Row> {
    eprintln!(
        "[messages] {PING_BLOCKS} x {PING_ROUNDS} round trips and {STREAM_BLOCKS} x {STREAM_MESSAGES} KiB streamed, raw and as messages, alternating..."
    );
    let mut pair = Pair::start();
    pair.raw_pings(200);
    pair.message_pings(200);
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for block in 0..PING_BLOCKS {
        if block % 2 == 0 {
            raw.push(pair.raw_pings(PING_ROUNDS));
        }
        ours.push(pair.message_pings(PING_ROUNDS));
        if block % 2 == 1 {
            raw.push(pair.raw_pings(PING_ROUNDS));
        }
    }
    let (raw_rt, ours_rt) = (Stats::of(&raw), Stats::of(&ours));
    let rt_ratio = ours_rt.median.as_secs_f64() / raw_rt.median.as_secs_f64();

    pair.raw_stream(STREAM_MESSAGES / 10);
    pair.message_stream(STREAM_MESSAGES / 10);
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    let (mut raw_cpu, mut ours_cpu) = ([Cpu::default(); 2], [Cpu::default(); 2]);
    let timed = |pair: &mut Pair, cpu: &mut [Cpu; 2], run: &dyn Fn(&mut Pair) -> Duration| {
        let before = pair.cpu();
        let took = run(pair);
        let after = pair.cpu();
        for side in 0..2 {
            cpu[side].add_between(before[side], after[side]);
        }
        took
    };
    let raw_run = |p: &mut Pair| p.raw_stream(STREAM_MESSAGES);
    let ours_run = |p: &mut Pair| p.message_stream(STREAM_MESSAGES);
    for block in 0..STREAM_BLOCKS {
        if block % 2 == 0 {
            raw.push(timed(&mut pair, &mut raw_cpu, &raw_run));
        }
        ours.push(timed(&mut pair, &mut ours_cpu, &ours_run));
        if block % 2 == 1 {
            raw.push(timed(&mut pair, &mut raw_cpu, &raw_run));
        }
    }
    pair.finish();
    // As many blocks of each.
    let kib = STREAM_BLOCKS * STREAM_MESSAGES;
    println!("  stream, per KiB: messages: {}", per_kib(&ours_cpu, kib));
    println!("  stream, per KiB: raw:      {}", per_kib(&raw_cpu, kib));
    let mib_s = |d: Duration| (STREAM_MESSAGES * KIB) as f64 / d.as_secs_f64() / f64::from(1 << 20);
    let (raw_s, ours_s) = (Stats::of(&raw), Stats::of(&ours));
    let (raw_rate, ours_rate) = (mib_s(raw_s.median), mib_s(ours_s.median));
    let stream_ratio = ours_rate / raw_rate;
    vec![
        Row {
            figure: "round trip, tell + listen (echo of a u64)".into(),
            measured: format!(
                "{:.1} us (p10 {:.1}, p90 {:.1}, n={} blocks)",
                us(ours_rt.median),
                us(ours_rt.p10),
                us(ours_rt.p90),
                ours_rt.n
            ),
            floor: format!("{:.1} us raw Unix stream ping-pong", us(raw_rt.median)),
            ratio: format!("{rt_ratio:.2}x"),
            checked: rt_ratio,
            target: Target::AtMost(1.1),
            target_text: "<= 1.1x".into(),
        },
        Row {
            figure: "1 KiB messages child -> parent (inverse ratio: floor / ours)".into(),
            measured: format!("{ours_rate:.0} MiB/s ({:.0} k msg/s)", ours_rate * 1.024),
            floor: format!("{raw_rate:.0} MiB/s raw buffered Unix stream"),
            ratio: format!("{stream_ratio:.2}x of raw"),
            checked: 1.0 / stream_ratio,
            target: Target::AtMost(1.0 / 0.8),
            target_text: ">= 0.8x of raw".into(),
        },
    ]
}

/// A child of the fan-out figure: answers each `Ping` until stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Responder;

impl Lifecycle for Responder {
    type Output = u64;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Cmd>(Duration::from_millis(200)) {
            Ok(Cmd::Ping(n)) => cx.tell(&Pong(n + 1))?,
            Ok(Cmd::Stream(_)) | Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

/// A bare process for the fan-out figure's reference: starts, ends.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Bare;

impl Lifecycle for Bare {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// This process's thread count, from `/proc/self/status`.
pub(crate) fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Zombie children of this process.
pub(crate) fn zombies() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next();
            state == Some("Z") && ppid == Some(me.as_str())
        })
        .count()
}

/// A thousand children alive at once, each exchanging messages with the parent.
fn fan_rows() -> Vec<Row> {
    eprintln!("[messages] {FAN_CHILDREN} bare starts, then {FAN_CHILDREN} children x {FAN_MESSAGES} round trips...");
    let fds_before = descriptors();
    let t0 = Instant::now();
    let bare: Vec<_> = (0..FAN_CHILDREN)
        .map(|_| Bare.start().expect("start a bare child"))
        .collect();
    for h in &bare {
        h.result().expect("a bare child ends cleanly");
    }
    let bare_time = t0.elapsed();
    drop(bare);

    let t0 = Instant::now();
    let children: Vec<_> = (0..FAN_CHILDREN)
        .map(|_| Responder.start().expect("start a responder"))
        .collect();
    let mut peak_threads = threads();
    for n in 0..FAN_MESSAGES {
        for h in &children {
            h.tell(&Cmd::Ping(n)).expect("tell");
        }
        for h in &children {
            let Pong(m) = h.listen(Duration::from_secs(60)).expect("listen");
            assert_eq!(m, n + 1);
        }
        peak_threads = peak_threads.max(threads());
    }
    for h in &children {
        h.stop();
    }
    for h in &children {
        h.result().expect("a responder ends cleanly");
    }
    let chat_time = t0.elapsed();
    drop(children);
    let fds_after = descriptors();
    let zombies = zombies();
    println!(
        "  fan-out: {FAN_CHILDREN} children, peak {peak_threads} threads in the parent, descriptors {fds_before} before and {fds_after} after, {zombies} zombies"
    );
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    assert_eq!(zombies, 0, "zombies left");
    let ratio = chat_time.as_secs_f64() / bare_time.as_secs_f64();
    vec![Row {
        figure: format!("{FAN_CHILDREN} children x {FAN_MESSAGES} round trips, all alive"),
        measured: format!(
            "{:.2} s, peak {peak_threads} parent threads",
            chat_time.as_secs_f64()
        ),
        floor: format!(
            "{:.2} s for {FAN_CHILDREN} bare starts",
            bare_time.as_secs_f64()
        ),
        ratio: format!("{ratio:.2}x"),
        checked: ratio,
        target: Target::None,
        target_text: "all complete".into(),
    }]
}

/// The message figures.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = pair_rows();
    rows.extend(fan_rows());
    rows
}
