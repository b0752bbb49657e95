//! Query filter text (`prop OP value`): parsing never panics, and a parsed filter prints as
//! text that parses back to the same filter.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ds_model::fuzz::query_filter(data);
});
