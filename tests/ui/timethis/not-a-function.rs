use process_runtime::prelude::*;

#[timethis]
struct Worker;

fn main() {}
