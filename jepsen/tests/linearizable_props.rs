//! Properties over generated histories, and a timing run on a large one.

mod common;

use std::time::Instant;

use common::{inject_stale_read, register_history, Shape};
use flotilla_jepsen::checker::linearizable::{self, Config};
use flotilla_jepsen::Validity;
use proptest::prelude::*;

const SMALL: Shape = Shape { ops: 60, keys: 2, spacing_ns: 100, max_overlap_ns: 350 };

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_a_real_register_are_valid(seed in any::<u64>()) {
        let h = register_history(seed, SMALL);
        let verdict = linearizable::check(&h, &Config::default());
        prop_assert_eq!(verdict.valid, Validity::Valid, "{}", verdict.details);
    }

    #[test]
    fn one_injected_stale_read_is_invalid(seed in any::<u64>(), pick in any::<usize>()) {
        let h = inject_stale_read(register_history(seed, SMALL), "k0", pick);
        let verdict = linearizable::check(&h, &Config::default());
        prop_assert_eq!(verdict.valid, Validity::Invalid, "{}", verdict.details);
    }
}

/// Not a timing assertion: prints how long 10k ops over 100 keys take, and checks the verdict.
#[test]
fn ten_thousand_ops_over_a_hundred_keys() {
    let shape = Shape { ops: 10_000, keys: 100, spacing_ns: 10, max_overlap_ns: 2_000 };
    let h = register_history(7, shape);
    let started = Instant::now();
    let verdict = linearizable::check(&h, &Config::default());
    println!("checked {} ops over {} keys in {:?}", shape.ops, shape.keys, started.elapsed());
    assert_eq!(verdict.valid, Validity::Valid, "{}", verdict.details);
}
