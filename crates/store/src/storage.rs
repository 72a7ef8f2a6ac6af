//! Where segments, checkpoints and dedup files live: one `Arc<dyn ObjectStore>` whose keys are
//! the relative paths of [`crate::paths`]. A local directory by default, any S3-compatible
//! store with `s3://bucket/prefix` (endpoint and keys from the usual `AWS_*` variables).
//!
//! `object_store`'s local backend renames a staged file into place but never fsyncs, so
//! [`Storage::put_durable`] adds the fsync of the file and its directory: the WAL may only be
//! truncated once the segments that replace it survive a power cut.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Result, StoreError};

/// Where the object store is, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreLocation {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// An S3-compatible bucket and key prefix (possibly empty).
    S3 { bucket: String, prefix: String },
}

impl ObjectStoreLocation {
    /// Parses `s3://bucket[/prefix]`, `file:///abs/dir` or a plain directory path.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| StoreError::ObjectStoreConfig {
            location: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the bucket name is empty; expected s3://bucket/prefix"));
            }
            return Ok(ObjectStoreLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("file:// needs an absolute path"));
            }
            return Ok(ObjectStoreLocation::Local(PathBuf::from(rest)));
        }
        if s.contains("://") {
            return Err(bad(
                "supported are s3://bucket/prefix, file:///dir or a directory",
            ));
        }
        if s.is_empty() {
            return Err(bad("empty location"));
        }
        Ok(ObjectStoreLocation::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for ObjectStoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectStoreLocation::Local(p) => write!(f, "file://{}", p.display()),
            ObjectStoreLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            ObjectStoreLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The object store plus what is needed to make local writes durable.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Set for a local directory: `put_durable` fsyncs below it.
    local_root: Option<PathBuf>,
    location: ObjectStoreLocation,
}

impl Storage {
    /// Builds the store. For S3 the `AWS_*` variables give endpoint (`AWS_ENDPOINT_URL`),
    /// credentials and region (default `us-east-1`); path-style requests are used and plain
    /// HTTP is allowed when the endpoint says `http://`, which is what self-hosted S3 servers
    /// need.
    ///
    /// `s3_options` are `object_store` S3 settings (e.g. `("aws_endpoint", "http://…")`,
    /// `("aws_access_key_id", "…")`) applied over the environment; empty for the CLI.
    pub fn open(location: &ObjectStoreLocation, s3_options: &[(String, String)]) -> Result<Self> {
        match location {
            ObjectStoreLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
                let root = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
                let fs = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| StoreError::object_store(format!("open {}", root.display()), e))?;
                Ok(Storage {
                    store: Arc::new(fs),
                    local_root: Some(root),
                    location: location.clone(),
                })
            }
            ObjectStoreLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_virtual_hosted_style_request(false);
                let mut endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .unwrap_or_default();
                let mut region_set = std::env::var("AWS_REGION").is_ok()
                    || std::env::var("AWS_DEFAULT_REGION").is_ok();
                for (k, v) in s3_options {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|e: object_store::Error| {
                        StoreError::ObjectStoreConfig {
                            location: location.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    match key {
                        AmazonS3ConfigKey::Endpoint => endpoint = v.clone(),
                        AmazonS3ConfigKey::Region => region_set = true,
                        _ => {}
                    }
                    builder = builder.with_config(key, v);
                }
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                if !region_set {
                    builder = builder.with_region("us-east-1");
                }
                let s3 = builder.build().map_err(|e| StoreError::ObjectStoreConfig {
                    location: location.to_string(),
                    reason: e.to_string(),
                })?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Storage {
                    store,
                    local_root: None,
                    location: location.clone(),
                })
            }
        }
    }

    /// The object store; keys are the relative paths of [`crate::paths`].
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn location(&self) -> &ObjectStoreLocation {
        &self.location
    }

    /// The local directory backing the store, if it is local.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local_root.as_deref()
    }

    /// Writes an object atomically and durably: readers see the old or the new version, and
    /// once this returns the new one survives a crash.
    pub async fn put_durable(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store
            .put(path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| StoreError::object_store(format!("put {path}"), e))?;
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            tokio::task::spawn_blocking(move || fsync_file_and_dir(&file))
                .await
                .map_err(|e| StoreError::io("fsync task", std::io::Error::other(e)))??;
        }
        Ok(())
    }

    /// Reads an object; `Ok(None)` when it does not exist.
    pub async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => {
                Ok(Some(r.bytes().await.map_err(|e| {
                    StoreError::object_store(format!("read {path}"), e)
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::object_store(format!("get {path}"), e)),
        }
    }

    /// Deletes an object; a missing object is not an error (deletes are retried after
    /// crashes).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::object_store(format!("delete {path}"), e)),
        }
    }

    /// Lists every object under `prefix`.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| StoreError::object_store(format!("list {prefix}"), e))
    }
}

fn fsync_file_and_dir(file: &FsPath) -> Result<()> {
    let f = std::fs::File::open(file).map_err(|e| StoreError::io(file, e))?;
    f.sync_all().map_err(|e| StoreError::io(file, e))?;
    if let Some(dir) = file.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Makes a directory entry change (create, rename, delete) durable.
pub(crate) fn fsync_dir(dir: &FsPath) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(|e| StoreError::io(dir, e))?;
    d.sync_all().map_err(|e| StoreError::io(dir, e))
}

/// Writes a small local file atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_file_atomic(path: &FsPath, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| FsPath::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
    f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            ObjectStoreLocation::parse("s3://logs/kinsight/prod").unwrap(),
            ObjectStoreLocation::S3 {
                bucket: "logs".into(),
                prefix: "kinsight/prod".into()
            }
        );
        assert_eq!(
            ObjectStoreLocation::parse("s3://logs").unwrap(),
            ObjectStoreLocation::S3 {
                bucket: "logs".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            ObjectStoreLocation::parse("file:///var/lib/k").unwrap(),
            ObjectStoreLocation::Local("/var/lib/k".into())
        );
        assert!(ObjectStoreLocation::parse("s3:///x").is_err());
        assert!(ObjectStoreLocation::parse("gs://b").is_err());
        assert!(ObjectStoreLocation::parse("file://rel").is_err());
    }
}
