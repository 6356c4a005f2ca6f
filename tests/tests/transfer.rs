//! `Transfer`: sockets and files handed to processes as descriptors, end to end, on
//! loopback: a listener shared by four workers, an accepted stream handed over in the
//! middle of a conversation, a file written through a handed descriptor, a state's
//! descriptor duplicated for each life, a crash while a descriptor is in flight, the
//! descriptor counts of both sides after a thousand transfers, and frames whose
//! descriptors do not match what they announce (the `fault-injection` feature).
//!
//! Tests that count this process's descriptors hold [`exclusive`] for their whole run;
//! every other test holds [`shared`].

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use process_runtime::__testing::{start_with_fault_frame, tag_of, Fault};
use process_runtime::prelude::*;
use process_runtime_tests::{describe_descriptors, open_descriptors, Scratch};
use serde::{Deserialize, Serialize};

static LOCK: RwLock<()> = RwLock::new(());
static WARM_UP: Once = Once::new();

/// Starts one child that takes a descriptor before the first test, so that the
/// runtime's lazily started threads and descriptors are in every baseline.
fn warm_up() {
    WARM_UP.call_once(|| {
        let (mine, theirs) = UnixStream::pair().unwrap();
        let h = Greeter {
            peer: Transfer::new(theirs),
        }
        .start()
        .unwrap();
        h.result().unwrap();
        h.wait();
        drop(mine);
    });
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    let guard = LOCK.write().unwrap_or_else(PoisonError::into_inner);
    warm_up();
    guard
}

fn shared() -> RwLockReadGuard<'static, ()> {
    let guard = LOCK.read().unwrap_or_else(PoisonError::into_inner);
    warm_up();
    guard
}

/// The number of this process's open descriptors once it has settled back to
/// `baseline` (threads that end after a process close their descriptors a moment
/// later), or what it is after two seconds.
fn settled_descriptors(baseline: usize) -> usize {
    let began = std::time::Instant::now();
    loop {
        let now = open_descriptors();
        if now == baseline || began.elapsed() > Duration::from_secs(2) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The number of this process's open descriptors once it has stopped changing: what
/// earlier tests started may still be closing theirs when a counting test begins.
fn baseline_descriptors() -> usize {
    let mut last = open_descriptors();
    let mut same = 0;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(10));
        let now = open_descriptors();
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 10 {
            break;
        }
    }
    last
}

/// Open descriptors of the calling process.
fn my_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---------------------------------------------------------------------------------
// A state with a socket: the simplest hand-over.

/// Writes a greeting with its pid to the socket it was handed.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Greeter {
    peer: Transfer<UnixStream>,
}

impl Lifecycle for Greeter {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        writeln!(&*self.peer, "hello from {}", std::process::id())?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_socket_in_the_state_reaches_the_child_and_its_copies_close_at_the_end() {
    let _guard = shared();
    let (mine, theirs) = UnixStream::pair().unwrap();
    let h = Greeter {
        peer: Transfer::new(theirs),
    }
    .start()
    .unwrap();
    let pid = h.pid();
    h.result().unwrap();
    h.wait();
    // Every copy of the child's end is closed once the process has ended (the
    // parent's own was dropped with the state, the supervisor's at the end): the
    // greeting, then end-of-file.
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    (&mine).read_to_string(&mut text).unwrap();
    assert_eq!(text, format!("hello from {pid}\n"));
}

// ---------------------------------------------------------------------------------
// One listener, four workers.

/// Accepts on the listener it was handed and answers each connection with its pid;
/// a connection that says `quit` stops it. Returns how many it answered.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "20s")]
struct Acceptor {
    listener: Transfer<TcpListener>,
    served: u32,
}

impl Lifecycle for Acceptor {
    type Output = u32;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let (conn, _) = self.listener.accept()?;
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line)?;
        writeln!(&conn, "{}", std::process::id())?;
        if line.trim() == "quit" {
            cx.stop();
        } else {
            self.served += 1;
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.served)
    }
}

/// Sends `line` on a new connection and returns the answer.
fn ask(addr: std::net::SocketAddr, line: &str) -> String {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(&conn, "{line}").unwrap();
    let mut answer = String::new();
    BufReader::new(&conn).read_line(&mut answer).unwrap();
    answer.trim().to_owned()
}

