//! JSON properties: conversion never panics, the direct reader and `decode` answer as the
//! reference reader does, and a valid entity survives its stored form.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ds_model::fuzz::entity_json(data);
});
