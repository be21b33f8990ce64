//! Reading the caller's activity log (`activity.*`) and pruning it past the
//! retention setting.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::events::service::parse_date;
use crate::state::AppState;
use crate::wire::{is_id, lenient, parse_time, PageRequest, Validator};

use super::model::{Activity, ACTIVITY};

const DEFAULT_LIMIT: u64 = 50;

/// `activity.list` query.
#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page number from 1.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub page: Option<u64>,
    /// Page size, 1–100 (default 50).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub limit: Option<u64>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    /// Only responses with status 400 and above.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[param(value_type = Option<bool>)]
    pub errors_only: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub min_status: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub max_status: Option<u64>,
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: Option<String>,
    pub realm_id: Option<String>,
}

/// The `metadata` object beside an activity page.
#[derive(Serialize, Debug, Clone, Copy, utoipa::ToSchema)]
pub struct PageMetadata {
    pub total: u64,
    pub page: u64,
    pub limit: u64,
    pub pages: u64,
}

/// Every record of `user_id`, oldest first.
fn records(state: &AppState, user_id: &str) -> Result<Vec<Activity>, ApiError> {
    let chunks = state.store.group(&ACTIVITY, user_id)?;
    Ok(chunks.into_iter().flatten().collect())
}

/// `activity.list`: newest first.
pub fn list(
    state: &AppState,
    user_id: &str,
    q: &ListQuery,
) -> Result<(Vec<Activity>, PageMetadata), ApiError> {
    let page = PageRequest::from_query(q.page, q.limit, DEFAULT_LIMIT)?;
    let mut v = Validator::new();
    if let Some(m) = &q.method {
        v.check(
            "method",
            ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()),
            "must be GET, POST, PUT, PATCH or DELETE",
        );
    }
    if let Some(r) = &q.realm_id {
        v.check(
            "realm_id",
            is_id(r),
            "must be a 24-character lowercase hex id",
        );
    }
    for (field, value) in [("min_status", q.min_status), ("max_status", q.max_status)] {
        if let Some(s) = value {
            v.check(
                field,
                (100..=599).contains(&s),
                "must be between 100 and 599",
            );
        }
    }
    let from = parse_date(&mut v, "start_date", q.start_date.as_deref(), false);
    let until = parse_date(&mut v, "end_date", q.end_date.as_deref(), true);
    v.finish()?;
    let min = q
        .min_status
        .unwrap_or(0)
        .max(if q.errors_only == Some(true) { 400 } else { 0 });
    let max = q.max_status.unwrap_or(u64::MAX);
    let mut records = records(state, user_id)?;
    records.retain(|a| {
        let status = u64::from(a.status_code);
        let at = parse_time(&a.created_at);
        a.user_id == user_id
            && status >= min
            && status <= max
            && q.method.as_deref().is_none_or(|m| a.method == m)
            && q.realm_id
                .as_deref()
                .is_none_or(|r| a.realm_id.as_deref() == Some(r))
            && from.is_none_or(|f| at.is_some_and(|t| t >= f))
            && until.is_none_or(|u| at.is_some_and(|t| t <= u))
    });
    records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let total = records.len() as u64;
    let metadata = PageMetadata {
        total,
        page: page.page,
        limit: page.limit,
        pages: total.div_ceil(page.limit),
    };
    Ok((page.slice(records), metadata))
}

/// `activity.getStats`.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ActivityStats {
    /// Bytes the caller's records take in the store.
    pub total_size_bytes: u64,
    pub total_records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_record: Option<String>,
    pub retention_days: u32,
}

pub fn stats(state: &AppState, user_id: &str) -> Result<ActivityStats, ApiError> {
    let records = records(state, user_id)?;
    let total_size_bytes = records
        .iter()
        .map(|a| serde_json::to_vec(a).map(|b| b.len() as u64).unwrap_or(0))
        .sum();
    Ok(ActivityStats {
        total_size_bytes,
        total_records: records.len() as u64,
        oldest_record: records.iter().map(|a| a.created_at.clone()).min(),
        newest_record: records.iter().map(|a| a.created_at.clone()).max(),
        retention_days: state.settings.activity_retention_days,
    })
}

