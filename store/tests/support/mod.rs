//! The in-process cluster harness lives in the library (`flotilla_store::testing`) so the
//! crates built on the store can use it too.

#![allow(unused_imports)]

pub use flotilla_store::testing::*;
