//! Schema versions. The store records the version it was last written
//! with; opening runs every migration between that and [`CURRENT`].

use super::{Store, StoreError, StoreResult};

/// The schema this binary writes.
pub const CURRENT: u64 = 1;

const KEY: &str = "schema_version";

/// A step from `version - 1` to `version`.
struct Migration {
    version: u64,
    apply: fn(&Store) -> StoreResult<()>,
}

/// Version 1 is the initial layout: nothing to transform.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    apply: |_| Ok(()),
}];

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
