//! The shared in-memory harness lives in `sfu_core::testing`.
#![allow(unused_imports)]

pub use sfu_core::testing::*;
