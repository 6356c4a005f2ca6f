use process_runtime::Process;

#[derive(Process)]
#[process(lives = 0)]
struct Worker;

fn main() {}
