use process_runtime::Process;

#[derive(Process)]
#[process(name = "")]
struct Worker;

fn main() {}
