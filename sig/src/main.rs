#[allow(dead_code)]
mod sdp;
fn main() {}
