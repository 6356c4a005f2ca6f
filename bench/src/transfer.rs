//! The figures of `Transfer`: a cluster of two worker processes accepting on one
//! handed listener against the same server in one process, and a message round trip
//! with a descriptor each way beside one without.
//!
//! The cluster's client is written here and bounded: [`CLIENTS`] threads, each sending
//! [`PER_CONNECTION`] requests on a connection before opening the next, until
//! [`REQUESTS`] are answered. Each request costs the server about the same CPU time
//! ([`WORK`] rounds of a hash), so that on two cores two workers can answer close to
//! twice as many as one.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{us, Row, Stats, Target};

/// Requests of one measurement, answered by either server.
const REQUESTS: usize = 4_000;
/// Client threads, each with one connection open at a time.
const CLIENTS: usize = 4;
/// Requests per connection before the client opens a new one.
const PER_CONNECTION: usize = 20;
/// Hash rounds per request: the CPU-bound part of an answer.
const WORK: u64 = 40_000;
/// Rounds of the cluster figure (each: one process, then the cluster, alternating).
const CLUSTER_ROUNDS: usize = 4;
/// Round trips per block of the descriptor figure, and blocks per side.
const FD_ROUNDS: usize = 2_000;
const FD_BLOCKS: usize = 6;

/// The answer to `WORK n`: `n` rounds of FNV-1a over a counter, so that the compiler
/// cannot skip them.
fn work(seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for i in 0..WORK {
        h ^= i;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Serves one connection: a line `WORK <n>` is answered with `work(n)`; `QUIT` with
/// `BYE`, and then true is returned (the server stops).
fn serve(conn: &TcpStream) -> std::io::Result<bool> {
    // Each answer leaves in one write, at once (no Nagle wait for a delayed ACK).
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        let mut words = line.split_whitespace();
        let (command, n) = (words.next(), words.next().and_then(|n| n.parse().ok()));
        let answer = match (command, n) {
            (Some("WORK"), Some(n)) => format!("{}\n", work(n)),
            (Some("QUIT"), _) => {
                (&*conn).write_all(b"BYE\n")?;
                return Ok(true);
            }
            _ => "ERR\n".to_owned(),
        };
        (&*conn).write_all(answer.as_bytes())?;
    }
}

/// A worker of the cluster: accepts on the handed listener and serves each
/// connection, until a `QUIT`.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct ClusterWorker {
    listener: Transfer<TcpListener>,
}

impl Lifecycle for ClusterWorker {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let (conn, _) = self.listener.accept()?;
        if serve(&conn)? {
            cx.stop();
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Sends `QUIT` on a new connection and waits for the answer.
fn quit(addr: SocketAddr) {
    let conn = TcpStream::connect(addr).expect("connect to quit");
    (&conn).write_all(b"QUIT\n").expect("send QUIT");
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .expect("read BYE");
    assert_eq!(answer, "BYE\n");
}

/// The bounded client: the time [`REQUESTS`] take, every answer checked.
fn client(addr: SocketAddr) -> Duration {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            s.spawn(move || {
                let mine = REQUESTS / CLIENTS;
                let mut done = 0;
                while done < mine {
                    let conn = TcpStream::connect(addr).expect("connect");
                    conn.set_nodelay(true).expect("nodelay");
                    let mut reader = BufReader::new(&conn);
                    let mut answer = String::new();
                    for _ in 0..PER_CONNECTION.min(mine - done) {
                        let n = (c * REQUESTS + done) as u64;
                        (&conn)
                            .write_all(format!("WORK {n}\n").as_bytes())
                            .expect("send");
                        answer.clear();
                        reader.read_line(&mut answer).expect("answer");
                        assert_eq!(answer.trim().parse::<u64>().ok(), Some(work(n)));
                        done += 1;
                    }
                }
            });
        }
    });
    t0.elapsed()
}

