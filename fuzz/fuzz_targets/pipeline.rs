//! An arbitrary frame from a pod port, or datagram from the underlay, through the whole pipeline
//! against tables with pods in two VNIs, several remote nodes and a flow program; the first byte
//! picks the entry, the tables and a virtio-net header (see `dataplane::fuzzing::pipeline`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run pipeline`. The saved corpus in `corpus/pipeline/` is
//! replayed by the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::fuzzing::pipeline(data);
});
