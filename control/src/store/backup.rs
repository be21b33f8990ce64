//! Online backup and restore.
//!
//! A backup is a JSON-lines file: a header line, then one line per key with
//! the tree name, key and value in hex. It is taken from a live store (sled
//! reads never block writers) and restored into an empty data directory.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult, TREES};

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    schema_version: u64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    tree: String,
    key: String,
    value: String,
}

const FORMAT: &str = "hoody-api-backup-1";

/// Writes every tree to `path` and returns the number of records written.
pub fn export_to_file(store: &Store, path: &Path) -> StoreResult<u64> {
    let tmp = path.with_extension("partial");
    let mut out = BufWriter::new(File::create(&tmp)?);
    let header = Header {
        format: FORMAT.into(),
        schema_version: super::migrate::CURRENT,
    };
    serde_json::to_writer(&mut out, &header).map_err(StoreError::Encode)?;
    out.write_all(b"\n")?;
    let mut count = 0;
    for name in TREES {
        let tree = store.db().open_tree(name)?;
        for item in tree.iter() {
            let (k, v) = item?;
            let entry = Entry {
                tree: (*name).to_string(),
                key: hex::encode(k),
                value: hex::encode(v),
            };
            serde_json::to_writer(&mut out, &entry).map_err(StoreError::Encode)?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    out.flush()?;
    out.into_inner()
        .map_err(|e| StoreError::Io(e.into_error()))?
        .sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(count)
}

fn bad(line: usize, what: &str) -> StoreError {
    StoreError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("backup line {line}: {what}"),
    ))
}

/// Loads a backup into `store` (expected empty) and returns the record count.
pub fn import_from_file(store: &Store, path: &Path) -> StoreResult<u64> {
    let reader = BufReader::new(File::open(path)?);
    let mut lines = reader.lines();
    let header: Header = match lines.next() {
        Some(line) => serde_json::from_str(&line?).map_err(|_| bad(1, "bad header"))?,
        None => return Err(bad(1, "empty file")),
    };
    if header.format != FORMAT {
        return Err(bad(1, "not a hoody-api backup"));
    }
    let mut count = 0;
    for (i, line) in lines.enumerate() {
        let entry: Entry = serde_json::from_str(&line?).map_err(|_| bad(i + 2, "bad entry"))?;
        let key = hex::decode(&entry.key).map_err(|_| bad(i + 2, "bad key"))?;
        let value = hex::decode(&entry.value).map_err(|_| bad(i + 2, "bad value"))?;
        store
            .db()
            .open_tree(entry.tree.as_bytes())?
            .insert(key, value)?;
        count += 1;
    }
    store.bump_all();
    store.flush()?;
    Ok(count)
}
