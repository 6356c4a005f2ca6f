use process_runtime::Process;

#[derive(Process)]
#[process(join_in = true)]
struct Worker;

fn main() {}
