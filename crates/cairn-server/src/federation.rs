//! What one read sees: a single tenant's store, or, with tenant federation
//! (`X-Scope-OrgID: a|b`), several tenants merged by [`FederatedQueryable`].
//!
//! The merge follows Mimir (`pkg/querier/tenantfederation`):
//! - every series of a federated read carries `__tenant_id__="<tenant>"`; a
//!   `__tenant_id__` label already in the data is kept as
//!   `original___tenant_id__` (not recursively);
//! - matchers on `__tenant_id__` choose which tenants are read at all and are
//!   not passed to storage; matchers on `original___tenant_id__` are passed
//!   on as matchers on the stored `__tenant_id__`;
//! - the label names API lists `__tenant_id__`; its values API answers the
//!   tenants;
//! - a read that resolves to one tenant (no `|`, or `a|a`) bypasses the
//!   merge and adds no label, as Mimir's `bypassWithSingleID`.
//!
//! Unlike Mimir, `__tenant_id__` is listed (as name or value) only for
//! tenants that have a matching series in the range, as the labels APIs
//! answer for every other label. Tenants are read one after another inside
//! the query's one scheduler slot, so a federated query takes no more
//! workers than any other (Mimir fans out up to
//! `-tenant-federation.max-concurrent` per query).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn_model::{
    EmptyQueryable, Exemplar, Labels, Matcher, MetricMetadata, Queryable, Series, StorageError,
    TenantId, TimeRange,
};
use cairn_tsdb::{TenantStore, Tsdb};

use crate::limits::query::LimitedQueryable;
use crate::limits::{Limits, Overrides};

use axum::http::{HeaderMap, StatusCode};

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::{ApiError, WriteApiError};
use crate::tenant::{self, TenantError};

/// The label that names a series' tenant in federated reads.
pub const TENANT_LABEL: &str = "__tenant_id__";
/// Where a stored `__tenant_id__` label goes in federated reads.
pub const ORIGINAL_TENANT_LABEL: &str = "original___tenant_id__";

/// The tenants one read covers, sorted, each with its store (`None` for a
/// tenant that never wrote) and its limits.
pub(crate) struct ReadTarget {
    members: Vec<(TenantId, Option<Arc<Tsdb>>, Arc<Limits>)>,
}

/// Why a read has no target.
#[derive(Debug)]
pub(crate) enum ReadTargetError {
    Tenant(TenantError),
    /// Storage is still opening (503).
    Unavailable,
}

impl From<ReadTargetError> for ApiError {
    fn from(err: ReadTargetError) -> ApiError {
        match err {
            ReadTargetError::Tenant(err) => err.into(),
            ReadTargetError::Unavailable => ApiError::unavailable(),
        }
    }
}

impl From<ReadTargetError> for WriteApiError {
    fn from(err: ReadTargetError) -> WriteApiError {
        match err {
            ReadTargetError::Tenant(err) => err.into(),
            ReadTargetError::Unavailable => WriteApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is still starting (replaying the write-ahead log)",
            ),
        }
    }
}

