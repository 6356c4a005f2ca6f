use process_runtime::Process;

#[derive(Process)]
#[process(colour = "red")]
struct Worker;

fn main() {}
