//! The shared in-memory harness lives in `sfu_core::testing`.
#![allow(unused_imports)]

pub(crate) use sfu_core::testing::*;
