//! Schema versions. The store records the version it was last written
//! with; opening runs every migration between that and [`CURRENT`].

use super::{Store, StoreError, StoreResult};

/// The schema this binary writes.
pub const CURRENT: u64 = 3;

const KEY: &str = "schema_version";

/// A step from `version - 1` to `version`.
struct Migration {
    version: u64,
    apply: fn(&Store) -> StoreResult<()>,
}

/// Version 1 is the initial layout: nothing to transform.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        apply: |_| Ok(()),
    },
    Migration {
        version: 2,
        apply: group_activity,
    },
    Migration {
        version: 3,
        apply: chunk_activity,
    },
];

/// Version 2: activity records move from `id` keys plus the
/// `activity_by_user` index to `user_id \0 id` keys in `activity` alone
/// (one write per record, no transaction). Safe to re-run after a crash:
/// grouped keys are skipped and the index is cleared last.
fn group_activity(store: &Store) -> StoreResult<()> {
    #[derive(serde::Deserialize)]
    struct Owner {
        user_id: String,
    }
    let activity = store.tree("activity")?;
    for item in activity.iter() {
        let (key, value) = item?;
        if key.contains(&0) {
            continue;
        }
        let owner: Owner =
            serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                tree: "activity",
                source,
            })?;
        let mut grouped = owner.user_id.into_bytes();
        grouped.push(0);
        grouped.extend_from_slice(&key);
        activity.insert(grouped, value)?;
        activity.remove(key)?;
    }
    store.tree("activity_by_user")?.clear()?;
    Ok(())
}

pub fn run(store: &Store) -> StoreResult<()> {
    let found = match store.meta_get(KEY)? {
        Some(bytes) => {
            let mut buf = [0u8; 8];
            if bytes.len() == 8 {
                buf.copy_from_slice(&bytes);
            }
            u64::from_be_bytes(buf)
        }
        None => 0,
    };
    if found > CURRENT {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: CURRENT,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        (migration.apply)(store)?;
        store.meta_set(KEY, &migration.version.to_be_bytes())?;
        tracing::info!(version = migration.version, "store migrated");
    }
    Ok(())
}

/// Version 3: each `activity` value becomes a chunk, a JSON array of
/// records; a lone record becomes a chunk of one under the same key (its id
/// is the chunk's newest). Arrays are left alone, so re-running is safe.
fn chunk_activity(store: &Store) -> StoreResult<()> {
    let activity = store.tree("activity")?;
    for item in activity.iter() {
        let (key, value) = item?;
        if value.first() != Some(&b'{') {
            continue;
        }
        let mut chunk = Vec::with_capacity(value.len() + 2);
        chunk.push(b'[');
        chunk.extend_from_slice(&value);
        chunk.push(b']');
        activity.insert(key, chunk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store left by schema 1: activity under bare ids plus the index.
    #[test]
    fn versions_2_and_3_group_activity_by_user_in_chunks() {
        let store = Store::temporary().unwrap();
        let activity = store.tree("activity").unwrap();
        let index = store.tree("activity_by_user").unwrap();
        for (id, user) in [
            ("000000010000000000000000", "u1"),
            ("000000020000000000000000", "u2"),
        ] {
            let record = serde_json::json!({"id": id, "user_id": user});
            activity
                .insert(id, serde_json::to_vec(&record).unwrap())
                .unwrap();
            index.insert(format!("{user}\0{id}"), &[] as &[u8]).unwrap();
        }
        store.meta_set(KEY, &1u64.to_be_bytes()).unwrap();

        run(&store).unwrap();
        // A second run (a crash before the version was written) changes nothing.
        store.meta_set(KEY, &1u64.to_be_bytes()).unwrap();
        run(&store).unwrap();

        let keys: Vec<Vec<u8>> = activity
            .iter()
            .keys()
            .map(|k| k.unwrap().to_vec())
            .collect();
        assert_eq!(
            keys,
            vec![
                b"u1\x00000000010000000000000000".to_vec(),
                b"u2\x00000000020000000000000000".to_vec()
            ]
        );
        let values: Vec<serde_json::Value> = activity
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v.unwrap()).unwrap())
            .collect();
        assert_eq!(values[0][0]["id"], "000000010000000000000000");
        assert_eq!(values[1][0]["user_id"], "u2");
        assert_eq!(values[1].as_array().unwrap().len(), 1);
        assert!(index.is_empty());
        assert_eq!(store.meta_get(KEY).unwrap().unwrap(), CURRENT.to_be_bytes());
    }
}