#[test]
fn a_listener_shared_by_four_workers_is_accepted_on_by_all() {
    let _guard = shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            Acceptor {
                listener: Transfer::new(listener.try_clone().unwrap()),
                served: 0,
            }
            .start()
            .unwrap()
        })
        .collect();
    // The parent keeps its own listener open, but never accepts: every answer comes
    // from a worker.
    let pids: BTreeSet<String> = workers.iter().map(|h| h.pid().to_string()).collect();
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        let who = ask(addr, "who");
        assert!(pids.contains(&who), "{who} is not a worker of {pids:?}");
        seen.insert(who);
        if seen == pids {
            break;
        }
    }
    assert_eq!(seen, pids, "every worker accepted a connection");
    for _ in 0..4 {
        ask(addr, "quit");
    }
    for h in &workers {
        let served = h.result().unwrap();
        assert!(served >= 1, "worker {} served {served}", h.pid());
        assert_eq!(h.exit_code(), Some(0));
    }
}

// ---------------------------------------------------------------------------------
// An accepted stream handed over in the middle of a conversation.

/// A connection handed to a worker.
#[derive(Serialize, Deserialize)]
struct Conn(Transfer<TcpStream>);

/// Finishes the conversations it is handed: reads a question `a+b`, answers the sum
/// and its pid, and closes the connection.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Finisher;

impl Lifecycle for Finisher {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let Conn(conn) = cx.listen::<Conn>(Duration::from_secs(10))?;
        let conn = conn.into_inner();
        let mut question = String::new();
        BufReader::new(&conn).read_line(&mut question)?;
        let (a, b) = question.trim().split_once('+').ok_or("not a sum")?;
        let sum: u32 = a.parse::<u32>()? + b.parse::<u32>()?;
        writeln!(&conn, "{sum} from {}", std::process::id())?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn an_accepted_stream_handed_mid_conversation_is_finished_by_the_worker() {
    let _guard = shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(&conn);
        writeln!(&conn, "hello").unwrap();
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        writeln!(&conn, "2+3").unwrap();
        // The worker's answer, then end-of-file: no copy of the server's end is left
        // open anywhere.
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        (first, rest)
    });
    let worker = Finisher.start().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut hello = String::new();
    BufReader::new(&conn).read_line(&mut hello).unwrap();
    assert_eq!(hello, "hello\n");
    writeln!(&conn, "hi from the parent").unwrap();
    worker.tell(&Conn(Transfer::new(conn))).unwrap();
    // `tell` sent a duplicate; the parent's own copy is dropped with the message
    // above, so the worker now holds the only one.
    worker.result().unwrap();
    let (first, rest) = client.join().unwrap();
    assert_eq!(first, "hi from the parent\n");
    assert_eq!(rest, format!("5 from {}\n", worker.pid()));
}

// ---------------------------------------------------------------------------------
// Files.

/// Writes a line naming its attempt through the file it was handed; the first
/// attempt then aborts when `crash_first` is set.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2, timeout.loop = "20s")]
struct Scribe {
    file: Transfer<File>,
    crash_first: bool,
}

impl Lifecycle for Scribe {
    type Output = u32;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        writeln!(&*self.file, "attempt {} of pid {}", cx.attempt(), cx.pid())?;
        if self.crash_first && cx.attempt() == 1 {
            std::process::abort();
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.attempt())
    }
}

/// A file that exists only as descriptors: its name is removed at once, so that
/// whatever reaches it went through a descriptor.
fn nameless_file() -> File {
    let scratch = Scratch::new("transfer-file");
    let path = scratch.file("f");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

fn contents(mut file: &File) -> String {
    file.rewind().unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_file_is_written_by_the_child_through_a_handed_descriptor() {
    let _guard = shared();
    let file = nameless_file();
    let h = Scribe {
        file: Transfer::new(file.try_clone().unwrap()),
        crash_first: false,
    }
    .start()
    .unwrap();
    assert_eq!(h.result(), Ok(1));
    assert_eq!(contents(&file), format!("attempt 1 of pid {}\n", h.pid()));
}

/// A state too large for the socket's buffer goes out after the handshake, as the
/// child reads it: its descriptors go with its first bytes.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Heavy {
    file: Transfer<File>,
    #[serde(with = "serde_bytes_like")]
    ballast: Vec<u8>,
}

/// Bytes as one block (a plain `Vec<u8>` goes through serde one byte at a time).
mod serde_bytes_like {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        <Vec<u8> as serde::Deserialize>::deserialize(d)
    }
}

