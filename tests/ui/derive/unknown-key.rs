use process_runtime::Process;

#[derive(Process)]
#[process(live = 3)]
struct Worker;

fn main() {}
