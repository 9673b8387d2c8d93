//! Fuzz target `policy_state`. What it checks is documented with its body, `ea_fuzz_targets::policy_state`,
//! which the stable smoke run in CI shares.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ea_fuzz_targets::policy_state::run(data));
