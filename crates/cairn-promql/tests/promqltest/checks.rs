//! A tiny assertion collector for the runner's own self-checks (the DSL unit
//! checks that run before the suite, since this test target has no libtest harness).

use std::fmt::Debug;

#[derive(Default)]
pub struct Checks {
    pub passed: usize,
    pub failures: Vec<String>,
}

impl Checks {
    pub fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        if got == want {
            self.passed += 1;
        } else {
            self.failures
                .push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    pub fn ok(&mut self, what: &str, condition: bool, detail: impl FnOnce() -> String) {
        if condition {
            self.passed += 1;
        } else {
            self.failures.push(format!("{what}: {}", detail()));
        }
    }
}
