//! Arbitrary bytes as control-socket messages: one JSON body as a request and a response, and
//! a stream read by the framed reader (see `controlplane::fuzzing::control_decode`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run control_decode`. The saved corpus in `corpus/control_decode/` is
//! replayed by the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controlplane::fuzzing::control_decode(data);
});
