use process_runtime::Process;

#[derive(Process)]
#[process(join_in = "none")]
struct Worker;

fn main() {}
