//! Fuzz target `api_points`: feeds each input to `metacenter::fuzzing::api_points`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_points(data);
});
