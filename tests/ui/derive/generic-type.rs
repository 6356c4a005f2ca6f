use process_runtime::Process;

#[derive(Process)]
struct Worker<T> {
    item: T,
}

fn main() {}
