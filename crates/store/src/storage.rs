//! Where segments, checkpoints and dedup files live: one `Arc<dyn ObjectStore>` whose keys are
//! the relative paths of [`crate::paths`]. A local directory by default, any S3-compatible
//! store with `s3://bucket/prefix` (endpoint and keys from the usual `AWS_*` variables).
//!
//! `object_store`'s local backend renames a staged file into place and never fsyncs, neither
//! the file nor the directories it creates; fsyncing afterwards leaves a window where a power
//! cut finds the new name on a partial file. So on a local directory [`Storage::put_durable`]
//! writes itself, in the order of [`kinsight_model::durable`] (temporary file, fsync, rename,
//! fsync of the directory; every new directory followed by an fsync of its parent): the WAL
//! may only be truncated once the segments and the checkpoint that replace it survive a power
//! cut (issue 15, item 11).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use kinsight_model::durable::{self, Steps};

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
    /// Set for a local directory: `put_durable` writes below it itself.
    local_root: Option<PathBuf>,
    location: ObjectStoreLocation,
    /// The file-system steps of local writes (the real ones; a test records them).
    steps: Arc<dyn Steps + Send + Sync>,
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
            ObjectStoreLocation::Local(dir) => Self::open_local(dir, Arc::new(durable::Os)),
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
                    steps: Arc::new(durable::Os),
                })
            }
        }
    }

    /// A local directory whose writes take `steps` (tests record them; the store uses
    /// [`durable::Os`]).
    pub fn open_local(dir: &FsPath, steps: Arc<dyn Steps + Send + Sync>) -> Result<Self> {
        durable::create_dir_all_with(&*steps, dir).map_err(durable_error)?;
        let root = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| StoreError::object_store(format!("open {}", root.display()), e))?;
        Ok(Storage {
            store: Arc::new(fs),
            local_root: Some(root),
            location: ObjectStoreLocation::Local(dir.to_path_buf()),
            steps,
        })
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
        let Some(root) = &self.local_root else {
            // An object-store put is atomic and durable once acknowledged.
            self.store
                .put(path, PutPayload::from_bytes(bytes))
                .await
                .map_err(|e| StoreError::object_store(format!("put {path}"), e))?;
            return Ok(());
        };
        let file = root.join(path.as_ref());
        let steps = self.steps.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = file.parent() {
                durable::create_dir_all_with(&*steps, dir)?;
            }
            durable::write_atomic_with(&*steps, &file, &bytes)
        })
        .await
        .map_err(|e| StoreError::io("write task", std::io::Error::other(e)))?
        .map_err(durable_error)
    }

    /// Replaces `to` with the object `from` (which must exist), atomically and durably: a
    /// server-side copy on S3, a hard link staged and renamed on a local directory.
    pub async fn copy_durable(&self, from: &Path, to: &Path) -> Result<()> {
        let Some(root) = &self.local_root else {
            return self
                .store
                .copy(from, to)
                .await
                .map_err(|e| StoreError::object_store(format!("copy {from} to {to}"), e));
        };
        let (src, dst) = (root.join(from.as_ref()), root.join(to.as_ref()));
        let steps = self.steps.clone();
        tokio::task::spawn_blocking(move || durable::copy_atomic_with(&*steps, &src, &dst))
            .await
            .map_err(|e| StoreError::io("copy task", std::io::Error::other(e)))?
            .map_err(durable_error)
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

pub(crate) fn durable_error(e: durable::DurableError) -> StoreError {
    StoreError::io(e.path, e.source)
}

/// Makes a directory entry change (create, rename, delete) durable.
pub(crate) fn fsync_dir(dir: &FsPath) -> Result<()> {
    durable::sync_dir(dir).map_err(durable_error)
}

/// Writes a small local file atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_file_atomic(path: &FsPath, bytes: &[u8]) -> Result<()> {
    durable::write_atomic(path, bytes).map_err(durable_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The real file system, recording the steps of each write.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn log(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn rel(p: &FsPath) -> String {
        // Paths below the temporary root, for readable assertions.
        let s = p.to_string_lossy();
        s.rsplit_once("/objects")
            .map_or(s.to_string(), |(_, r)| format!("objects{r}"))
    }

    impl Steps for Recorder {
        fn write_synced(&self, path: &FsPath, bytes: &[u8]) -> std::io::Result<()> {
            self.log(format!("write+fsync {}", rel(path)));
            durable::Os.write_synced(path, bytes)
        }
        fn link_synced(&self, from: &FsPath, to: &FsPath) -> std::io::Result<()> {
            self.log(format!("link {} {}", rel(from), rel(to)));
            durable::Os.link_synced(from, to)
        }
        fn rename(&self, from: &FsPath, to: &FsPath) -> std::io::Result<()> {
            self.log(format!("rename {} {}", rel(from), rel(to)));
            durable::Os.rename(from, to)
        }
        fn sync_dir(&self, dir: &FsPath) -> std::io::Result<()> {
            self.log(format!("fsync dir {}", rel(dir)));
            durable::Os.sync_dir(dir)
        }
        fn create_dir(&self, dir: &FsPath) -> std::io::Result<()> {
            self.log(format!("mkdir {}", rel(dir)));
            durable::Os.create_dir(dir)
        }
        fn is_dir(&self, path: &FsPath) -> bool {
            path.is_dir()
        }
    }

    /// Issue 15, item 11: a local object is fsynced before it is renamed into place, its
    /// directory after; new directories are made durable in their parents.
    #[tokio::test]
    async fn local_writes_fsync_the_file_before_the_rename_and_new_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Arc::new(Recorder::default());
        let storage = Storage::open_local(&tmp.path().join("objects"), rec.clone()).unwrap();
        assert_eq!(
            rec.take(),
            [
                "mkdir objects".to_string(),
                format!("fsync dir {}", tmp.path().display())
            ]
        );
        storage
            .put_durable(&crate::paths::checkpoint(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            rec.take(),
            [
                "mkdir objects/v1",
                "fsync dir objects",
                "write+fsync objects/v1/.checkpoint.json.tmp",
                "rename objects/v1/.checkpoint.json.tmp objects/v1/checkpoint.json",
                "fsync dir objects/v1",
            ]
        );
        storage
            .copy_durable(
                &crate::paths::checkpoint(),
                &crate::paths::previous_checkpoint(),
            )
            .await
            .unwrap();
        assert_eq!(
            rec.take(),
            [
                "link objects/v1/checkpoint.json objects/v1/.checkpoint.prev.json.tmp",
                "rename objects/v1/.checkpoint.prev.json.tmp objects/v1/checkpoint.prev.json",
                "fsync dir objects/v1",
            ]
        );
        assert_eq!(
            storage
                .get_opt(&crate::paths::previous_checkpoint())
                .await
                .unwrap()
                .unwrap(),
            Bytes::from_static(b"{}")
        );
        storage
            .put_durable(&crate::paths::segment(3, 0, 1), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let steps = rec.take();
        assert_eq!(
            &steps[..6],
            [
                "mkdir objects/v1/segments",
                "fsync dir objects/v1",
                "mkdir objects/v1/segments/3",
                "fsync dir objects/v1/segments",
                "mkdir objects/v1/segments/3/0",
                "fsync dir objects/v1/segments/3",
            ]
        );
        assert!(
            steps[6].starts_with("write+fsync objects/v1/segments/3/0/."),
            "{steps:?}"
        );
    }

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
