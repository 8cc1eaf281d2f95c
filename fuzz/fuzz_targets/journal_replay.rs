#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huifu_fuzz::journal_replay::run(data));
