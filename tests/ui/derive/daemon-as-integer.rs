use process_runtime::Process;

#[derive(Process)]
#[process(daemon = 1)]
struct Worker;

fn main() {}
