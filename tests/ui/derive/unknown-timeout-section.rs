use process_runtime::Process;

#[derive(Process)]
#[process(timeout.main_loop = "10s", timeout(on_finish = "5s"))]
struct Worker;

fn main() {}
