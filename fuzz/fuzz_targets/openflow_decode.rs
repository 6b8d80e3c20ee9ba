//! Arbitrary bytes through every decoder of the OpenFlow codec: flow mods, group mods,
//! packet-outs, flow stats requests, matches, actions and instructions, in OpenFlow 1.3 and
//! 1.4 (see `controlplane::fuzzing::openflow_decode`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run openflow_decode`. The seed corpus in
//! `corpus/openflow_decode/` holds the messages captured from ovs-ofctl and is replayed by the
//! normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controlplane::fuzzing::openflow_decode(data);
});