impl Lifecycle for Heavy {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        writeln!(&*self.file, "{} bytes of ballast", self.ballast.len())?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_large_state_carries_its_descriptors_too() {
    let _guard = shared();
    let file = nameless_file();
    let h = Heavy {
        file: Transfer::new(file.try_clone().unwrap()),
        ballast: vec![3; 1 << 20],
    }
    .start()
    .unwrap();
    h.result().unwrap();
    assert_eq!(contents(&file), "1048576 bytes of ballast\n");
}

#[test]
fn each_life_gets_its_own_duplicate_of_a_states_descriptor() {
    let _guard = shared();
    let file = nameless_file();
    let h = Scribe {
        file: Transfer::new(file.try_clone().unwrap()),
        crash_first: true,
    }
    .start()
    .unwrap();
    // The first attempt wrote, then died holding its copy; the second got another
    // from the parent, which kept the original.
    assert_eq!(h.result(), Ok(2));
    assert_eq!(h.lives_used(), 2);
    let text = contents(&file);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("attempt 1 of pid "), "{text}");
    assert_eq!(lines[1], format!("attempt 2 of pid {}", h.pid()));
}

// ---------------------------------------------------------------------------------
// A crash while a descriptor is in flight.

/// A socket handed in a message.
#[derive(Serialize, Deserialize)]
struct Peer(Transfer<UnixStream>);

/// Waits for a signal file to exist, then, on its first attempt, aborts without
/// reading its mailbox; on the next, takes the `Peer` and writes to it.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Crasher {
    go: String,
    write_on: u32,
}

impl Lifecycle for Crasher {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        while !std::path::Path::new(&self.go).exists() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if cx.attempt() < self.write_on {
            std::process::abort();
        }
        let Peer(peer) = cx.listen::<Peer>(Duration::from_secs(10))?;
        writeln!(&*peer, "taken by attempt {}", cx.attempt())?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_descriptor_in_flight_when_the_child_crashes_reaches_the_next_life() {
    let _guard = shared();
    let scratch = Scratch::new("transfer-crash");
    let go = scratch.file("go");
    let h = Crasher {
        go: go.to_string_lossy().into_owned(),
        write_on: 2,
    }
    .start_with(Crasher::config().with_lives(2))
    .unwrap();
    let (mine, theirs) = UnixStream::pair().unwrap();
    h.tell(&Peer(Transfer::new(theirs))).unwrap();
    // The message (and its descriptor) is in the first attempt's socket, unread,
    // when it dies.
    std::fs::write(&go, "").unwrap();
    h.result().unwrap();
    assert_eq!(h.lives_used(), 2);
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    (&mine).read_to_string(&mut text).unwrap();
    assert_eq!(text, "taken by attempt 2\n");
}

#[test]
fn a_descriptor_never_taken_is_closed_when_the_process_ends() {
    let _guard = exclusive();
    let before = baseline_descriptors();
    let scratch = Scratch::new("transfer-lost");
    let go = scratch.file("go");
    let h = Crasher {
        go: go.to_string_lossy().into_owned(),
        write_on: u32::MAX,
    }
    .start()
    .unwrap();
    let (mine, theirs) = UnixStream::pair().unwrap();
    h.tell(&Peer(Transfer::new(theirs))).unwrap();
    std::fs::write(&go, "").unwrap();
    assert!(matches!(h.result(), Err(ProcessError::Crashed { .. })));
    h.wait();
    // Nobody holds the other end any more: not the dead child, not the parent's
    // mailbox. End-of-file, and the count is back.
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!((&mine).read(&mut [0; 8]).unwrap(), 0);
    drop(mine);
    drop(h);
    assert_eq!(
        settled_descriptors(before),
        before,
        "{}",
        describe_descriptors()
    );
}

// ---------------------------------------------------------------------------------
// Counts after a thousand transfers.

/// A descriptor handed back and forth, with a number.
#[derive(Serialize, Deserialize)]
struct Pass(u32, Transfer<OwnedFd>);

/// How many descriptors the child had open before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Counts(usize, usize);

/// Takes `Pass` messages and sends each back (a fresh duplicate of its descriptor,
/// its own copy closed) until told `Pass(u32::MAX, _)`; returns its descriptor
/// counts before and after.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Bouncer {
    counts: Counts,
}

