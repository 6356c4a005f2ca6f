//! A cluster: worker processes that all accept on one listening socket, handed to each
//! as the descriptor itself (Node's `cluster` module, without a master that relays).
//!
//! The root binds the listener and starts the workers with a `Transfer` of it in their
//! state; the kernel spreads the connections among the processes waiting in `accept`.
//! Each worker answers a tiny line protocol:
//!
//! ```text
//! PING        -> PONG <pid>
//! SUM 1 2 3   -> 6
//! CRASH       -> (the worker aborts: `lives` starts a new one on the same listener)
//! QUIT        -> BYE, and the worker stops
//! ```
//!
//! `cargo run --example cluster [workers]`

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// One worker: accepts connections on the shared listener and answers their lines,
/// until a `QUIT`. A crash is followed by a fresh process on the same listener (each
/// life gets its own duplicate of it from the root).
#[derive(Process, Serialize, Deserialize)]
#[process(lives = 3, timeout.loop = "none")]
struct Worker {
    listener: Transfer<TcpListener>,
}

impl Lifecycle for Worker {
    /// Connections served.
    type Output = u64;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let (conn, _) = self.listener.accept()?;
        let reader = BufReader::new(&conn);
        for line in reader.lines() {
            let line = line?;
            let mut words = line.split_whitespace();
            let answer = match words.next() {
                Some("PING") => format!("PONG {}", std::process::id()),
                Some("SUM") => {
                    let sum: Result<i64, _> = words.map(str::parse::<i64>).sum();
                    sum.map_or_else(|e| format!("ERR {e}"), |n| n.to_string())
                }
                Some("CRASH") => std::process::abort(),
                Some("QUIT") => {
                    (&conn).write_all(b"BYE\n")?;
                    cx.stop();
                    return Ok(());
                }
                _ => format!("ERR unknown command: {line}"),
            };
            // One write per answer: a line written in pieces waits for the peer's
            // delayed acknowledgement (Nagle).
            (&conn).write_all(format!("{answer}\n").as_bytes())?;
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap() + 1)
    }
}

/// Sends `lines` on one connection and returns the answers.
fn ask(addr: SocketAddr, lines: &[&str]) -> std::io::Result<Vec<String>> {
    let conn = TcpStream::connect(addr)?;
    let mut answers = Vec::new();
    let mut reader = BufReader::new(&conn);
    for line in lines {
        (&conn).write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        answers.push(answer.trim().to_owned());
    }
    Ok(answers)
}

#[process_runtime::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(2), |a| a.parse())?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let workers = (0..n)
        .map(|_| {
            Worker {
                listener: Transfer::new(listener.try_clone()?),
            }
            .start()
            .map_err(Box::<dyn std::error::Error>::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The root keeps its listener (and never accepts on it): the workers' copies are
    // duplicates of it.
    println!("{n} workers accepting on {addr}");

    // Ask until every worker has answered once.
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        let pong = ask(addr, &["PING"])?.remove(0);
        seen.insert(pong);
    }
    println!("answers from every worker: {seen:?}");
    println!("SUM 1 2 3 4 -> {}", ask(addr, &["SUM 1 2 3 4"])?[0]);

    // One worker crashes in the middle of a connection; the service keeps answering,
    // and the crashed worker's next life accepts on the same listener.
    let answers = ask(addr, &["PING", "CRASH"])?;
    println!(
        "{} crashed (its answer to CRASH: {:?})",
        answers[0], answers[1]
    );
    let mut pongs = BTreeSet::new();
    while pongs.len() < n {
        pongs.insert(ask(addr, &["PING"])?.remove(0));
    }
    let restarted = workers.iter().filter(|h| h.lives_used() > 1).count();
    println!("answers after the crash: {pongs:?} ({restarted} worker restarted)");

    for _ in 0..n {
        ask(addr, &["QUIT"])?;
    }
    for h in &workers {
        println!(
            "worker {}: {} connections in its last life, {} lives used",
            h.pid(),
            h.result()?,
            h.lives_used()
        );
    }
    Ok(())
}
