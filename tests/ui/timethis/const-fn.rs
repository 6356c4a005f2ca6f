use process_runtime::prelude::*;

struct Worker;

impl Worker {
    #[timethis]
    const fn step(&self, _cx: &mut Context) -> u32 {
        1
    }
}

fn main() {}
