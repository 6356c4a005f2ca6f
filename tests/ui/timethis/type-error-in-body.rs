use process_runtime::prelude::*;

struct Worker;

impl Worker {
    #[timethis]
    fn step(&mut self, cx: &mut Context) -> u32 {
        let _ = cx;
        "not a number"
    }
}

fn main() {}
