use process_runtime::Process;

#[derive(Process)]
#[process(join_in = -5, timeout.loop = "-1s")]
struct Worker;

fn main() {}
