//! Tenant IDs, validated as Mimir (dskit `tenant.ValidTenantID`) does, plus
//! Cairn's reservation of the `__cairn` prefix.

use std::fmt;

/// Longest tenant ID accepted, in bytes (dskit `tenant.MaxTenantIDLength`).
pub const MAX_TENANT_ID_LEN: usize = 150;

/// Prefix reserved for Cairn's own internal tenants (for example usage data).
const RESERVED_PREFIX: &str = "__cairn";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("no org id")]
    Missing,
    #[error("tenant ID is too long: max {MAX_TENANT_ID_LEN} characters")]
    TooLong,
    #[error("tenant ID is '.' or '..'")]
    DotOrDotDot,
    #[error("tenant ID '{id}' contains unsupported character '{character}'")]
    UnsupportedCharacter { id: String, character: char },
    #[error(
        "tenant ID '{0}' uses the prefix '__cairn', which is reserved for Cairn's internal tenants"
    )]
    Reserved(String),
    #[error("multiple org IDs present")]
    Multiple,
}

/// A validated tenant ID: safe to use as one path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates an ID supplied by a client. Reserved `__cairn` IDs are refused.
    pub fn new(id: &str) -> Result<TenantId, TenantIdError> {
        let tenant = TenantId::new_internal(id)?;
        if id.starts_with(RESERVED_PREFIX) {
            return Err(TenantIdError::Reserved(id.to_string()));
        }
        Ok(tenant)
    }

    /// Validates an ID for Cairn's own use; allows the reserved prefix.
    pub fn new_internal(id: &str) -> Result<TenantId, TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Missing);
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return Err(TenantIdError::TooLong);
        }
        if id == "." || id == ".." {
            return Err(TenantIdError::DotOrDotDot);
        }
        if let Some(character) = id.chars().find(|c| !is_tenant_char(*c)) {
            return Err(TenantIdError::UnsupportedCharacter {
                id: id.to_string(),
                character,
            });
        }
        Ok(TenantId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of Cairn's reserved internal tenants.
    pub fn is_internal(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

/// Parses an `X-Scope-OrgID` value that may name several tenants joined by
/// `|` (tenant federation on reads). The result is sorted and de-duplicated,
/// as dskit's `tenant.TenantIDsFromOrgID` does.
pub fn parse_tenant_ids(header: &str) -> Result<Vec<TenantId>, TenantIdError> {
    let mut ids = header
        .split('|')
        .map(TenantId::new)
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mimir_tenant_characters() {
        for ok in ["team-a", "A_b.c", "x!*'()", &"a".repeat(150)] {
            assert_eq!(TenantId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_what_would_escape_a_path_or_break_rules() {
        assert_eq!(TenantId::new(""), Err(TenantIdError::Missing));
        assert_eq!(TenantId::new("."), Err(TenantIdError::DotOrDotDot));
        assert_eq!(TenantId::new(".."), Err(TenantIdError::DotOrDotDot));
        assert_eq!(TenantId::new(&"a".repeat(151)), Err(TenantIdError::TooLong));
        let err = TenantId::new("../etc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenant ID '../etc' contains unsupported character '/'"
        );
        assert!(matches!(
            TenantId::new("a|b"),
            Err(TenantIdError::UnsupportedCharacter { character: '|', .. })
        ));
        assert!(matches!(
            TenantId::new("__cairn_usage__"),
            Err(TenantIdError::Reserved(_))
        ));
        assert!(TenantId::new_internal("__cairn_usage__")
            .unwrap()
            .is_internal());
    }

    #[test]
    fn federation_header_is_sorted_and_deduplicated() {
        let ids = parse_tenant_ids("b|a|b").unwrap();
        let names: Vec<&str> = ids.iter().map(TenantId::as_str).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(parse_tenant_ids("a||b").is_err());
    }
}
