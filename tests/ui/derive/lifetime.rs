use process_runtime::Process;

#[derive(Process)]
struct Worker<'a> {
    name: &'a str,
}

fn main() {}
