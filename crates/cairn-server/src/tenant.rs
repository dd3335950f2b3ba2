//! Which tenant a request belongs to.
//!
//! Every source of a tenant goes through [`TenantId::new`], so nothing
//! unvalidated reaches a path. Authentication modes arrive with the tenancy
//! work; today the tenant is the `X-Scope-OrgID` header, or the configured
//! fixed tenant when multi-tenancy is off (Mimir's
//! `-auth.multitenancy-enabled=false` / `-auth.no-auth-tenant`).

use axum::http::HeaderMap;
use cairn_model::{TenantId, TenantIdError};

/// The header Mimir and Cortex read the tenant from.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";

#[derive(Clone, Debug)]
pub struct TenancyOptions {
    /// When false every request belongs to `no_auth_tenant`.
    pub multitenancy_enabled: bool,
    pub no_auth_tenant: String,
}

impl Default for TenancyOptions {
    fn default() -> Self {
        TenancyOptions {
            multitenancy_enabled: true,
            no_auth_tenant: "anonymous".to_string(),
        }
    }
}

/// The single tenant of a write request. Several tenants (`a|b`) are refused
/// because `|` is not a tenant character.
pub fn write_tenant(
    options: &TenancyOptions,
    headers: &HeaderMap,
) -> Result<TenantId, TenantIdError> {
    if !options.multitenancy_enabled {
        return TenantId::new(&options.no_auth_tenant);
    }
    let value = headers
        .get(ORG_ID_HEADER)
        .ok_or(TenantIdError::Missing)?
        .to_str()
        .map_err(|_| TenantIdError::UnsupportedCharacter {
            id: String::from_utf8_lossy(headers[ORG_ID_HEADER].as_bytes()).into_owned(),
            character: char::REPLACEMENT_CHARACTER,
        })?;
    TenantId::new(value.trim())
}

/// The tenant of a read request. Tenant federation (`a|b`) is a later
/// feature; until then a read names exactly one tenant, as for writes.
pub fn read_tenant(
    options: &TenancyOptions,
    headers: &HeaderMap,
) -> Result<TenantId, TenantIdError> {
    write_tenant(options, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(ORG_ID_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn missing_header_is_no_org_id() {
        let err = write_tenant(&TenancyOptions::default(), &HeaderMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "no org id");
    }

    #[test]
    fn several_tenants_are_refused_on_writes() {
        let err = write_tenant(&TenancyOptions::default(), &headers("a|b")).unwrap_err();
        assert!(matches!(
            err,
            TenantIdError::UnsupportedCharacter { character: '|', .. }
        ));
    }

    #[test]
    fn multitenancy_off_uses_the_fixed_tenant_and_ignores_the_header() {
        let options = TenancyOptions {
            multitenancy_enabled: false,
            no_auth_tenant: "anonymous".into(),
        };
        let tenant = write_tenant(&options, &headers("other")).unwrap();
        assert_eq!(tenant.as_str(), "anonymous");
    }
}
