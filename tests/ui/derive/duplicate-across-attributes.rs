use process_runtime::Process;

#[derive(Process)]
#[process(timeout.loop = "10s")]
#[process(timeout(loop = "20s"))]
struct Worker;

fn main() {}
