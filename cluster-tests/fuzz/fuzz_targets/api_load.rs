//! Fuzz target `api_load`: feeds each input to `metacenter::fuzzing::api_load`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_load(data);
});
