//! Fuzz target `api_services`: feeds each input to `metacenter::fuzzing::api_services`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::api_services(data);
});