/// One measurement of the server in this process: one thread accepting and serving.
fn one_process() -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || loop {
        let (conn, _) = listener.accept().expect("accept");
        if serve(&conn).unwrap_or(false) {
            return;
        }
    });
    let took = client(addr);
    quit(addr);
    server.join().expect("the server thread");
    took
}

/// One measurement of the cluster: `workers` processes accepting on one listener.
fn cluster(workers: usize) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            ClusterWorker {
                listener: Transfer::new(listener.try_clone().expect("clone the listener")),
            }
            .start()
            .expect("start a worker")
        })
        .collect();
    drop(listener);
    let took = client(addr);
    for _ in 0..workers {
        quit(addr);
    }
    for h in handles {
        h.result().expect("a worker ends cleanly");
    }
    took
}

/// A message with a descriptor, or one without, echoed by [`FdEcho`].
#[derive(Serialize, Deserialize)]
enum Bounce {
    With(u64, Transfer<OwnedFd>),
    Without(u64),
    Done,
}

/// Echoes every [`Bounce`] until `Done`.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct FdEcho;

impl Lifecycle for FdEcho {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Bounce>(None)? {
            Bounce::Done => cx.stop(),
            b => cx.tell(&b)?,
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Mean round trip of `rounds` bounces, with a descriptor each way or without.
fn bounces(h: &Handle<()>, fd: &OwnedFd, rounds: usize, with_fd: bool) -> Duration {
    let t0 = Instant::now();
    for n in 0..rounds as u64 {
        let msg = if with_fd {
            Bounce::With(n, Transfer::new(fd.try_clone().expect("dup")))
        } else {
            Bounce::Without(n)
        };
        h.tell(&msg).expect("tell");
        drop(msg);
        match h.listen::<Bounce>(None).expect("listen") {
            Bounce::With(m, _) | Bounce::Without(m) => assert_eq!(m, n),
            Bounce::Done => unreachable!("the echo never sends Done"),
        }
    }
    t0.elapsed() / u32::try_from(rounds).expect("rounds fit u32")
}

/// Reads of one waiting 8-byte message per block of the read-cost figure, and blocks
/// per side.
const READ_ROUNDS: usize = 100_000;
const READ_BLOCKS: usize = 6;

/// Mean time of a write of 8 bytes on one end of a socket pair and a read of them on
/// the other: with `recvmsg` and a control buffer sized as the runtime's (ready for
/// descriptors), or with plain `recv`, as the channel was read before `Transfer`.
fn reads(with_control: bool, rounds: usize) -> Duration {
    use std::os::fd::AsRawFd;
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let (wfd, rfd) = (a.as_raw_fd(), b.as_raw_fd());
    let mut buf = [0u8; 4096];
    let mut control = [0u64; 136];
    let t0 = Instant::now();
    for n in 0..rounds as u64 {
        let bytes = n.to_le_bytes();
        // SAFETY: valid descriptors and buffers of the lengths given.
        let got = unsafe {
            libc::send(wfd, bytes.as_ptr().cast(), 8, libc::MSG_NOSIGNAL);
            if with_control {
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control) as _;
                libc::recvmsg(rfd, &mut msg, libc::MSG_CMSG_CLOEXEC)
            } else {
                libc::recv(rfd, buf.as_mut_ptr().cast(), buf.len(), 0)
            }
        };
        assert_eq!(got, 8);
    }
    t0.elapsed() / u32::try_from(rounds).expect("rounds fit u32")
}

pub(crate) fn rows() -> Vec<Row> {
    eprintln!(
        "[transfer] {CLUSTER_ROUNDS} x {REQUESTS} requests from {CLIENTS} clients, one process and a cluster of 2, alternating..."
    );
    // Warm-up: caches, the spawner thread, the loopback.
    one_process();
    cluster(2);
    let (mut single, mut two) = (Vec::new(), Vec::new());
    for round in 0..CLUSTER_ROUNDS {
        if round % 2 == 0 {
            single.push(one_process());
        }
        two.push(cluster(2));
        if round % 2 == 1 {
            single.push(one_process());
        }
    }
    let rate = |d: Duration| REQUESTS as f64 / d.as_secs_f64();
    let (single, two) = (Stats::of(&single), Stats::of(&two));
    let (single_rate, two_rate) = (rate(single.median), rate(two.median));
    let cluster_ratio = two_rate / single_rate;

    eprintln!("[transfer] {FD_BLOCKS} x {FD_ROUNDS} round trips with and without a descriptor, alternating...");
    let h = FdEcho.start().expect("start the echo");
    let fd: OwnedFd = std::fs::File::open("/dev/null")
        .expect("open /dev/null")
        .into();
    bounces(&h, &fd, 200, false);
    bounces(&h, &fd, 200, true);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for block in 0..FD_BLOCKS {
        if block % 2 == 0 {
            without.push(bounces(&h, &fd, FD_ROUNDS, false));
        }
        with.push(bounces(&h, &fd, FD_ROUNDS, true));
        if block % 2 == 1 {
            without.push(bounces(&h, &fd, FD_ROUNDS, false));
        }
    }
    h.tell(&Bounce::Done).expect("tell Done");
    h.result().expect("the echo ends cleanly");
    let (without, with) = (Stats::of(&without), Stats::of(&with));
    let fd_ratio = with.median.as_secs_f64() / without.median.as_secs_f64();

    eprintln!(
        "[transfer] {READ_BLOCKS} x {READ_ROUNDS} reads with recvmsg and with recv, alternating..."
    );
    reads(true, READ_ROUNDS / 10);
    reads(false, READ_ROUNDS / 10);
    let (mut plain, mut control) = (Vec::new(), Vec::new());
    for block in 0..READ_BLOCKS {
        if block % 2 == 0 {
            plain.push(reads(false, READ_ROUNDS));
        }
        control.push(reads(true, READ_ROUNDS));
        if block % 2 == 1 {
            plain.push(reads(false, READ_ROUNDS));
        }
    }
    let (plain, control) = (Stats::of(&plain), Stats::of(&control));
    let read_ratio = control.median.as_secs_f64() / plain.median.as_secs_f64();
    let ns = |d: Duration| d.as_secs_f64() * 1e9;

    vec![
        Row {
            figure: "cluster: 2 worker processes on one handed listener".into(),
            measured: format!(
                "{two_rate:.0} req/s ({:.0} ms per {REQUESTS}, n={})",
                crate::ms(two.median),
                two.n
            ),
            floor: format!("{single_rate:.0} req/s, the same server in one process"),
            ratio: format!("{cluster_ratio:.2}x"),
            checked: cluster_ratio,
            target: Target::None,
            target_text: "about 2x on 2 cores".into(),
        },
        Row {
            figure: "round trip with a descriptor each way (Transfer<OwnedFd>)".into(),
            measured: format!(
                "{:.1} us (p10 {:.1}, p90 {:.1}, n={} blocks)",
                us(with.median),
                us(with.p10),
                us(with.p90),
                with.n
            ),
            floor: format!("{:.1} us the same message without one", us(without.median)),
            ratio: format!("{fd_ratio:.2}x"),
            checked: fd_ratio,
            target: Target::None,
            target_text: "-".into(),
        },
        Row {
            figure: "send + read of 8 bytes, read with recvmsg ready for descriptors".into(),
            measured: format!(
                "{:.0} ns (p10 {:.0}, p90 {:.0}, n={} blocks)",
                ns(control.median),
                ns(control.p10),
                ns(control.p90),
                control.n
            ),
            floor: format!(
                "{:.0} ns read with recv, as before Transfer",
                ns(plain.median)
            ),
            ratio: format!("{read_ratio:.2}x"),
            checked: read_ratio,
            target: Target::None,
            target_text: "-".into(),
        },
    ]
}
