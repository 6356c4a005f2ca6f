fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let f: fn(u64) -> u64 = double;
    let _ = process_runtime::spawn(21u64, f);
}
