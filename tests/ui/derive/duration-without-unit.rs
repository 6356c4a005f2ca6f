use process_runtime::Process;

#[derive(Process)]
#[process(join_in = "30")]
struct Worker;

fn main() {}
