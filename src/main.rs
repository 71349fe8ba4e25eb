fn main() {
    println!("scanban {}", env!("CARGO_PKG_VERSION"));
}
