//! Key text: parsing never panics, and a parsed key prints back to text that parses to it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ds_model::fuzz::key_parse(data);
});
