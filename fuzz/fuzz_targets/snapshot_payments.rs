#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huifu_fuzz::snapshot::payments(data));
