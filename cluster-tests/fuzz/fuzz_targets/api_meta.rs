//! Fuzz target `api_meta`: feeds each input to `metacenter::fuzzing::api_meta`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_meta(data);
});
