fn main() {
    let factor = 3u64;
    let _ = process_runtime::spawn(14u64, move |x: u64| x * factor);
}
