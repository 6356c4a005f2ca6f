use process_runtime::Process;

#[derive(Process)]
#[process(timeout.preloop = "0s", join_in = 0)]
struct Worker;

fn main() {}
