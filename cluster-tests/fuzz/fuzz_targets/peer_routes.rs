//! Fuzz target `peer_routes`: feeds each input to `metacenter::fuzzing::peer_routes`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::peer_routes(data);
});
