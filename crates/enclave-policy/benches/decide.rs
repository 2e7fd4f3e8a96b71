//! Decision benchmark (filled in below).
fn main() {}
