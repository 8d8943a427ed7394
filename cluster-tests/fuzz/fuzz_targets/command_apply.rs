//! Fuzz target `command_apply`: feeds each input to `metacenter::fuzzing::command_apply`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    metacenter::fuzzing::command_apply(data);
});
