//! Transport key bytes: decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ds_model::fuzz::key_codec(data);
});