/// Deletes records older than `retention_days` (0 keeps everything).
/// Returns how many chunks went (see [`ACTIVITY`]); a chunk goes once its
/// newest record is past retention.
pub fn prune_older_than(state: &AppState, retention_days: u32) -> Result<u64, ApiError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = OffsetDateTime::now_utc() - Duration::days(i64::from(retention_days));
    // Ids start with their creation second as 8 hex digits: every id below
    // this bound is older than the cutoff.
    let bound = hex::encode((cutoff.unix_timestamp().max(0) as u32).to_be_bytes());
    Ok(state.store.remove_in_groups_before(&ACTIVITY, &bound)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> crate::testing::TempState {
        crate::testing::TempState::new("activity")
    }

    fn put(state: &AppState, id: &str, user: &str, status: u16, created_at: &str) {
        let a = Activity {
            id: id.into(),
            user_id: user.into(),
            realm_id: None,
            method: "GET".into(),
            path: "/api/v1/x".into(),
            status_code: status,
            ip_address: "127.0.0.1".into(),
            user_agent: "test".into(),
            token_id: None,
            created_at: created_at.into(),
        };
        state
            .store
            .put_in_group(&ACTIVITY, user, id, &vec![a])
            .unwrap();
    }

    const ALICE: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    #[tokio::test]
    async fn lists_newest_first_with_filters_and_metadata() {
        let s = state();
        let recent = crate::wire::new_id();
        put(&s, &recent, ALICE, 404, &crate::wire::now());
        put(
            &s,
            "000000010000000000000000",
            ALICE,
            200,
            "1970-01-01T00:00:01Z",
        );
        put(
            &s,
            &crate::wire::new_id(),
            "bbbbbbbbbbbbbbbbbbbbbbbb",
            200,
            &crate::wire::now(),
        );
        let (all, meta) = list(&s, ALICE, &ListQuery::default()).unwrap();
        assert_eq!(meta.total, 2);
        assert_eq!(all[0].id, recent);
        let q = ListQuery {
            errors_only: Some(true),
            ..ListQuery::default()
        };
        assert_eq!(list(&s, ALICE, &q).unwrap().1.total, 1);
        let bad = ListQuery {
            method: Some("TRACE".into()),
            ..ListQuery::default()
        };
        assert!(list(&s, ALICE, &bad).is_err());
        assert_eq!(stats(&s, ALICE).unwrap().total_records, 2);
    }

    #[tokio::test]
    async fn prune_deletes_only_records_past_retention() {
        let s = state();
        put(
            &s,
            "000000010000000000000000",
            ALICE,
            200,
            "1970-01-01T00:00:01Z",
        );
        put(&s, &crate::wire::new_id(), ALICE, 200, &crate::wire::now());
        // Another user's old records go too; their recent ones stay.
        put(
            &s,
            "000000020000000000000000",
            BOB,
            200,
            "1970-01-01T00:00:02Z",
        );
        put(
            &s,
            "000000030000000000000000",
            BOB,
            200,
            "1970-01-01T00:00:03Z",
        );
        put(&s, &crate::wire::new_id(), BOB, 200, &crate::wire::now());
        assert_eq!(prune_older_than(&s, 0).unwrap(), 0);
        assert_eq!(prune_older_than(&s, 90).unwrap(), 3);
        assert_eq!(prune_older_than(&s, 90).unwrap(), 0);
        assert_eq!(stats(&s, ALICE).unwrap().total_records, 1);
        assert_eq!(stats(&s, BOB).unwrap().total_records, 1);
        assert_eq!(records(&s, ALICE).unwrap().len(), 1);
    }
}