impl ReadTarget {
    /// The tenants the request may read ([`tenant::read_tenants`]) and their stores.
    pub fn from_request(
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<ReadTarget, ReadTargetError> {
        let tenants = tenant::read_tenants(&AuthContext::current(), headers)
            .map_err(ReadTargetError::Tenant)?;
        let store = state.store.get().ok_or(ReadTargetError::Unavailable)?;
        Ok(ReadTarget::new(store, &state.overrides, tenants))
    }

    /// `tenants` as [`crate::tenant::read_tenants`] returns them: validated,
    /// authorised, sorted and unique.
    pub fn new(store: &TenantStore, overrides: &Overrides, tenants: Vec<TenantId>) -> ReadTarget {
        let members = tenants
            .into_iter()
            .map(|tenant| {
                let db = store.get(&tenant);
                let limits = overrides.for_tenant(&tenant);
                (tenant, db, limits)
            })
            .collect();
        ReadTarget { members }
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.members.iter().map(|(tenant, _, _)| tenant)
    }

    /// The limits of each tenant of the read. Checks on the whole query
    /// (length, timeout) apply every tenant's, i.e. the strictest, as Mimir
    /// does for federated queries.
    pub fn limits(&self) -> impl Iterator<Item = &Limits> {
        self.members.iter().map(|(_, _, limits)| limits.as_ref())
    }

    /// The tenants of the read that have data (tenants that never wrote
    /// are not charged for reads in the usage report).
    pub fn stored_tenants(&self) -> Vec<&TenantId> {
        self.members
            .iter()
            .filter(|(_, db, _)| db.is_some())
            .map(|(tenant, _, _)| tenant)
            .collect()
    }

    pub fn is_federated(&self) -> bool {
        self.members.len() > 1
    }

    /// The scheduler queue of this read: the tenant, or the `|`-joined list
    /// for a federated read (Mimir queues by the whole org ID too).
    pub fn queue_key(&self) -> String {
        let names: Vec<&str> = self.tenants().map(TenantId::as_str).collect();
        names.join("|")
    }

    /// Runs `read` over the store the engine reads: the tenant's own (an
    /// empty one if it never wrote), or the federation of all of them; each
    /// tenant's part under that tenant's query limits (lookback, fetched
    /// series and bytes), as each tenant's querier in Mimir.
    pub fn read<T>(&self, now_ms: i64, read: impl FnOnce(&dyn Queryable) -> T) -> T {
        let limited: Vec<LimitedQueryable<'_>> = self
            .members
            .iter()
            .map(|(_, db, limits)| {
                let store: &dyn Queryable = match db {
                    Some(db) => db.as_ref(),
                    None => &EmptyQueryable,
                };
                LimitedQueryable::new(store, limits, now_ms)
            })
            .collect();
        if !self.is_federated() {
            return match limited.first() {
                Some(single) => read(single),
                None => read(&EmptyQueryable),
            };
        }
        let members = self
            .tenants()
            .cloned()
            .zip(limited.iter().map(|q| q as &dyn Queryable))
            .collect();
        read(&FederatedQueryable::new(members))
    }

    /// Exemplars of the series matching any of the sets, each series once,
    /// sorted by labels (federated series labelled with their tenant).
    pub fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        range: TimeRange,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let mut by_series: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for matchers in matcher_sets {
            let (chosen, forwarded) = if self.is_federated() {
                split_tenant_matchers(self.tenants(), matchers)
            } else {
                ((0..self.members.len()).collect(), matchers.clone())
            };
            for index in chosen {
                let (tenant, db, _) = &self.members[index];
                let Some(db) = db else { continue };
                for (labels, exemplars) in db.exemplars(&forwarded, range) {
                    let labels = if self.is_federated() {
                        with_tenant(&labels, tenant.as_str())
                    } else {
                        labels
                    };
                    by_series.entry(labels).or_insert(exemplars);
                }
            }
        }
        by_series.into_iter().collect()
    }

    /// Metadata of every tenant, sorted by metric family name; identical
    /// entries of several tenants appear once (Mimir's
    /// `mergeMetadataSupplier`), differing ones each appear.
    pub fn metadata(&self) -> Vec<MetricMetadata> {
        let mut out: Vec<MetricMetadata> = Vec::new();
        for (_, db, _) in &self.members {
            if let Some(db) = db {
                out.extend(db.metadata());
            }
        }
        let key = |m: &MetricMetadata| {
            (
                m.metric_family_name.clone(),
                m.metric_type.as_str(),
                m.help.clone(),
                m.unit.clone(),
            )
        };
        out.sort_by_cached_key(key);
        out.dedup();
        out
    }
}

/// One tenant of a federation and its store.
type Member<'a> = (TenantId, &'a dyn Queryable);

/// Several tenants' stores read as one, each series labelled with its tenant.
pub struct FederatedQueryable<'a> {
    /// Sorted by tenant.
    members: Vec<Member<'a>>,
}

impl<'a> FederatedQueryable<'a> {
    pub fn new(mut members: Vec<Member<'a>>) -> FederatedQueryable<'a> {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|a, b| a.0 == b.0);
        FederatedQueryable { members }
    }

    /// The members the matchers choose, and the matchers to pass to them.
    fn choose(&self, matchers: &[Matcher]) -> (Vec<&Member<'a>>, Vec<Matcher>) {
        let (chosen, forwarded) =
            split_tenant_matchers(self.members.iter().map(|(tenant, _)| tenant), matchers);
        (
            chosen.into_iter().map(|i| &self.members[i]).collect(),
            forwarded,
        )
    }
}

