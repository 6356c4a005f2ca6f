use process_runtime::Process;

#[derive(Process)]
#[process(mailbox = 0)]
struct Worker;

fn main() {}
