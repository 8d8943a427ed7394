//! Fuzz target `peer_rpc`: feeds each input to `metacenter::fuzzing::peer_rpc`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::peer_rpc(data);
});
