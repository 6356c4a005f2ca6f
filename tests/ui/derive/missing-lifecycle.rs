use process_runtime::Process;
use serde::{Deserialize, Serialize};

#[derive(Process, Serialize, Deserialize)]
struct Counter {
    counter: u32,
}

fn main() {}
