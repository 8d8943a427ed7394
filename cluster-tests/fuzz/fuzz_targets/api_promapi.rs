//! Fuzz target `api_promapi`: feeds each input to `metacenter::fuzzing::api_promapi`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_promapi(data);
});