impl Lifecycle for Bouncer {
    type Output = Counts;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        // Counted once the first transfer is done, so that what the runtime opens
        // once (or closes once, after the start) is on both sides of the count.
        let mut before = 0;
        loop {
            let Pass(n, fd) = cx.listen::<Pass>(Duration::from_secs(20))?;
            if n == u32::MAX {
                break;
            }
            cx.tell(&Pass(n, fd))?;
            if n == 0 {
                before = my_descriptors();
            }
        }
        self.counts = Counts(before, my_descriptors());
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Counts, BoxError> {
        Ok(self.counts)
    }
}

#[test]
fn descriptor_counts_return_to_where_they_were_after_a_thousand_transfers() {
    let _guard = exclusive();
    let before = baseline_descriptors();
    let h = Bouncer {
        counts: Counts(0, 0),
    }
    .start()
    .unwrap();
    let file = nameless_file();
    for n in 0..1_000u32 {
        h.tell(&Pass(n, Transfer::new(file.try_clone().unwrap().into())))
            .unwrap();
        let Pass(back, fd) = h.listen::<Pass>(Duration::from_secs(20)).unwrap();
        assert_eq!(back, n);
        // The same open file, not a copy of its contents: a write through the
        // descriptor that came back lands in ours.
        writeln!(File::from(fd.into_inner()), "{n}").unwrap();
    }
    let (_, stop) = UnixStream::pair().unwrap();
    h.tell(&Pass(u32::MAX, Transfer::new(stop.into()))).unwrap();
    let Counts(child_before, child_after) = h.result().unwrap();
    assert_eq!(child_after, child_before, "the child's descriptors");
    h.wait();
    assert_eq!(contents(&file).lines().count(), 1_000);
    drop(file);
    drop(h);
    assert_eq!(
        settled_descriptors(before),
        before,
        "{}",
        describe_descriptors()
    );
}

// ---------------------------------------------------------------------------------
// Where a Transfer cannot go, and frames that lie about their descriptors.

/// A socket on its way around the tree, and the pids it is still to visit.
#[derive(Serialize, Deserialize)]
struct Tour {
    route: Vec<process_runtime::Pid>,
    peer: Transfer<UnixStream>,
}

/// Takes a `Tour` with `node::receive`, writes its name through the socket, and sends
/// it on to the next pid of its route with `node::send`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Relay {
    name: String,
}

impl Lifecycle for Relay {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let mut tour: Tour = process_runtime::node::receive(Duration::from_secs(10))?;
        writeln!(&*tour.peer, "{}", self.name)?;
        let next = tour.route.remove(0);
        process_runtime::node::send(next, &tour)?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn node_send_carries_a_descriptor_down_between_siblings_and_up() {
    let _guard = shared();
    let a = Relay { name: "a".into() }.start().unwrap();
    let b = Relay { name: "b".into() }.start().unwrap();
    let (mine, theirs) = UnixStream::pair().unwrap();
    // Root to a (down), a to b (up to the root, which hands it down), b to the root.
    let tour = Tour {
        route: vec![b.id(), process_runtime::node::self_pid()],
        peer: Transfer::new(theirs),
    };
    process_runtime::node::send(a.id(), &tour).unwrap();
    drop(tour);
    let back: Tour = process_runtime::node::receive(Duration::from_secs(10)).unwrap();
    assert!(back.route.is_empty());
    writeln!(&*back.peer, "root").unwrap();
    drop(back);
    a.result().unwrap();
    b.result().unwrap();
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    (&mine).read_to_string(&mut text).unwrap();
    assert_eq!(text, "a\nb\nroot\n");
}

/// Returns the file it was handed, which cannot travel in an output.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct GiveBack {
    file: Option<Transfer<File>>,
}

impl Lifecycle for GiveBack {
    type Output = Option<Transfer<File>>;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok(self.file.take())
    }
}

