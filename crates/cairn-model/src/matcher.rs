//! Label matchers, with Prometheus's fully anchored regex semantics.
//!
//! Most regex matchers in dashboards are a list of literals (`a|b|c`), a
//! prefix or suffix around `.*`/`.+` (`10\.0\.1\..*`), or "label set"
//! (`.+`). As Prometheus's `FastRegexMatcher` (`model/labels/regexp.go`),
//! those are recognised from the parsed pattern and matched with string
//! operations, without building a regex engine (whose DFA construction was
//! most of a small query's fixed cost); the literal values also let the
//! index look their postings up directly ([`Matcher::set_values`]).

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} in matcher: {source}")]
pub struct MatcherError {
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// One label matcher. A missing label matches as the empty string, as in
/// Prometheus: `{a=""}` selects series without `a`.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The compiled pattern of a regex matcher that [`Fast`] cannot express.
    regex: Option<Regex>,
    /// A regex matcher's pattern as string operations, when it is one.
    fast: Option<Fast>,
}

/// A regex pattern matched without a regex engine.
#[derive(Clone, Debug, PartialEq)]
enum Fast {
    /// Exactly one of these values (a literal or an alternation of them).
    Set(Vec<String>),
    /// `prefix`, then any text (non-empty when `middle_non_empty`), then
    /// `suffix`: `prefix.*suffix` or `prefix.+suffix`, either side empty.
    Affix {
        prefix: String,
        suffix: String,
        middle_non_empty: bool,
    },
}

impl Fast {
    /// Recognises the forms above in the pattern as Prometheus anchors it
    /// (`(?s:pattern)`), with the regex crate's default syntax.
    fn of(pattern: &str) -> Option<Fast> {
        let hir = regex_syntax::parse(&format!("(?s:{pattern})")).ok()?;
        if let Some(values) = literals(&hir) {
            return Some(Fast::Set(values));
        }
        let parts: &[Hir] = match hir.kind() {
            HirKind::Concat(parts) => parts,
            _ => std::slice::from_ref(&hir),
        };
        let (prefix, rest) = match parts.split_first() {
            Some((first, rest)) if literal(first).is_some() => (literal(first)?, rest),
            _ => (String::new(), parts),
        };
        let (suffix, rest) = match rest.split_last() {
            Some((last, rest)) if literal(last).is_some() => (literal(last)?, rest),
            _ => (String::new(), rest),
        };
        let [middle] = rest else {
            return None;
        };
        let HirKind::Repetition(rep) = middle.kind() else {
            return None;
        };
        if rep.max.is_some() || rep.min > 1 || !is_any_char(&rep.sub) {
            return None;
        }
        Some(Fast::Affix {
            prefix,
            suffix,
            middle_non_empty: rep.min == 1,
        })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Fast::Set(values) => values.iter().any(|v| v == value),
            Fast::Affix {
                prefix,
                suffix,
                middle_non_empty,
            } => {
                let fixed = prefix.len() + suffix.len();
                let long_enough = if *middle_non_empty {
                    value.len() > fixed
                } else {
                    value.len() >= fixed
                };
                long_enough
                    && value.starts_with(prefix.as_str())
                    && value.ends_with(suffix.as_str())
            }
        }
    }
}

/// The text of a literal (`None` for anything else).
fn literal(hir: &Hir) -> Option<String> {
    match hir.kind() {
        HirKind::Literal(lit) => String::from_utf8(lit.0.to_vec()).ok(),
        _ => None,
    }
}

/// The values of a literal or an alternation of literals (an empty
/// alternative, as in `a|`, is the empty string).
fn literals(hir: &Hir) -> Option<Vec<String>> {
    let one = |h: &Hir| match h.kind() {
        HirKind::Empty => Some(String::new()),
        _ => literal(h),
    };
    match hir.kind() {
        HirKind::Alternation(alternatives) => alternatives.iter().map(one).collect(),
        _ => one(hir).map(|v| vec![v]),
    }
}

/// Whether `hir` is `.` with the `s` flag: every Unicode scalar value.
fn is_any_char(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            ranges.len() == 1 && ranges[0].start() == '\0' && ranges[0].end() == char::MAX
        }
        _ => false,
    }
}

