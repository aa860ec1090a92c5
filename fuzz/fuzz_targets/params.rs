//! Form and JSON bodies: never panic; whatever parses has no repeated known parameter, no
//! control character, and respects the length limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portero_core::params::{FieldLimits, KNOWN, Params};

fuzz_target!(|data: &[u8]| {
    let mut limits = FieldLimits::default();
    limits.per_field.insert("username".into(), 20);
    for parsed in [Params::from_form(data, &limits), Params::from_json(data, &limits)] {
        let Ok(params) = parsed else { continue };
        for name in KNOWN {
            let values = params.all(name);
            assert!(values.len() <= 1 || *name == "resource", "{name} repeated");
            for value in values {
                assert!(!value.is_empty() && !value.chars().any(char::is_control));
                if *name == "username" {
                    assert!(value.chars().count() <= 20);
                }
            }
        }
    }
});