#[test]
fn a_transfer_in_an_output_is_refused_with_a_reason() {
    let _guard = shared();
    let h = GiveBack {
        file: Some(Transfer::new(File::open("/dev/null").unwrap())),
    }
    .start()
    .unwrap();
    let e = h.take_result().unwrap_err();
    assert_eq!(
        e.to_string(),
        "the process output cannot be sent to the parent: the child cannot encode \
         `core::option::Option<process_runtime::transfer::Transfer<std::fs::File>>` (a \
         Transfer travels only in a process's state or in a message (`tell`, \
         `node::send`), encoded by process-runtime); postcard, the wire format, does not \
         support #[serde(flatten)], untagged enums, skip_serializing_if or other \
         self-describing shapes"
    );
}

/// Starts nothing in particular: a process whose child commits a fault right after its
/// start frame.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Idle;

impl Lifecycle for Idle {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

fn lying_frame(fault: Fault) -> (Result<(), ProcessError>, Option<i32>) {
    // A message of the pair, well formed but for its descriptors.
    let mut payload = vec![2u8];
    payload.extend_from_slice(&tag_of::<u32>().to_le_bytes());
    payload.push(7);
    let h = start_with_fault_frame(&Idle, Idle::config(), fault, &payload).unwrap();
    let r = h.result();
    h.wait();
    (r, h.exit_code())
}

#[test]
fn a_frame_that_announces_a_descriptor_it_does_not_carry_is_refused() {
    let _guard = exclusive();
    let before = baseline_descriptors();
    let (r, exit) = lying_frame(Fault::DescriptorAnnouncedNotSent);
    assert_eq!(
        r,
        Err(ProcessError::Protocol(
            "a frame announced 1 descriptor and carried none".into()
        ))
    );
    assert_eq!(exit, Some(-9), "the child was killed");
    assert_eq!(
        settled_descriptors(before),
        before,
        "{}",
        describe_descriptors()
    );
}

#[test]
fn a_frame_that_carries_a_descriptor_it_does_not_announce_is_refused_and_it_is_closed() {
    let _guard = exclusive();
    let before = baseline_descriptors();
    let (r, exit) = lying_frame(Fault::DescriptorSentNotAnnounced);
    assert_eq!(
        r,
        Err(ProcessError::Protocol(
            "a frame announced no descriptor and carried 1".into()
        ))
    );
    assert_eq!(exit, Some(-9), "the child was killed");
    assert_eq!(
        settled_descriptors(before),
        before,
        "{}",
        describe_descriptors()
    );
}

/// More descriptors than one message may carry.
#[derive(Serialize, Deserialize)]
struct Many(Vec<Transfer<OwnedFd>>);

/// What a child's too-large `tell` said, and the answer to a `Peer` after it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Said(String);

fn too_many() -> Many {
    let null = File::open("/dev/null").unwrap();
    Many(
        (0..254)
            .map(|_| Transfer::new(null.try_clone().unwrap().into()))
            .collect(),
    )
}

/// Tries to tell a message of 254 descriptors, reports the error, then answers a
/// `Peer` through its socket: the failed message left nothing behind.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "20s")]
struct Overloaded;

impl Lifecycle for Overloaded {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let e = cx.tell(&too_many()).unwrap_err();
        cx.tell(&Said(e.to_string()))?;
        let Peer(peer) = cx.listen::<Peer>(Duration::from_secs(10))?;
        cx.tell(&Peer(peer))?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_message_with_more_descriptors_than_a_frame_carries_is_refused_both_ways() {
    let _guard = shared();
    let why = "a message of type `transfer::Many` could not be encoded: one state or \
               message may carry at most 253 descriptors";
    let h = Overloaded.start().unwrap();
    assert_eq!(h.tell(&too_many()).unwrap_err().to_string(), why);
    assert_eq!(
        h.listen::<Said>(Duration::from_secs(10)),
        Ok(Said(why.into()))
    );
    // Both sides go on carrying descriptors as before.
    let (mine, theirs) = UnixStream::pair().unwrap();
    h.tell(&Peer(Transfer::new(theirs))).unwrap();
    let Peer(back) = h.listen::<Peer>(Duration::from_secs(10)).unwrap();
    writeln!(&*back, "round").unwrap();
    drop(back);
    h.result().unwrap();
    let mut text = String::new();
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (&mine).read_to_string(&mut text).unwrap();
    assert_eq!(text, "round\n");
}
