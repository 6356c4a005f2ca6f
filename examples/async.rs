//! Async handles: processes and their messages awaited on an async runtime (tokio
//! here; any executor works), on one thread that never blocks.
//!
//! `cargo run --example async`

use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

/// Takes `n` tenths of a second to square `n`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "10s")]
struct Square {
    n: u64,
}

impl Lifecycle for Square {
    type Output = u64;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(100 * self.n));
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.n * self.n)
    }
}

/// How far a [`Download`] got.
#[derive(Debug, Serialize, Deserialize)]
struct Progress(u32);

/// Tells its progress as it goes; its result is the number of bytes it "fetched".
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 4, timeout.loop = "10s")]
struct Download;

impl Lifecycle for Download {
    type Output = u64;

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(50));
        cx.tell(&Progress(25 * (cx.lap() + 1) as u32))?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(4096)
    }
}

/// Sends its parent a greeting through the node, from anywhere in the tree.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "10s")]
struct Greeter {
    name: String,
}

impl Lifecycle for Greeter {
    type Output = ();

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        process_runtime::node::send(cx.parent_id(), &format!("hello from {}", self.name))?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

// `tokio::main` above `process_runtime::main`: a re-executed child is taken over before
// the runtime starts. One thread: if anything blocked it, nothing below would finish.
#[tokio::main(flavor = "current_thread")]
#[process_runtime::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Many processes, each awaited in a task of its own, reported as they end.
    let mut tasks = JoinSet::new();
    for n in [3, 1, 2] {
        let h = Square { n }.start()?;
        tasks.spawn(async move { (n, h.result_async().await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, squared) = joined?;
        println!("{n} squared is {}", squared?);
    }

    // Messages as they come, then the result.
    let h = Download.start()?;
    loop {
        match h
            .listen_async_timeout::<Progress>(Duration::from_secs(5))
            .await
        {
            Ok(Progress(percent)) => println!("downloaded {percent}%"),
            Err(RecvError::Ended) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("downloaded {} bytes", h.result_async().await?);

    // The executor's timeout on a future that has none: dropping it cancels the wait
    // only, and the process goes on.
    let h = Square { n: 5 }.start()?;
    if tokio::time::timeout(Duration::from_millis(100), h.wait_async())
        .await
        .is_err()
    {
        println!("{} still runs after 100 ms", h.name());
    }
    println!("5 squared is {}", h.result_async().await?);

    // This process's own mailbox (`node::send` from any process), awaited.
    let greeters: Vec<_> = ["ada", "grace"]
        .into_iter()
        .map(|name| Greeter { name: name.into() }.start())
        .collect::<Result<_, _>>()?;
    for _ in &greeters {
        let (from, greeting) =
            process_runtime::node::receive_from_async_timeout::<String>(Duration::from_secs(5))
                .await?;
        println!("{from}: {greeting}");
    }
    for h in &greeters {
        h.wait_async().await;
    }
    Ok(())
}
