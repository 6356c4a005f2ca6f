use process_runtime::Process;

#[derive(Process)]
#[process(mailbox = 1_000_001)]
struct Worker;

fn main() {}
