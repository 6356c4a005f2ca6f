use process_runtime::Process;

#[derive(Process)]
#[process(lives = 3, lives = 5)]
struct Worker;

fn main() {}
