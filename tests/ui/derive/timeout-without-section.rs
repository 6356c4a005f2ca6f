use process_runtime::Process;

#[derive(Process)]
#[process(timeout = "10s")]
struct Worker;

fn main() {}
