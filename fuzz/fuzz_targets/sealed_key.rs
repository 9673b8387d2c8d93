//! Fuzz target `sealed_key`. What it checks is documented with its body, `ea_fuzz_targets::sealed_key`,
//! which the stable smoke run in CI shares.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ea_fuzz_targets::sealed_key::run(data));
