use process_runtime::Process;

#[derive(Process)]
#[process(timeout.loop = "30x")]
struct Worker;

fn main() {}
