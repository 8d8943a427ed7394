//! Fuzz target `api_ws`: feeds each input to `metacenter::fuzzing::api_ws`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_ws(data);
});
