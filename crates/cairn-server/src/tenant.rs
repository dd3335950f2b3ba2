//! Which tenant a request belongs to, and whether the caller may use it.
//!
//! Every source of a tenant (the `X-Scope-OrgID` header, the basic-auth user
//! name, the fixed tenant when multi-tenancy is off) goes through
//! [`TenantId::new`], so nothing unvalidated reaches a path. The
//! [`AuthContext`] resolved by the authentication layer then decides whether
//! the user may read or write that tenant (403 otherwise).
//!
//! Rules, in order:
//! 1. Multi-tenancy off: the configured fixed tenant (Mimir's
//!    `-auth.multitenancy-enabled=false` / `-auth.no-auth-tenant`).
//! 2. `X-Scope-OrgID` present and not empty: that tenant. An empty value is
//!    the same as no header (Mimir reads the header with `Header.Get`, which
//!    cannot tell the two apart, and answers `no org id`).
//! 3. No header, basic auth with `auth.user_as_tenant`: the user name.
//! 4. Otherwise 401 `no org id`.

use axum::http::{HeaderMap, StatusCode};
use cairn_model::{TenantId, TenantIdError};

use crate::auth::{AuthContext, Right};
use crate::error::{ApiError, WriteApiError};

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

/// Why a request has no usable tenant.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// Missing or invalid tenant ID (401 for missing, 400 otherwise).
    #[error(transparent)]
    Invalid(#[from] TenantIdError),
    /// The authenticated user may not use this tenant this way (403).
    #[error("user '{user}' may not {right} tenant '{tenant}' (err-cairn-tenant-forbidden)")]
    Forbidden {
        user: String,
        tenant: String,
        right: Right,
    },
    /// The request did not pass through the authentication layer (401).
    #[error("unauthorized (err-cairn-unauthorized)")]
    Unauthenticated,
}

/// The single tenant of a write request. Several tenants (`a|b`) are refused
/// because `|` is not a tenant character.
pub fn write_tenant(auth: &AuthContext, headers: &HeaderMap) -> Result<TenantId, TenantError> {
    resolve(auth, headers, Right::Write)
}

/// The tenant of a read request. Tenant federation (`a|b`) is a later
/// feature; until then a read names exactly one tenant, as for writes.
pub fn read_tenant(auth: &AuthContext, headers: &HeaderMap) -> Result<TenantId, TenantError> {
    resolve(auth, headers, Right::Read)
}

/// The tenant an admin endpoint acts on, by the same rules; an admin
/// (checked first with [`AuthContext::require_admin`]) may name any tenant,
/// whatever its read and write rights.
pub fn admin_tenant(auth: &AuthContext, headers: &HeaderMap) -> Result<TenantId, TenantError> {
    named_tenant(auth, headers)
}

fn resolve(auth: &AuthContext, headers: &HeaderMap, right: Right) -> Result<TenantId, TenantError> {
    let tenant = named_tenant(auth, headers)?;
    if let Some(user) = &auth.user {
        if !user.may(right, tenant.as_str()) {
            return Err(TenantError::Forbidden {
                user: user.name.clone(),
                tenant: tenant.as_str().to_string(),
                right,
            });
        }
    }
    Ok(tenant)
}

/// The tenant a request names (rules 1 to 4 above), rights unchecked.
fn named_tenant(auth: &AuthContext, headers: &HeaderMap) -> Result<TenantId, TenantError> {
    if !auth.authenticated {
        return Err(TenantError::Unauthenticated);
    }
    let tenant = if !auth.tenancy.multitenancy_enabled {
        TenantId::new(&auth.tenancy.no_auth_tenant)?
    } else {
        match header_tenant(headers)? {
            Some(value) => TenantId::new(&value)?,
            None => match (&auth.user, auth.user_as_tenant) {
                (Some(user), true) => TenantId::new(&user.name)?,
                _ => return Err(TenantIdError::Missing.into()),
            },
        }
    };
    Ok(tenant)
}

/// The trimmed `X-Scope-OrgID` value; `None` when absent or empty.
fn header_tenant(headers: &HeaderMap) -> Result<Option<String>, TenantIdError> {
    let Some(raw) = headers.get(ORG_ID_HEADER) else {
        return Ok(None);
    };
    let value = raw
        .to_str()
        .map_err(|_| TenantIdError::UnsupportedCharacter {
            id: String::from_utf8_lossy(raw.as_bytes()).into_owned(),
            character: char::REPLACEMENT_CHARACTER,
        })?
        .trim();
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(value.to_string()))
}

