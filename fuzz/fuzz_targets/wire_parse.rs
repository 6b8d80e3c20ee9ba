//! Arbitrary bytes through every wire view of `dataplane::wire`.
//!
//! After `new_checked` succeeds no getter may panic, whatever the bytes; the setters that keep
//! length fields unchanged may not panic either, and every checksum filler must produce a
//! checksum that verifies. The walk lives in `dataplane::wire::exercise`, shared with the unit
//! tests over the captured fixtures. The seeds in `corpus/wire_parse/` are whole VXLAN frames
//! captured from the Linux vxlan driver (`dataplane/tests/fixtures/`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run wire_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::wire::exercise::fuzz_one(data);
});
