use process_runtime::Process;

#[derive(Process)]
#[process(num_loops = 0)]
struct Worker;

fn main() {}
