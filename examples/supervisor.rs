//! A supervision tree: a web front and a database under one supervisor, the database
//! itself a small supervisor of two shards running in its own OS process.
//!
//! The program kills one shard and then the database's supervisor process from
//! outside (SIGKILL, as the OOM killer would), and shows the tree putting itself back:
//! `whereis` finds the new processes under the old names.
//!
//! `cargo run --example supervisor`

use std::time::{Duration, Instant};

use process_runtime::node;
use process_runtime::prelude::*;
use process_runtime::{ChildSpec, Restart, Strategy, Supervisor, SupervisorHandle};
use serde::{Deserialize, Serialize};

/// A service that does its work in laps until it is stopped.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(timeout.onfinish = "2s")]
struct Service {
    /// Laps done: every restart begins again from 0, the original state.
    laps: u64,
}

impl Lifecycle for Service {
    type Output = u64;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.laps += 1;
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.laps)
    }
}

fn show(sup: &SupervisorHandle, what: &str) {
    println!("{what}:");
    for c in sup.which_children() {
        println!("  {:<6} {:?} restarts {}", c.name, c.pid, c.restarts);
    }
    for name in ["shard1", "shard2"] {
        println!("  whereis({name}) = {:?}", node::whereis(name));
    }
}

/// SIGKILL from outside, as the OOM killer or an operator would send it.
fn sigkill(os_pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &os_pid.to_string()])
        .status();
}

/// Waits until `name` is registered to a process other than `old`.
fn await_new(name: &str, old: Option<node::Pid>) -> Option<node::Pid> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let now = node::whereis(name);
        if now.is_some() && now != old {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[process_runtime::main]
fn main() -> Result<(), BoxError> {
    let db = Supervisor::new(Strategy::OneForAll)
        .intensity(3, Duration::from_secs(5))
        .child(ChildSpec::new("shard1", Service::default()))
        .child(ChildSpec::new("shard2", Service::default()));
    let sup = Supervisor::new(Strategy::RestForOne)
        .intensity(3, Duration::from_secs(5))
        .backoff(Duration::from_millis(10), Duration::from_secs(1))
        .child(ChildSpec::supervisor("db", db))
        .child(ChildSpec::new("web", Service::default()).restart(Restart::Transient))
        .start()?;
    let shard1 = await_new("shard1", None);
    let shard2 = await_new("shard2", None);
    show(&sup, "started");

    // A shard fails (an exit signal it does not trap, from here): the database's
    // supervisor (OneForAll) restarts both shards.
    node::exit(
        shard1.expect("registered"),
        node::ExitReason::Error(ProcessError::Killed),
    );
    let shard1 = await_new("shard1", shard1);
    let shard2 = await_new("shard2", shard2);
    show(&sup, "after shard1 ended");

    // The database's supervisor process is killed: its shards die with it, and the
    // top supervisor (RestForOne) restarts it, and `web`, started after it.
    let db_os_pid = sup.which_children()[0].os_pid.expect("db runs");
    sigkill(db_os_pid);
    await_new("shard1", shard1);
    await_new("shard2", shard2);
    show(&sup, "after SIGKILL of the db supervisor");

    sup.stop();
    show(&sup, "stopped");
    sup.wait()?;
    Ok(())
}
