//! Elastic Fabric Adapter devices' hardware counters from sysfs (issue 18, accelerated
//! compute): `/sys/class/infiniband/<device>/ports/<port>/hw_counters/<counter>` under
//! `host_root`, the counters behind the reference's `*_efa_*` metrics
//! ([`kinsight_model::catalogue::accelerated::EFA_MEASUREMENTS`]), summed over a device's ports
//! (an EFA device has one), as the CloudWatch agent reads them.
//!
//! The files are cumulative counters kept by the `efa` driver; the performance events carry
//! their per-second rates. A device is one of ours when at least one of those counters exists:
//! other RDMA devices of the same class (Mellanox `mlx5_*`, soft-RoCE `rxe*`) name theirs
//! differently and are left out. A counter the driver does not have (the retransmission
//! counters need a Nitro v4 instance and a recent driver) or reports as `N/A` is simply
//! absent; one that cannot be read or parsed is an error naming its file, and the rest of the
//! device is still read.
//!
//! No EFA device exists on a test machine: the tests build a fixture tree of these files.

use kinsight_model::catalogue::accelerated::EFA_MEASUREMENTS;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The device class the EFA driver registers its devices in.
pub const SYSFS_CLASS: &str = "sys/class/infiniband";

#[derive(Debug, Error)]
pub enum EfaError {
    #[error("cannot list EFA devices in {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read EFA counter {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("EFA counter {path} holds {text:?}, not a count")]
    Parse { path: PathBuf, text: String },
}

/// One EFA device's counters, by hardware counter name (`rx_bytes`, `rx_drops`, …), summed
/// over its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfaDevice {
    /// The device's name in the class (`rdmap16s27`): also its id in the EFA device plugin's
    /// allocations (`vpc.amazonaws.com/efa`).
    pub name: String,
    pub counters: BTreeMap<&'static str, u64>,
}

/// The node's EFA devices, sorted by name, and what could not be read. No class directory
/// (no RDMA driver loaded): no device, no error.
pub fn read_devices(host_root: &Path) -> (Vec<EfaDevice>, Vec<EfaError>) {
    let class = host_root.join(SYSFS_CLASS);
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return (Vec::new(), errors),
        Err(source) => {
            errors.push(EfaError::List {
                path: class,
                source,
            });
            return (Vec::new(), errors);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut devices = Vec::new();
    for name in names {
        // Class entries are symlinks to the device's directory; `ports` is followed through.
        let ports_dir = class.join(&name).join("ports");
        let mut ports: Vec<PathBuf> = match std::fs::read_dir(&ports_dir) {
            Ok(e) => e.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => {
                errors.push(EfaError::List {
                    path: ports_dir,
                    source,
                });
                continue;
            }
        };
        ports.sort();
        let mut counters = BTreeMap::new();
        for port in ports {
            let dir = port.join("hw_counters");
            for (_, counter) in EFA_MEASUREMENTS {
                let path = dir.join(counter);
                match read_counter(&path) {
                    Ok(Some(v)) => {
                        let sum: &mut u64 = counters.entry(counter).or_default();
                        *sum = sum.wrapping_add(v);
                    }
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        if !counters.is_empty() {
            devices.push(EfaDevice { name, counters });
        }
    }
    (devices, errors)
}

/// A counter file's value; `None` when the file is not there or says `N/A` (a counter the
/// device does not keep).
fn read_counter(path: &Path) -> Result<Option<u64>, EfaError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        // The kernel refuses some counters of a device it cannot query right now.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(None),
        Err(source) => {
            return Err(EfaError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let t = text.trim();
    if t.starts_with("N/A") {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| EfaError::Parse {
        path: path.to_path_buf(),
        text: t.chars().take(40).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn counter(root: &Path, dev: &str, port: u32, name: &str, v: &str) {
        let dir = root
            .join(SYSFS_CLASS)
            .join(format!("{dev}/ports/{port}/hw_counters"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), v).unwrap();
    }

    #[test]
    fn sums_ports_skips_other_rdma_devices_and_names_bad_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_devices(d.path()).0, vec![], "no class directory");
        counter(d.path(), "rdmap16s27", 1, "rx_bytes", "1000\n");
        counter(d.path(), "rdmap16s27", 2, "rx_bytes", "24\n");
        counter(d.path(), "rdmap16s27", 1, "rx_drops", "3\n");
        counter(d.path(), "rdmap16s27", 1, "retrans_bytes", "N/A (no PMA)\n");
        counter(d.path(), "mlx5_0", 1, "rx_write_requests", "9\n");
        counter(d.path(), "rdmap32s27", 1, "tx_bytes", "twelve\n");
        counter(d.path(), "rdmap32s27", 1, "rdma_read_bytes", "7\n");
        let (devices, errors) = read_devices(d.path());
        assert_eq!(
            devices,
            vec![
                EfaDevice {
                    name: "rdmap16s27".into(),
                    counters: [("rx_bytes", 1024), ("rx_drops", 3)].into_iter().collect(),
                },
                EfaDevice {
                    name: "rdmap32s27".into(),
                    counters: [("rdma_read_bytes", 7)].into_iter().collect(),
                },
            ]
        );
        assert_eq!(errors.len(), 1);
        let e = errors[0].to_string();
        assert!(
            e.contains("rdmap32s27/ports/1/hw_counters/tx_bytes") && e.contains("twelve"),
            "{e}"
        );
    }
}
