use process_runtime::Process;

#[derive(Process)]
#[process(name = worker)]
struct Worker;

fn main() {}
