use process_runtime::Process;

#[derive(Process)]
#[process(timeout.loop = none)]
struct Worker;

fn main() {}
