//! Fuzz target `config`: feeds each input to `metacenter::fuzzing::config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::config(data);
});
