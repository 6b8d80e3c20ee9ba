//! Arbitrary bytes as vxswitchd's state file: what the reader accepts must be a configuration
//! the switch could have written (see `dataplane::fuzzing::state_file`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run state_file`. The saved corpus in `corpus/state_file/` is
//! replayed by the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::fuzzing::state_file(data);
});
