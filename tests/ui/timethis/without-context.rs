use process_runtime::prelude::*;

struct Worker {
    total: u64,
}

impl Worker {
    #[timethis]
    fn step(&mut self, n: u64) {
        self.total += n;
    }
}

fn main() {
    Worker { total: 0 }.step(1);
}
