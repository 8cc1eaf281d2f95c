#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huifu_fuzz::store_records::run(data));
