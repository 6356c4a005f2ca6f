//! Messages both ways: the parent tells a child jobs, the child tells back results.
//!
//! `cargo run --example echo`

use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// A job for the child.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

/// The child's answer to a job.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    n: u64,
}

/// The parent has no more jobs.
#[derive(Debug, Serialize, Deserialize)]
struct Quit;

/// Doubles every job it is told until it is told to quit; its result is how many jobs
/// it answered.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(mailbox = 100)]
struct Echo {
    answered: u64,
}

impl Lifecycle for Echo {
    type Output = u64;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Job>(Duration::from_millis(100)) {
            Ok(job) => {
                cx.tell(&Done { n: job.n * 2 })?;
                self.answered += 1;
            }
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        if cx.listen::<Quit>(Duration::ZERO).is_ok() {
            cx.stop();
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.answered)
    }
}

#[process_runtime::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let h = Echo::default().start()?;
    for n in 1..=3 {
        h.tell(&Job { n })?;
        let done: Done = h.listen(Duration::from_secs(5))?;
        println!("told {n}, heard back {}", done.n);
    }
    h.tell(&Quit)?;
    println!("the child answered {} jobs", h.result()?);
    Ok(())
}
