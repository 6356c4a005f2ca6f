use process_runtime::Process;

#[derive(Process)]
#[process(mailbox = "100")]
struct Worker;

fn main() {}
