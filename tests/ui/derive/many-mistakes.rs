//! Every mistake is reported in one compile, and none of the follow-on errors a
//! missing `impl Process` would cause (the call to `start` below).
use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Process, Serialize, Deserialize)]
#[process(live = 3, lives = 0, num_loops = 0, join_in = "30x", timeout.lop = "5s")]
#[process(daemon = "yes", name = "", lives = 2, timeout.loop = "none")]
struct Counter {
    counter: u32,
}

impl Lifecycle for Counter {
    type Output = u32;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.counter += 1;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.counter)
    }
}

fn main() {
    let _ = Counter { counter: 0 }.start();
}
