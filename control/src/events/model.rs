//! The event record: every mutation writes one, in the same transaction as
//! the change it describes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Index, StoreResult, Table, Tx};
use crate::wire::{new_id, now};

pub const EVENTS: Table<Event> = Table::new("events");
/// user id -> event ids (ids sort by time).
pub const EVENTS_BY_USER: Index = Index::new("events_by_user");

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    /// One of the contract's `event_type` values, e.g. `auth.token.created`.
    pub event_type: String,
    /// One of the contract's `resource_type` values, e.g. `auth_token`.
    pub resource_type: String,
    pub resource_id: String,
    pub user_id: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub realm_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub created_at: String,
}

/// What a mutation reports; [`record`] fills in id and time.
pub struct NewEvent<'a> {
    pub event_type: &'static str,
    pub resource_type: &'static str,
    pub resource_id: &'a str,
    pub user_id: &'a str,
    pub payload: Value,
}

impl<'a> NewEvent<'a> {
    pub fn new(
        event_type: &'static str,
        resource_type: &'static str,
        resource_id: &'a str,
        user_id: &'a str,
    ) -> Self {
        NewEvent {
            event_type,
            resource_type,
            resource_id,
            user_id,
            payload: Value::Object(Default::default()),
        }
    }

    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
}

/// Writes an event inside the mutation's transaction.
pub fn record(tx: &Tx<'_>, event: NewEvent<'_>) -> StoreResult<()> {
    let id = new_id();
    let payload = event.payload;
    let project_id = payload
        .get("project_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let container_id = payload
        .get("container_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let record = Event {
        id: id.clone(),
        event_type: event.event_type.to_string(),
        resource_type: event.resource_type.to_string(),
        resource_id: event.resource_id.to_string(),
        user_id: event.user_id.to_string(),
        payload,
        realm_ids: Vec::new(),
        project_id,
        container_id,
        created_at: now(),
    };
    tx.put(&EVENTS, &id, &record)?;
    tx.add_multi(&EVENTS_BY_USER, event.user_id, &id)
}
