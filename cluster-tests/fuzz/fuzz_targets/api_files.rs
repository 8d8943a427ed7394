//! Fuzz target `api_files`: feeds each input to `metacenter::fuzzing::api_files`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_files(data);
});
