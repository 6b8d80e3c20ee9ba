//! Arbitrary text through the flow syntax (`vxctl add-flow`, `del-flows`, `trace`, flows files
//! and bundles); what parses prints back to itself (see `controlplane::fuzzing::flow_syntax`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run flow_syntax`. The saved corpus in `corpus/flow_syntax/` is
//! replayed by the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controlplane::fuzzing::flow_syntax(data);
});
