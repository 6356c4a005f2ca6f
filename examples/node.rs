//! The node: processes that find each other by name and talk directly, and a parent
//! that watches them.
//!
//! A counter registers itself as "counter"; two clients, its siblings, look it up and
//! send it numbers, each answered with the running total; the root monitors everyone
//! and prints each `Down` as it comes.
//!
//! `cargo run --example node`

use std::time::Duration;

use process_runtime::node::{self, Down, Pid};
use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(5);

/// A number to add, and who wants the total.
#[derive(Debug, Serialize, Deserialize)]
struct Add {
    n: u64,
    reply_to: Pid,
}

/// The total so far.
#[derive(Debug, Serialize, Deserialize)]
struct Total(u64);

/// The counter says it is ready; the root says the clients may go.
#[derive(Debug, Serialize, Deserialize)]
struct Ready;

/// Adds what it is sent, `expect` times, answering each with the total.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "10s")]
struct Counter {
    expect: u32,
    total: u64,
}

impl Lifecycle for Counter {
    type Output = u64;
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            node::register("counter", node::self_pid())?;
            cx.tell(&Ready)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if self.expect == 0 {
            cx.stop();
            return Ok(());
        }
        let add: Add = node::receive(WAIT)?;
        self.total += add.n;
        self.expect -= 1;
        node::send(add.reply_to, &Total(self.total))?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.total)
    }
}

/// Sends its numbers to whoever is registered as "counter"; returns the totals it got.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "10s")]
struct Client {
    numbers: Vec<u64>,
}

impl Lifecycle for Client {
    type Output = Vec<u64>;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Vec<u64>, BoxError> {
        // Monitored before it starts (a process that ends before it is monitored
        // brings a `Down` with `NoProc`).
        let Ready = node::receive(WAIT)?;
        let counter = node::whereis("counter").ok_or("no counter registered")?;
        let me = node::self_pid();
        let mut totals = Vec::new();
        for &n in &self.numbers {
            node::send(counter, &Add { n, reply_to: me })?;
            let Total(t) = node::receive(WAIT)?;
            totals.push(t);
        }
        Ok(totals)
    }
}

#[process_runtime::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("root: {}", node::self_pid());
    let counter = Counter {
        expect: 4,
        total: 0,
    }
    .start()?;
    let Ready = counter.listen(WAIT)?;
    println!(
        "counter: {} is {:?}",
        counter.id(),
        node::whereis("counter")
    );
    let a = Client {
        numbers: vec![1, 2],
    }
    .start()?;
    let b = Client {
        numbers: vec![10, 20],
    }
    .start()?;
    let watched = [counter.id(), a.id(), b.id()];
    let monitors: Vec<_> = watched.iter().map(|&pid| node::monitor(pid)).collect();
    println!("processes: {:?}", node::processes());
    for client in [&a, &b] {
        node::send(client.id(), &Ready)?;
    }
    println!("client {} got {:?}", a.id(), a.result()?);
    println!("client {} got {:?}", b.id(), b.result()?);
    println!("counter total: {}", counter.result()?);
    for _ in &monitors {
        let down: Down = node::receive(WAIT)?;
        println!("down: {} ({}), {}", down.pid, down.monitor, down.reason);
    }
    assert_eq!(node::whereis("counter"), None);
    assert_eq!(node::processes(), [node::self_pid()]);
    Ok(())
}
