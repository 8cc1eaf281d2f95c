#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huifu_fuzz::recon::camt053(data));
