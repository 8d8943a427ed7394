//! Fuzz target `api_search`: feeds each input to `metacenter::fuzzing::api_search`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_search(data);
});
