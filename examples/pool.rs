//! Functions and pools: `spawn` runs one function as a child process; a `Pool` keeps
//! worker processes warm and runs a function over many items, whatever an item does,
//! or many processes of a type with their whole lifecycle (`pool.run`).
//!
//! `cargo run --example pool`

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Steps of the Collatz sequence from `n` down to 1.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// Parses a line; a bad one panics, which costs that line only.
fn parse(line: String) -> u64 {
    match line.trim() {
        "exit" => std::process::exit(3), // a worker that dies: also that line only
        text => text.parse().expect("a number"),
    }
}

/// Walks the Collatz sequence from `n`, one step a lap, for at most 200 laps; its
/// lives and limits are its own, on a pool as when started.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 200, lives = 2, timeout.loop = "1s")]
struct Walk {
    n: u64,
}

impl Lifecycle for Walk {
    type Output = (u64, u64);

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        if self.n == 0 {
            // A crash costs this walk a life, then its `error`; the others go on.
            std::process::abort();
        }
        Ok(())
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.n = if self.n % 2 == 0 {
            self.n / 2
        } else {
            3 * self.n + 1
        };
        if self.n == 1 {
            cx.stop();
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<(u64, u64), BoxError> {
        Ok((cx.lap() + 1, self.n))
    }
}

#[process_runtime::main]
fn main() -> Result<(), ProcessError> {
    // One function, one child process, the same handle a process type gets.
    let h = process_runtime::spawn(27u64, collatz_steps)?;
    println!("27 takes {} steps to reach 1", h.result()?);

    let pool = Pool::new(4)?; // Pool::default() starts one worker per core
    let steps = pool.map(collatz_steps, 1..=100_000u64);
    let (n, most) = (1u64..)
        .zip(steps)
        .filter_map(|(n, s)| Some((n, s.ok()?)))
        .max_by_key(|&(_, s)| s)
        .expect("100,000 results");
    println!("below 100,000, {n} takes the most steps: {most}");

    // In input order, lazily; each line's result is its own.
    let lines = ["12", "x", "exit", "40"].map(String::from);
    for (line, parsed) in lines.iter().zip(pool.imap(parse, lines.clone())) {
        match parsed {
            Ok(n) => println!("{line:>4} -> {n}"),
            Err(e) => println!("{line:>4} -> {e}"),
        }
    }

    // The same pool, as it was: a dead worker was replaced.
    let mut squares: Vec<u64> = pool
        .imap_unordered(|x: u64| x * x, 1..=5)
        .collect::<Result<_, _>>()?;
    squares.sort_unstable();
    println!("squares, as they finished then sorted: {squares:?}");

    // Processes, not functions: each runs its whole lifecycle on a warm worker, and
    // the outcomes come back in input order, as `result()` of each would return them.
    let walks = pool.run([27, 0, 97].map(|n| Walk { n }));
    for (n, walk) in [27, 0, 97].iter().zip(walks) {
        match walk {
            Ok((laps, at)) => println!("walk from {n:>2}: {laps} laps, at {at}"),
            Err(e) => println!("walk from {n:>2}: {e}"),
        }
    }
    Ok(())
}
