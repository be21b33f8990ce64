//! Reading and deleting the caller's events (`events.*`). Every function
//! takes the caller's user id and never touches another account's events:
//! someone else's event id is "not found".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};

use crate::auth::principal::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::{check_id, format_time, is_id, lenient, parse_time, Validator};

use super::model::{Event, EVENTS, EVENTS_BY_USER};

/// Every `event_type` the contract defines.
pub const EVENT_TYPES: &[&str] = &[
    "container.creating",
    "container.running",
    "container.stopped",
    "container.failed",
    "container.deleting",
    "container.deleted",
    "container.autostart_enabled",
    "container.autostart_disabled",
    "container.renamed",
    "container.resource_updated",
    "container.ssh_key.added",
    "container.ssh_key.removed",
    "container.snapshot.created",
    "container.snapshot.deleted",
    "container.snapshot.restored",
    "container.snapshot.renamed",
    "container.display.enabled",
    "storage.share.created",
    "storage.share.updated",
    "storage.share.deleted",
    "storage.share.enabled",
    "storage.share.disabled",
    "storage.share.expiring_soon",
    "storage.share.expired",
    "storage.share.mount_changed",
    "notification.created",
    "notification.read",
    "notification.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "server.created",
    "server.updated",
    "server.enabled",
    "server.disabled",
    "server.health_changed",
    "server.rental_expiring",
    "firewall.rule.added",
    "firewall.rule.removed",
    "firewall.rule.updated",
    "firewall.rule.enabled",
    "firewall.rule.disabled",
    "proxy.alias.created",
    "proxy.alias.updated",
    "proxy.alias.deleted",
    "proxy.alias.enabled",
    "proxy.alias.disabled",
    "proxy.alias.expiring_soon",
    "proxy.alias.expired",
    "proxy.permissions.updated",
    "proxy.permissions.default_changed",
    "proxy.permissions.group_added",
    "proxy.permissions.group_updated",
    "proxy.permissions.group_removed",
    "auth.token.created",
    "auth.token.updated",
    "auth.token.deleted",
    "auth.token.enabled",
    "auth.token.disabled",
    "pool.member.joined",
    "pool.member.left",
    "pool.member.role_changed",
    "pool.invited",
    "pool.invitation_revoked",
    "user.created",
    "user.banned",
    "user.unbanned",
    "user.role_changed",
    "activity.logged",
];

/// Every `resource_type` the contract defines.
pub const RESOURCE_TYPES: &[&str] = &[
    "container",
    "storage_share",
    "notification",
    "project",
    "server",
    "firewall",
    "proxy_alias",
    "proxy_permissions",
    "auth_token",
    "pool",
    "user",
    "activity_log",
];

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 100;
/// Deletions are split into transactions of this many events.
const DELETE_BATCH: usize = 500;

/// Tokens created with `event_access: false` never see events, whatever
/// their permission tree says.
pub fn require_event_access(principal: &Principal) -> Result<(), ApiError> {
    match principal.token() {
        Some(t) if !t.event_access => Err(ApiError::forbidden(
            "EVENT_ACCESS_DENIED",
            "this API token has no access to events",
        )),
        _ => Ok(()),
    }
}

