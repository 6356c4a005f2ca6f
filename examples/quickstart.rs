//! The program a newcomer runs first: a counter that runs as a child OS process.
//!
//! `cargo run --example quickstart`

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Counts its sections: one in `preloop`, one in `main_loop` per lap; stops itself
/// once the count reaches 30.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 10, lives = 3, join_in = "30s", timeout.loop = "300s")]
struct Counter {
    counter: u32,
}

impl Lifecycle for Counter {
    type Output = u32;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        self.counter += 1;
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.counter += 1;
        Ok(())
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        if self.counter >= 30 {
            cx.stop();
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.counter)
    }
}

#[process_runtime::main]
fn main() -> Result<(), ProcessError> {
    let handle = Counter { counter: 0 }.start()?;
    println!("started `{}` as pid {}", handle.name(), handle.pid());
    let n: u32 = handle.result()?;
    println!(
        "counter = {n} after {} laps of main_loop",
        handle.timers().main_loop.num_times()
    );
    Ok(())
}