impl Queryable for FederatedQueryable<'_> {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        let (chosen, forwarded) = self.choose(matchers);
        let mut out = Vec::new();
        for (tenant, queryable) in chosen {
            for mut series in queryable.select(&forwarded, range)? {
                series.labels = with_tenant(&series.labels, tenant.as_str());
                out.push(series);
            }
        }
        // Each tenant's part is sorted, but the tenant label sits among the
        // others, so the parts interleave.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series_labels(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, StorageError> {
        let (chosen, forwarded) = self.choose(matchers);
        let mut out = Vec::new();
        for (tenant, queryable) in chosen {
            for labels in queryable.series_labels(&forwarded, range)? {
                out.push(with_tenant(&labels, tenant.as_str()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        let (chosen, forwarded) = self.choose(matchers);
        let mut names = BTreeSet::new();
        for (_, queryable) in chosen {
            names.extend(queryable.label_names(&forwarded, range)?);
        }
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if names.contains(TENANT_LABEL) {
            names.insert(ORIGINAL_TENANT_LABEL.to_string());
        }
        names.insert(TENANT_LABEL.to_string());
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        let (chosen, forwarded) = self.choose(matchers);
        if name == TENANT_LABEL {
            let mut tenants = Vec::new();
            for (tenant, queryable) in chosen {
                if !queryable.label_names(&forwarded, range)?.is_empty() {
                    tenants.push(tenant.as_str().to_string());
                }
            }
            return Ok(tenants);
        }
        let stored_name = if name == ORIGINAL_TENANT_LABEL {
            TENANT_LABEL
        } else {
            name
        };
        let mut values = BTreeSet::new();
        for (_, queryable) in chosen {
            values.extend(queryable.label_values(stored_name, &forwarded, range)?);
        }
        Ok(values.into_iter().collect())
    }
}

/// Mimir's `FilterValuesByMatchers`: the indexes of the tenants every
/// `__tenant_id__` matcher accepts, and the remaining matchers with
/// `original___tenant_id__` renamed to the stored `__tenant_id__`.
fn split_tenant_matchers<'a>(
    tenants: impl Iterator<Item = &'a TenantId>,
    matchers: &[Matcher],
) -> (Vec<usize>, Vec<Matcher>) {
    let tenant_matchers: Vec<&Matcher> =
        matchers.iter().filter(|m| m.name == TENANT_LABEL).collect();
    let chosen = tenants
        .enumerate()
        .filter(|(_, tenant)| tenant_matchers.iter().all(|m| m.matches(tenant.as_str())))
        .map(|(i, _)| i)
        .collect();
    let forwarded = matchers
        .iter()
        .filter(|m| m.name != TENANT_LABEL)
        .map(|m| {
            let mut m = m.clone();
            if m.name == ORIGINAL_TENANT_LABEL {
                m.name = TENANT_LABEL.to_string();
            }
            m
        })
        .collect();
    (chosen, forwarded)
}

/// `labels` with `__tenant_id__="<tenant>"`; a stored `__tenant_id__` moves
/// to `original___tenant_id__` (Mimir's `setLabelsRetainExisting`).
fn with_tenant(labels: &Labels, tenant: &str) -> Labels {
    let mut builder = labels.builder();
    if let Some(stored) = labels.get(TENANT_LABEL) {
        builder.set(ORIGINAL_TENANT_LABEL, stored);
    }
    builder.set(TENANT_LABEL, tenant);
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::{MatchOp, Sample};

    /// A fixed set of series, answering like storage does.
    struct Fixed(Vec<Labels>);

    impl Queryable for Fixed {
        fn select(&self, matchers: &[Matcher], _: TimeRange) -> Result<Vec<Series>, StorageError> {
            let mut out: Vec<Series> = self
                .0
                .iter()
                .filter(|l| {
                    matchers
                        .iter()
                        .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
                })
                .map(|l| Series {
                    labels: l.clone(),
                    samples: vec![Sample { t: 1, v: 1.0 }],
                })
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(out)
        }

        fn label_names(&self, m: &[Matcher], r: TimeRange) -> Result<Vec<String>, StorageError> {
            let mut names = BTreeSet::new();
            for s in self.select(m, r)? {
                names.extend(s.labels.iter().map(|l| l.name.clone()));
            }
            Ok(names.into_iter().collect())
        }

        fn label_values(
            &self,
            name: &str,
            m: &[Matcher],
            r: TimeRange,
        ) -> Result<Vec<String>, StorageError> {
            let mut values = BTreeSet::new();
            for s in self.select(m, r)? {
                values.extend(s.labels.get(name).map(str::to_string));
            }
            Ok(values.into_iter().collect())
        }
    }

    fn federation() -> FederatedQueryable<'static> {
        let a = Fixed(vec![
            Labels::from_pairs(&[("__name__", "up"), ("job", "a-job")]),
            Labels::from_pairs(&[("__name__", "up"), ("__tenant_id__", "stored")]),
        ]);
        let b = Fixed(vec![Labels::from_pairs(&[
            ("__name__", "up"),
            ("job", "b-job"),
        ])]);
        let c = Fixed(vec![]);
        let leak = |f: Fixed| -> &'static dyn Queryable { Box::leak(Box::new(f)) };
        FederatedQueryable::new(vec![
            (TenantId::new("b").unwrap(), leak(b)),
            (TenantId::new("a").unwrap(), leak(a)),
            (TenantId::new("c").unwrap(), leak(c)),
        ])
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    /// The selected series' labels; the series API's answer must be the same.
    fn selected(f: &FederatedQueryable, matchers: &[Matcher]) -> Vec<String> {
        let selected: Vec<String> = f
            .select(matchers, TimeRange::all())
            .unwrap()
            .into_iter()
            .map(|s| s.labels.to_string())
            .collect();
        let listed: Vec<String> = f
            .series_labels(matchers, TimeRange::all())
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(listed, selected);
        selected
    }

    #[test]
    fn every_series_carries_its_tenant_and_a_stored_label_is_kept_as_original() {
        let f = federation();
        assert_eq!(
            selected(&f, &[m(MatchOp::Equal, "__name__", "up")]),
            [
                r#"up{__tenant_id__="a", job="a-job"}"#,
                r#"up{__tenant_id__="a", original___tenant_id__="stored"}"#,
                r#"up{__tenant_id__="b", job="b-job"}"#,
            ]
        );
    }

    #[test]
    fn tenant_matchers_choose_tenants_and_are_not_passed_to_storage() {
        let f = federation();
        assert_eq!(
            selected(&f, &[m(MatchOp::Equal, "__tenant_id__", "b")]),
            [r#"up{__tenant_id__="b", job="b-job"}"#]
        );
        assert_eq!(
            selected(
                &f,
                &[
                    m(MatchOp::RegexMatch, "__tenant_id__", "a|b"),
                    m(MatchOp::NotEqual, "__tenant_id__", "a"),
                ]
            ),
            [r#"up{__tenant_id__="b", job="b-job"}"#]
        );
        // A tenant outside the list is never read, whatever the matcher says.
        assert!(selected(&f, &[m(MatchOp::Equal, "__tenant_id__", "z")]).is_empty());
        assert_eq!(
            selected(&f, &[m(MatchOp::Equal, "original___tenant_id__", "stored")]),
            [r#"up{__tenant_id__="a", original___tenant_id__="stored"}"#]
        );
    }

    #[test]
    fn label_apis_list_the_tenant_label_and_the_tenants_with_series() {
        let f = federation();
        let all = TimeRange::all();
        assert_eq!(
            f.label_names(&[], all).unwrap(),
            ["__name__", "__tenant_id__", "job", "original___tenant_id__"]
        );
        assert_eq!(
            f.label_values("__tenant_id__", &[], all).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            f.label_values("__tenant_id__", &[m(MatchOp::Equal, "job", "b-job")], all)
                .unwrap(),
            ["b"]
        );
        assert_eq!(
            f.label_values("original___tenant_id__", &[], all).unwrap(),
            ["stored"]
        );
        assert_eq!(
            f.label_values("job", &[m(MatchOp::Equal, "__tenant_id__", "a")], all)
                .unwrap(),
            ["a-job"]
        );
        assert!(f
            .label_names(&[m(MatchOp::Equal, "__tenant_id__", "c")], all)
            .unwrap()
            .is_empty());
    }
}
