use process_runtime::Process;

#[derive(Process)]
#[process]
struct Worker;

fn main() {}
