//! Fuzz target `chunk_decode`: feeds each input to `metacenter::fuzzing::chunk_decode`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::chunk_decode(data);
});
