use process_runtime::Process;

#[derive(Process)]
#[process(lives = "3")]
struct Worker;

fn main() {}
