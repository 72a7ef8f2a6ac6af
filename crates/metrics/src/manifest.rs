//! The manifest (which files make up the store, and up to which ingest sequence number their
//! content goes) and the series files (the registry, in chunks). Both are replaced or created
//! atomically: temporary file, fsync, rename, fsync of the directory
//! ([`kinsight_model::durable`]). Formats in docs/formats/metrics.md.

use crate::MetricsError;
use crate::series::SeriesInfo;
use crate::tier::Tier;
use kinsight_model::durable;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(crate) const MANIFEST_FORMAT: &str = "kinsight-metrics-manifest";
pub(crate) const SERIES_FORMAT: &str = "kinsight-metrics-series";
pub(crate) const VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: String,
    pub version: u64,
    /// Highest ingest sequence number whose datapoints are all in the files listed here.
    pub persisted_seq: Option<u64>,
    pub next_gen: u64,
    pub series_files: Vec<SeriesFileMeta>,
    pub segments: Vec<SegmentMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SeriesFileMeta {
    pub generation: u64,
    pub first_id: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentMeta {
    pub generation: u64,
    pub tier: Tier,
    pub partition_start_ms: i64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            version: VERSION,
            persisted_seq: None,
            next_gen: 1,
            series_files: Vec::new(),
            segments: Vec::new(),
        }
    }
}

pub(crate) const MANIFEST_NAME: &str = "MANIFEST";

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_NAME)
}

pub(crate) fn series_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join("series").join(format!("{generation:012}.kmi"))
}

pub(crate) fn segment_path(dir: &Path, tier: Tier, generation: u64) -> PathBuf {
    dir.join("segments")
        .join(tier.as_str())
        .join(format!("{generation:012}.kms"))
}

/// The name of a series file relative to the store directory, `/`-separated: what
/// [`series_path`] points at.
pub(crate) fn series_name(generation: u64) -> String {
    format!("series/{generation:012}.kmi")
}

/// The name of a segment file relative to the store directory, `/`-separated: what
/// [`segment_path`] points at.
pub(crate) fn segment_name(tier: Tier, generation: u64) -> String {
    format!("segments/{}/{generation:012}.kms", tier.as_str())
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Option<Manifest>, MetricsError> {
        let path = manifest_path(dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MetricsError::io(&path, e)),
        };
        Manifest::parse(&bytes, &path).map(Some)
    }

    /// Decodes manifest bytes; `path` only names them in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest, MetricsError> {
        let path = path.to_path_buf();
        // Check format and version before the full shape, so that a newer manifest gets a
        // clear "unsupported version" instead of a field error.
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| MetricsError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(MANIFEST_FORMAT) {
            return Err(MetricsError::Corrupt {
                path,
                reason: format!("not a {MANIFEST_FORMAT} file"),
            });
        }
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if version != VERSION {
            return Err(MetricsError::UnsupportedVersion { path, version });
        }
        serde_json::from_value(v).map_err(|e| MetricsError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// The bytes [`Manifest::store`] writes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MetricsError> {
        serde_json::to_vec_pretty(self).map_err(|e| MetricsError::Corrupt {
            path: PathBuf::from(MANIFEST_NAME),
            reason: e.to_string(),
        })
    }

    pub fn store(&self, dir: &Path) -> Result<(), MetricsError> {
        write_atomically(&manifest_path(dir), &self.to_bytes()?)
    }
}

#[derive(Serialize, Deserialize)]
struct SeriesFile {
    format: String,
    version: u64,
    series: Vec<SeriesInfo>,
}

pub(crate) fn write_series_file(
    dir: &Path,
    generation: u64,
    series: &[SeriesInfo],
) -> Result<(), MetricsError> {
    let path = series_path(dir, generation);
    let doc = SeriesFile {
        format: SERIES_FORMAT.into(),
        version: VERSION,
        series: series.to_vec(),
    };
    let json = serde_json::to_vec(&doc).map_err(|e| MetricsError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut enc = zstd::Encoder::new(Vec::new(), 3).map_err(|e| MetricsError::io(&path, e))?;
    enc.include_checksum(true)
        .map_err(|e| MetricsError::io(&path, e))?;
    enc.write_all(&json)
        .map_err(|e| MetricsError::io(&path, e))?;
    let bytes = enc.finish().map_err(|e| MetricsError::io(&path, e))?;
    write_atomically(&path, &bytes)
}

pub(crate) fn read_series_file(
    dir: &Path,
    generation: u64,
) -> Result<Vec<SeriesInfo>, MetricsError> {
    let path = series_path(dir, generation);
    let file = File::open(&path).map_err(|e| MetricsError::io(&path, e))?;
    let mut json = Vec::new();
    zstd::Decoder::new(file)
        .and_then(|mut d| d.read_to_end(&mut json))
        .map_err(|e| MetricsError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let doc: SeriesFile = serde_json::from_slice(&json).map_err(|e| MetricsError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if doc.format != SERIES_FORMAT {
        return Err(MetricsError::Corrupt {
            path,
            reason: format!("not a {SERIES_FORMAT} file"),
        });
    }
    if doc.version != VERSION {
        return Err(MetricsError::UnsupportedVersion {
            path,
            version: doc.version,
        });
    }
    Ok(doc.series)
}

/// Temporary file, fsync, rename over the target, fsync of the directory: after a crash the
/// target is either the old or the new content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MetricsError> {
    durable::write_atomic(path, bytes).map_err(durable_error)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), MetricsError> {
    durable::sync_dir(dir).map_err(durable_error)
}

pub(crate) fn durable_error(e: durable::DurableError) -> MetricsError {
    MetricsError::Io {
        path: e.path,
        source: e.source,
    }
}
