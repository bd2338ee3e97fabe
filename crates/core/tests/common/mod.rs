//! Where the integration tests find their data (see `deepinterp-testdata`).

#![allow(unused_imports)]

pub use deepinterp_testdata::{fixture, keras_fixture, shared_or_skip};