impl From<TenantError> for ApiError {
    fn from(err: TenantError) -> ApiError {
        match err {
            TenantError::Invalid(invalid) => ApiError::from(invalid),
            TenantError::Forbidden { .. } => ApiError {
                error_type: "forbidden",
                message: err.to_string(),
            },
            TenantError::Unauthenticated => ApiError {
                error_type: "unauthorized",
                message: err.to_string(),
            },
        }
    }
}

impl From<TenantError> for WriteApiError {
    fn from(err: TenantError) -> WriteApiError {
        match err {
            TenantError::Invalid(invalid) => WriteApiError::from(invalid),
            TenantError::Forbidden { .. } => {
                WriteApiError::new(StatusCode::FORBIDDEN, err.to_string())
            }
            TenantError::Unauthenticated => {
                WriteApiError::new(StatusCode::UNAUTHORIZED, err.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn none() -> AuthContext {
        AuthContext::anonymous(TenancyOptions::default())
    }

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(ORG_ID_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn missing_header_is_no_org_id() {
        let err = write_tenant(&none(), &HeaderMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "no org id");
    }

    #[test]
    fn several_tenants_are_refused_on_writes() {
        let err = write_tenant(&none(), &headers("a|b")).unwrap_err();
        assert!(matches!(
            err,
            TenantError::Invalid(TenantIdError::UnsupportedCharacter { character: '|', .. })
        ));
    }

    #[test]
    fn multitenancy_off_uses_the_fixed_tenant_and_ignores_the_header() {
        let options = TenancyOptions {
            multitenancy_enabled: false,
            no_auth_tenant: "anonymous".into(),
        };
        let tenant = write_tenant(&AuthContext::anonymous(options), &headers("other")).unwrap();
        assert_eq!(tenant.as_str(), "anonymous");
    }

    fn user(name: &str, read: &[&str], write: &[&str], user_as_tenant: bool) -> AuthContext {
        use crate::auth::{AuthUser, TenantSet};
        let set = |list: &[&str]| TenantSet::Some(list.iter().map(|t| t.to_string()).collect());
        AuthContext {
            tenancy: std::sync::Arc::new(TenancyOptions::default()),
            user: Some(std::sync::Arc::new(AuthUser {
                name: name.into(),
                read: set(read),
                write: set(write),
                admin: false,
            })),
            user_as_tenant,
            authenticated: true,
        }
    }

    #[test]
    fn rights_are_checked_per_tenant_and_per_read_or_write() {
        let reader = user("r", &["a"], &[], false);
        assert!(read_tenant(&reader, &headers("a")).is_ok());
        assert!(matches!(
            write_tenant(&reader, &headers("a")),
            Err(TenantError::Forbidden {
                right: Right::Write,
                ..
            })
        ));
        let err = read_tenant(&reader, &headers("b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user 'r' may not read tenant 'b' (err-cairn-tenant-forbidden)"
        );
    }

    #[test]
    fn the_user_name_is_the_tenant_only_without_a_header_and_when_enabled() {
        let as_tenant = user("team-p", &["team-p"], &["team-p"], true);
        assert_eq!(
            write_tenant(&as_tenant, &HeaderMap::new())
                .unwrap()
                .as_str(),
            "team-p"
        );
        assert_eq!(
            write_tenant(&as_tenant, &headers("  ")).unwrap().as_str(),
            "team-p"
        );
        assert!(matches!(
            write_tenant(&as_tenant, &headers("other")),
            Err(TenantError::Forbidden { .. })
        ));
        let off = user("team-p", &["team-p"], &["team-p"], false);
        assert!(matches!(
            write_tenant(&off, &HeaderMap::new()),
            Err(TenantError::Invalid(TenantIdError::Missing))
        ));
        // A user name that is not a valid tenant ID never becomes a path.
        let hostile = user("../x", &["*"], &["*"], true);
        assert!(matches!(
            write_tenant(&hostile, &HeaderMap::new()),
            Err(TenantError::Invalid(_))
        ));
    }

    #[test]
    fn outside_the_auth_layer_every_tenant_is_refused() {
        let err = read_tenant(&AuthContext::current(), &headers("a")).unwrap_err();
        assert!(matches!(err, TenantError::Unauthenticated));
    }
}
