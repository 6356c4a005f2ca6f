//! A program for `tests/supervisor.rs`: a supervision tree (a worker, and a child
//! supervisor process with a worker of its own) under a supervisor in `main`, which
//! then waits on it while the test sends SIGTERM. Not part of `cargo test` by itself.
//!
//! ```text
//! supervised_term <dir>
//! ```
//!
//! Each worker run appends `<name> <pid>` to `<dir>/starts` and writes
//! `<dir>/<name>.<pid>.finished` from its `on_finish`; `<dir>/ready` is written once
//! both workers run. If `wait()` ever returns, `<dir>/main.returned` says so.

use std::io::Write;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime::{ChildSpec, Strategy, Supervisor};
use serde::{Deserialize, Serialize};

#[derive(Process, Serialize, Deserialize)]
struct Worker {
    dir: String,
    name: String,
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(format!("{}/starts", self.dir))?;
            f.write_all(format!("{} {}\n", self.name, std::process::id()).as_bytes())?;
        }
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    }

    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        std::fs::write(
            format!("{}/{}.{}.finished", self.dir, self.name, std::process::id()),
            "",
        )?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[process_runtime::main]
fn main() -> Result<(), BoxError> {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: supervised_term <dir>");
    let worker = |name: &str| {
        ChildSpec::new(
            name,
            Worker {
                dir: dir.clone(),
                name: name.into(),
            },
        )
    };
    let sub = Supervisor::new(Strategy::OneForOne).child(worker("inner"));
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(worker("outer"))
        .child(ChildSpec::supervisor("sub", sub))
        .start()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(format!("{dir}/starts"))
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the workers never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(format!("{dir}/ready"), "1")?;
    let outcome = sup.wait();
    std::fs::write(format!("{dir}/main.returned"), format!("{outcome:?}"))?;
    Ok(())
}