impl Matcher {
    /// Builds a matcher; regex values are anchored at both ends
    /// (`^(?s:value)$`, as Prometheus's `labels.NewFastRegexMatcher`).
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let value = value.into();
        let (regex, fast) = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => match Fast::of(&value) {
                Some(fast) => (None, Some(fast)),
                None => {
                    let regex =
                        Regex::new(&format!("^(?s:{value})$")).map_err(|source| MatcherError {
                            pattern: value.clone(),
                            source,
                        })?;
                    (Some(regex), None)
                }
            },
            MatchOp::Equal | MatchOp::NotEqual => (None, None),
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
            fast,
        })
    }

    /// `name="value"`; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
            fast: None,
        }
    }

    /// The only values a `=~` matcher accepts when its pattern is a list
    /// of literals (`a|b|c`), so that an index can look them up instead of
    /// testing every value of the label.
    pub fn set_values(&self) -> Option<&[String]> {
        match (&self.op, &self.fast) {
            (MatchOp::RegexMatch, Some(Fast::Set(values))) => Some(values),
            _ => None,
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        match &self.fast {
            Some(fast) => fast.matches(value),
            None => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a label value (empty when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => self.regex_matches(value),
            MatchOp::RegexNoMatch => !self.regex_matches(value),
        }
    }

    /// Whether the matcher selects series that lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "job", "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("xapi"));
        assert!(!m.matches("apix"));
        let dot = Matcher::new(MatchOp::RegexMatch, "a", ".*").unwrap();
        assert!(dot.matches("x\ny"));
        assert!(dot.matches_empty());
    }

    #[test]
    fn negative_matchers_select_missing_labels() {
        let ne = Matcher::new(MatchOp::NotEqual, "a", "x").unwrap();
        assert!(ne.matches_empty());
        let nre = Matcher::new(MatchOp::RegexNoMatch, "a", "x.*").unwrap();
        assert!(nre.matches("y"));
        assert!(!nre.matches("xy"));
    }

    /// Every pattern form gives the same answers with and without the fast
    /// path (the fast path checked against the compiled regex).
    #[test]
    fn fast_patterns_match_as_the_regex() {
        let values = [
            "",
            "/",
            "/home",
            "/homex",
            "x/home",
            "10.0.1.5:9100",
            "10.0.1.",
            "10.0.10.1",
            "10x0x1x5",
            "lo",
            "veth0",
            "veth",
            "eth0",
            "a\nb",
            "ab",
            "b",
            "é",
            "api",
            "apix",
        ];
        let patterns = [
            ("/|/home", true),
            ("10\\.0\\.1\\..*", true),
            (".+", true),
            (".*", true),
            ("lo|veth.*", false),
            ("veth.*", true),
            (".*0", true),
            ("a.+b", true),
            ("ab|", true),
            ("api", true),
            ("(?i)api", false),
            ("(?-s:.*)", false),
            ("a|b|c", false),
            ("[ab]", false),
            ("x{2}", false),
            ("a.*b.*", false),
        ];
        for (pattern, fast) in patterns {
            let m = Matcher::new(MatchOp::RegexMatch, "a", pattern).unwrap();
            assert_eq!(m.fast.is_some(), fast, "{pattern}: {:?}", m.fast);
            let regex = Regex::new(&format!("^(?s:{pattern})$")).unwrap();
            for v in values {
                assert_eq!(m.matches(v), regex.is_match(v), "{pattern} on {v:?}");
                let not = Matcher::new(MatchOp::RegexNoMatch, "a", pattern).unwrap();
                assert_eq!(not.matches(v), !regex.is_match(v), "!~ {pattern} on {v:?}");
            }
        }
        let set = Matcher::new(MatchOp::RegexMatch, "a", "/|/home").unwrap();
        assert_eq!(
            set.set_values(),
            Some(&["/".to_string(), "/home".to_string()][..])
        );
        let not = Matcher::new(MatchOp::RegexNoMatch, "a", "/|/home").unwrap();
        assert_eq!(not.set_values(), None);
    }

    #[test]
    fn invalid_regex_is_an_error() {
        assert!(Matcher::new(MatchOp::RegexMatch, "a", "(").is_err());
    }
}
