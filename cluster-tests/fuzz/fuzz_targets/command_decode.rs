//! Fuzz target `command_decode`: feeds each input to `metacenter::fuzzing::command_decode`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::command_decode(data);
});