/// A date filter: an RFC 3339 time, or a calendar date meaning the start
/// (`end_of_day = false`) or end of that UTC day.
pub fn parse_date(
    v: &mut Validator,
    field: &str,
    value: Option<&str>,
    end_of_day: bool,
) -> Option<OffsetDateTime> {
    let value = value.filter(|s| !s.is_empty())?;
    if let Some(t) = parse_time(value) {
        return Some(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match Date::parse(value, &format) {
        Ok(date) => {
            let start = date.with_time(Time::MIDNIGHT).assume_utc();
            Some(if end_of_day {
                start + Duration::days(1) - Duration::milliseconds(1)
            } else {
                start
            })
        }
        Err(_) => {
            v.fail(field, "must be an RFC 3339 time or a YYYY-MM-DD date");
            None
        }
    }
}

fn one_of(v: &mut Validator, field: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(value) = value {
        v.check(field, allowed.contains(&value), "is not a known value");
    }
}

fn hex_id(v: &mut Validator, field: &str, value: Option<&str>) {
    if let Some(value) = value {
        v.check(
            field,
            is_id(value),
            "must be a 24-character lowercase hex id",
        );
    }
}

/// `events.list` query.
#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 50).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub limit: Option<u64>,
    /// Events to skip.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    #[param(value_type = Option<u64>)]
    pub offset: Option<u64>,
    /// `created_at` (default) or `event_type`.
    pub sort_by: Option<String>,
    /// `asc` or `desc` (default).
    pub sort_order: Option<String>,
    pub event_type: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub project_id: Option<String>,
    pub container_id: Option<String>,
    /// From this time or date on.
    pub start_date: Option<String>,
    /// Up to this time or date.
    pub end_date: Option<String>,
    pub realm_id: Option<String>,
}

/// Which events a read or delete applies to.
#[derive(Default, Debug, Clone)]
pub struct Filter {
    pub event_type: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub project_id: Option<String>,
    pub container_id: Option<String>,
    pub realm_id: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Strictly before this time (`bulkDelete`'s `before_date`, cleanup).
    pub before: Option<OffsetDateTime>,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        fn eq(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|w| w == have)
        }
        fn eq_opt(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        }
        let at = parse_time(&e.created_at);
        eq(&self.event_type, &e.event_type)
            && eq(&self.resource_type, &e.resource_type)
            && eq(&self.resource_id, &e.resource_id)
            && eq_opt(&self.project_id, &e.project_id)
            && eq_opt(&self.container_id, &e.container_id)
            && self
                .realm_id
                .as_ref()
                .is_none_or(|r| e.realm_ids.contains(r))
            && self.from.is_none_or(|f| at.is_some_and(|t| t >= f))
            && self.until.is_none_or(|u| at.is_some_and(|t| t <= u))
            && self.before.is_none_or(|b| at.is_some_and(|t| t < b))
    }

    fn is_empty(&self) -> bool {
        self.event_type.is_none()
            && self.resource_type.is_none()
            && self.resource_id.is_none()
            && self.project_id.is_none()
            && self.container_id.is_none()
            && self.realm_id.is_none()
            && self.from.is_none()
            && self.until.is_none()
            && self.before.is_none()
    }
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct EventPagination {
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub has_more: bool,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    pub pagination: EventPagination,
}

fn user_events(state: &AppState, user_id: &str, filter: &Filter) -> Result<Vec<Event>, ApiError> {
    let mut events = state.store.owned(&EVENTS_BY_USER, user_id, &EVENTS)?;
    events.retain(|e| e.user_id == user_id && filter.matches(e));
    Ok(events)
}

/// `events.list`.
pub fn list(state: &AppState, user_id: &str, q: &ListQuery) -> Result<EventList, ApiError> {
    let mut v = Validator::new();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    v.check(
        "limit",
        (1..=MAX_LIMIT).contains(&limit),
        "must be between 1 and 100",
    );
    let offset = q.offset.unwrap_or(0);
    one_of(
        &mut v,
        "sort_by",
        q.sort_by.as_deref(),
        &["created_at", "event_type"],
    );
    one_of(
        &mut v,
        "sort_order",
        q.sort_order.as_deref(),
        &["asc", "desc"],
    );
    one_of(&mut v, "event_type", q.event_type.as_deref(), EVENT_TYPES);
    one_of(
        &mut v,
        "resource_type",
        q.resource_type.as_deref(),
        RESOURCE_TYPES,
    );
    for (field, value) in [
        ("resource_id", &q.resource_id),
        ("project_id", &q.project_id),
        ("container_id", &q.container_id),
        ("realm_id", &q.realm_id),
    ] {
        hex_id(&mut v, field, value.as_deref());
    }
    let filter = Filter {
        event_type: q.event_type.clone(),
        resource_type: q.resource_type.clone(),
        resource_id: q.resource_id.clone(),
        project_id: q.project_id.clone(),
        container_id: q.container_id.clone(),
        realm_id: q.realm_id.clone(),
        from: parse_date(&mut v, "start_date", q.start_date.as_deref(), false),
        until: parse_date(&mut v, "end_date", q.end_date.as_deref(), true),
        before: None,
    };
    v.finish()?;
    let mut events = user_events(state, user_id, &filter)?;
    let by_type = q.sort_by.as_deref() == Some("event_type");
    events.sort_by(|a, b| {
        let primary = if by_type {
            a.event_type.cmp(&b.event_type)
        } else {
            std::cmp::Ordering::Equal
        };
        primary
            .then_with(|| a.created_at.cmp(&b.created_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    if q.sort_order.as_deref() != Some("asc") {
        events.reverse();
    }
    let total = events.len() as u64;
    let page: Vec<Event> = events
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .collect();
    let has_more = offset.saturating_add(page.len() as u64) < total;
    Ok(EventList {
        events: page,
        pagination: EventPagination {
            total,
            limit,
            offset,
            has_more,
        },
    })
}

/// `events.get`.
pub fn get(state: &AppState, user_id: &str, id: &str) -> Result<Event, ApiError> {
    check_id("id", id)?;
    match state.store.get(&EVENTS, id)? {
        Some(e) if e.user_id == user_id => Ok(e),
        _ => Err(ApiError::NotFound("event")),
    }
}

/// `events.getStats` query.
#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub realm_id: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct EventStats {
    pub total_events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_resource: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_event: Option<String>,
}

/// `events.getStats`.
pub fn stats(state: &AppState, user_id: &str, q: &StatsQuery) -> Result<EventStats, ApiError> {
    let mut v = Validator::new();
    hex_id(&mut v, "realm_id", q.realm_id.as_deref());
    let filter = Filter {
        realm_id: q.realm_id.clone(),
        from: parse_date(&mut v, "start_date", q.start_date.as_deref(), false),
        until: parse_date(&mut v, "end_date", q.end_date.as_deref(), true),
        ..Filter::default()
    };
    v.finish()?;
    let events = user_events(state, user_id, &filter)?;
    let mut stats = EventStats {
        total_events: events.len() as u64,
        by_type: BTreeMap::new(),
        by_resource: BTreeMap::new(),
        oldest_event: None,
        newest_event: None,
    };
    for e in &events {
        *stats.by_type.entry(e.event_type.clone()).or_default() += 1;
        *stats
            .by_resource
            .entry(e.resource_type.clone())
            .or_default() += 1;
        if stats
            .oldest_event
            .as_ref()
            .is_none_or(|o| e.created_at < *o)
        {
            stats.oldest_event = Some(e.created_at.clone());
        }
        if stats
            .newest_event
            .as_ref()
            .is_none_or(|n| e.created_at > *n)
        {
            stats.newest_event = Some(e.created_at.clone());
        }
    }
    Ok(stats)
}

/// Removes events and their index entries, a batch per transaction.
fn remove(state: &AppState, events: &[Event]) -> Result<u64, ApiError> {
    for chunk in events.chunks(DELETE_BATCH) {
        state.store.tx(|tx| {
            for e in chunk {
                tx.remove(&EVENTS, &e.id)?;
                tx.remove_multi(&EVENTS_BY_USER, &e.user_id, &e.id)?;
            }
            Ok(())
        })?;
    }
    Ok(events.len() as u64)
}

/// `events.delete`.
pub fn delete(state: &AppState, user_id: &str, id: &str) -> Result<(), ApiError> {
    check_id("id", id)?;
    state.store.tx(|tx| {
        match tx.get(&EVENTS, id)? {
            Some(e) if e.user_id == user_id => {}
            _ => return Err(ApiError::NotFound("event").into()),
        }
        tx.remove(&EVENTS, id)?;
        tx.remove_multi(&EVENTS_BY_USER, user_id, id)
    })?;
    Ok(())
}

/// `events.bulkDelete` body: at least one filter is required, so an empty
/// body never wipes the whole history.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteRequest {
    pub event_type: Option<String>,
    pub resource_type: Option<String>,
    /// 24-hex id.
    pub resource_id: Option<String>,
    /// Events strictly before this time or date.
    pub before_date: Option<String>,
    /// 24-hex id.
    pub realm_id: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted_count: u64,
}

/// `events.bulkDelete`.
pub fn bulk_delete(
    state: &AppState,
    user_id: &str,
    req: &BulkDeleteRequest,
) -> Result<Deleted, ApiError> {
    let mut v = Validator::new();
    one_of(&mut v, "event_type", req.event_type.as_deref(), EVENT_TYPES);
    one_of(
        &mut v,
        "resource_type",
        req.resource_type.as_deref(),
        RESOURCE_TYPES,
    );
    hex_id(&mut v, "resource_id", req.resource_id.as_deref());
    hex_id(&mut v, "realm_id", req.realm_id.as_deref());
    let filter = Filter {
        event_type: req.event_type.clone(),
        resource_type: req.resource_type.clone(),
        resource_id: req.resource_id.clone(),
        realm_id: req.realm_id.clone(),
        before: parse_date(&mut v, "before_date", req.before_date.as_deref(), false),
        ..Filter::default()
    };
    v.finish()?;
    if filter.is_empty() {
        return Err(ApiError::field(
            "body",
            "name at least one of event_type, resource_type, resource_id, before_date, realm_id",
        ));
    }
    let events = user_events(state, user_id, &filter)?;
    Ok(Deleted {
        deleted_count: remove(state, &events)?,
    })
}

/// `events.cleanup` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Delete events older than this many days (1–365).
    pub retention_days: u64,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct CleanupResult {
    pub deleted_count: u64,
    pub retention_days: u64,
    pub cutoff_date: String,
}

/// `events.cleanup`.
pub fn cleanup(
    state: &AppState,
    user_id: &str,
    req: &CleanupRequest,
) -> Result<CleanupResult, ApiError> {
    if !(1..=365).contains(&req.retention_days) {
        return Err(ApiError::field(
            "retention_days",
            "must be between 1 and 365",
        ));
    }
    let cutoff = OffsetDateTime::now_utc() - Duration::days(req.retention_days as i64);
    let filter = Filter {
        before: Some(cutoff),
        ..Filter::default()
    };
    let events = user_events(state, user_id, &filter)?;
    Ok(CleanupResult {
        deleted_count: remove(state, &events)?,
        retention_days: req.retention_days,
        cutoff_date: format_time(cutoff),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{record, NewEvent};
    use serde_json::json;

    fn state() -> crate::testing::TempState {
        crate::testing::TempState::new("events")
    }

    fn emit(state: &AppState, kind: &'static str, user: &str, resource: &str) {
        state
            .store
            .tx(|tx| {
                record(
                    tx,
                    NewEvent::new(kind, "auth_token", resource, user).payload(json!({"n": 1})),
                )
            })
            .unwrap();
    }

    const ALICE: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";
    const RES: &str = "cccccccccccccccccccccccc";

    #[tokio::test]
    async fn lists_only_the_callers_events_with_offset_pagination() {
        let s = state();
        for _ in 0..3 {
            emit(&s, "auth.token.created", ALICE, RES);
        }
        emit(&s, "auth.token.deleted", BOB, RES);
        let q = ListQuery {
            limit: Some(2),
            ..ListQuery::default()
        };
        let page = list(&s, ALICE, &q).unwrap();
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.pagination.total, 3);
        assert!(page.pagination.has_more);
        let q = ListQuery {
            limit: Some(2),
            offset: Some(2),
            ..ListQuery::default()
        };
        let rest = list(&s, ALICE, &q).unwrap();
        assert_eq!(rest.events.len(), 1);
        assert!(!rest.pagination.has_more);
        let bob_event = list(&s, BOB, &ListQuery::default()).unwrap().events[0]
            .id
            .clone();
        assert!(matches!(
            get(&s, ALICE, &bob_event),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            delete(&s, ALICE, &bob_event),
            Err(ApiError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn filters_and_stats_count_by_type() {
        let s = state();
        emit(&s, "auth.token.created", ALICE, RES);
        emit(&s, "auth.token.updated", ALICE, RES);
        emit(&s, "auth.token.updated", ALICE, RES);
        let q = ListQuery {
            event_type: Some("auth.token.updated".into()),
            ..ListQuery::default()
        };
        assert_eq!(list(&s, ALICE, &q).unwrap().pagination.total, 2);
        let bad = ListQuery {
            event_type: Some("nope".into()),
            ..ListQuery::default()
        };
        assert!(matches!(
            list(&s, ALICE, &bad),
            Err(ApiError::Validation { .. })
        ));
        let st = stats(&s, ALICE, &StatsQuery::default()).unwrap();
        assert_eq!(st.total_events, 3);
        assert_eq!(st.by_type["auth.token.updated"], 2);
        assert_eq!(st.by_resource["auth_token"], 3);
    }

    #[tokio::test]
    async fn bulk_delete_needs_a_filter_and_removes_matches() {
        let s = state();
        emit(&s, "auth.token.created", ALICE, RES);
        emit(&s, "auth.token.deleted", ALICE, RES);
        emit(&s, "auth.token.deleted", BOB, RES);
        assert!(bulk_delete(&s, ALICE, &BulkDeleteRequest::default()).is_err());
        let req = BulkDeleteRequest {
            event_type: Some("auth.token.deleted".into()),
            ..BulkDeleteRequest::default()
        };
        assert_eq!(bulk_delete(&s, ALICE, &req).unwrap().deleted_count, 1);
        assert_eq!(
            list(&s, ALICE, &ListQuery::default())
                .unwrap()
                .pagination
                .total,
            1
        );
        assert_eq!(
            list(&s, BOB, &ListQuery::default())
                .unwrap()
                .pagination
                .total,
            1
        );
        let cleaned = cleanup(&s, ALICE, &CleanupRequest { retention_days: 1 }).unwrap();
        assert_eq!(cleaned.deleted_count, 0, "recent events stay");
        assert!(cleanup(&s, ALICE, &CleanupRequest { retention_days: 0 }).is_err());
    }
}
