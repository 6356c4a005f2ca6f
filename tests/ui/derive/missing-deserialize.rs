//! A process's state is sent to the child with serde: both derives are needed.
use process_runtime::prelude::*;
use serde::Serialize;

#[derive(Process, Serialize)]
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

fn main() {}
