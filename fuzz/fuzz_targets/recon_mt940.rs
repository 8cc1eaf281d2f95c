#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huifu_fuzz::recon::mt940(data));
