//! cgroup reading: v1, v2 and hybrid hosts, both kubelet cgroup drivers (reference §2.2).
//!
//! A [`Cgroups`] knows where each controller is mounted under the host root and reads the
//! statistics of one cgroup (a path relative to the hierarchy root, like
//! `/kubepods/burstable/pod<uid>/<id>`) into [`CgroupStats`], mapping v2 files onto the v1
//! (cAdvisor) meaning. [`Cgroups::discover_pods`] finds the kubelet's pod and container
//! cgroups for the cgroupfs driver (`kubepods/<qos>/pod<uid>/<id>`) and the systemd driver
//! (`kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope`,
//! also `crio-` and `docker-` scopes).
//!
//! Every error names the file it came from; a missing file leaves that one statistic empty
//! (`None`) and is reported once per read, never a panic.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pseudofs::OpenFiles;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy found under {0} (neither v1 controllers nor a cgroup2 mount)")]
    NoHierarchy(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Which cgroup version provides the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
    /// v1 controllers plus a cgroup2 mount (`/sys/fs/cgroup/unified`).
    Hybrid,
}

/// CPU accounting of one cgroup, cumulative nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: Option<u64>,
    pub usage_system_ns: Option<u64>,
}

/// Memory of one cgroup with cAdvisor's meaning (reference §2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    pub usage_bytes: u64,
    pub max_usage_bytes: Option<u64>,
    pub failcnt: Option<u64>,
    pub cache_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub mapped_file_bytes: Option<u64>,
    /// `usage − inactive_file`, floored at 0.
    pub working_set_bytes: u64,
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
}

/// What could be read of one cgroup; unreadable parts are `None` and listed in `errors`.
#[derive(Debug, Default)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub errors: Vec<CgroupError>,
}

impl CgroupStats {
    /// Nothing could be read because the cgroup no longer exists (`ENOENT`, or `ENODEV` from
    /// a file held open after its cgroup was removed).
    pub fn vanished(&self) -> bool {
        self.cpu.is_none()
            && self.memory.is_none()
            && !self.errors.is_empty()
            && self.errors.iter().all(|e| match e {
                CgroupError::Read { source, .. } => {
                    source.kind() == io::ErrorKind::NotFound
                        || source.raw_os_error() == Some(libc::ENODEV)
                }
                _ => false,
            })
    }
}

/// One device's row of a v1 blkio statistic (`<major>:<minor> <Op> <value>` lines): bytes or
/// operations by kind, as the kernel counts them and cAdvisor reports them
/// (`IoServiceBytes`/`IoServiced`, reference §2.2). A kind the file did not list is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkioOps {
    pub read: Option<u64>,
    pub write: Option<u64>,
    pub sync: Option<u64>,
    pub async_: Option<u64>,
    pub total: Option<u64>,
}

/// I/O of one cgroup per block device (`(major, minor)`), from the v1 blkio controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioStats {
    pub service_bytes: std::collections::BTreeMap<(u32, u32), BlkioOps>,
    pub serviced: std::collections::BTreeMap<(u32, u32), BlkioOps>,
}

/// The v1 blkio files that may hold a cgroup's I/O, in the order libcontainer (cAdvisor's
/// cgroup reader) tries them: the CFQ scheduler's, BFQ's, then blk-throttle's, which every
/// kernel with the blkio controller has. The first pair whose bytes file lists a device wins.
const BLKIO_FILES: [(&str, &str); 3] = [
    (
        "blkio.io_service_bytes_recursive",
        "blkio.io_serviced_recursive",
    ),
    (
        "blkio.bfq.io_service_bytes_recursive",
        "blkio.bfq.io_serviced_recursive",
    ),
    (
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_serviced_recursive",
    ),
];

/// A container cgroup found under a pod cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// Container id (64 hex characters for docker/containerd/cri-o).
    pub id: String,
    /// Path relative to the hierarchy root, starting with `/`.
    pub path: String,
}

/// A pod cgroup with its containers (the pause container included: it has no name here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// Pod UID with dashes (`3f1c...-...`), as in `metadata.uid`.
    pub uid: String,
    pub path: String,
    pub containers: Vec<ContainerCgroup>,
}

/// The cgroup hierarchies of a host.
#[derive(Debug, Clone)]
pub struct Cgroups {
    version: CgroupVersion,
    /// v1 controller name → mount directory.
    v1: HashMap<String, PathBuf>,
    /// cgroup2 mount directory.
    unified: Option<PathBuf>,
    /// The files read at every collection, held open (shared by clones).
    files: Arc<OpenFiles>,
}

impl Cgroups {
    /// Finds the hierarchies under `<host_root>/sys/fs/cgroup`. Combined v1 mounts like
    /// `cpu,cpuacct` are recognised by their directory names.
    pub fn detect(host_root: &Path) -> Result<Cgroups, CgroupError> {
        let base = host_root.join("sys/fs/cgroup");
        if base.join("cgroup.controllers").exists() {
            return Ok(Cgroups {
                version: CgroupVersion::V2,
                v1: HashMap::new(),
                unified: Some(base),
                files: Arc::new(OpenFiles::new()),
            });
        }
        let mut v1 = HashMap::new();
        let entries = fs::read_dir(&base).map_err(|source| CgroupError::Read {
            path: base.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name == "unified" || !path.is_dir() {
                continue;
            }
            for controller in name.split(',') {
                if ["cpu", "cpuacct", "memory", "blkio", "pids", "cpuset"].contains(&controller) {
                    v1.entry(controller.to_string())
                        .or_insert_with(|| path.clone());
                }
            }
        }
        let unified = Some(base.join("unified")).filter(|u| u.join("cgroup.controllers").exists());
        match (v1.is_empty(), unified.is_some()) {
            (true, false) => Err(CgroupError::NoHierarchy(base)),
            (true, true) => Ok(Cgroups {
                version: CgroupVersion::V2,
                v1,
                unified,
                files: Arc::new(OpenFiles::new()),
            }),
            (false, true) => Ok(Cgroups {
                version: CgroupVersion::Hybrid,
                v1,
                unified,
                files: Arc::new(OpenFiles::new()),
            }),
            (false, false) => Ok(Cgroups {
                version: CgroupVersion::V1,
                v1,
                unified,
                files: Arc::new(OpenFiles::new()),
            }),
        }
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Starts a collection: files of cgroups not read during the previous one are closed.
    pub fn sweep(&self) {
        self.files.sweep();
    }

    /// The directory that holds `rel` for CPU accounting (where pods are discovered).
    fn accounting_root(&self) -> Option<&Path> {
        self.v1
            .get("cpuacct")
            .or_else(|| self.v1.get("cpu"))
            .map(PathBuf::as_path)
            .or(self.unified.as_deref())
    }

    /// Absolute directory of `rel` in the hierarchy of `controller`, falling back to v2.
    pub fn dir(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        let root = self.v1.get(controller).or(self.unified.as_ref())?;
        Some(root.join(rel.trim_start_matches('/')))
    }

    /// CPU accounting of one cgroup.
    pub fn read_cpu(&self, rel: &str) -> Result<CpuStats, CgroupError> {
        if self.v1.contains_key("cpuacct") || self.v1.contains_key("cpu") {
            self.read_cpu_v1(rel)
        } else {
            self.read_cpu_v2(rel)
        }
    }

    /// Reads CPU and memory statistics of one cgroup.
    pub fn read(&self, rel: &str) -> CgroupStats {
        let mut stats = CgroupStats::default();
        let cpu = self.read_cpu(rel);
        match cpu {
            Ok(c) => stats.cpu = Some(c),
            Err(e) => stats.errors.push(e),
        }
        let mem = if self.v1.contains_key("memory") {
            self.read_memory_v1(rel)
        } else {
            self.read_memory_v2(rel)
        };
        match mem {
            Ok(m) => stats.memory = Some(m),
            Err(e) => stats.errors.push(e),
        }
        stats
    }

    // Only the files the events use are read, each kept open between collections
    // ([`OpenFiles`]) and read into one reused buffer: a collection reads them for every pod and
    // container of the node (hundreds of cgroups), so opens and allocations add up (issue
    // [1/8] bench).

    fn open(&self, controller: &str, rel: &str) -> Result<CgroupDir<'_>, CgroupError> {
        let path = self
            .dir(controller, rel)
            .ok_or_else(|| CgroupError::NoHierarchy(rel.into()))?;
        Ok(CgroupDir {
            path,
            files: &self.files,
        })
    }

    fn read_cpu_v1(&self, rel: &str) -> Result<CpuStats, CgroupError> {
        let d = self.open(
            if self.v1.contains_key("cpuacct") {
                "cpuacct"
            } else {
                "cpu"
            },
            rel,
        )?;
        let mut buf = String::with_capacity(4096);
        let usage_total_ns = d.u64("cpuacct.usage", &mut buf)?;
        let mut c = CpuStats {
            usage_total_ns,
            ..Default::default()
        };
        // cpuacct.stat is in USER_HZ ticks (100 per second on every Linux ABI kubelets run on).
        if d.read("cpuacct.stat", &mut buf).is_ok() {
            let [user, system] = pick_keys(&buf, ["user", "system"]);
            c.usage_user_ns = user.map(|t| t * 10_000_000);
            c.usage_system_ns = system.map(|t| t * 10_000_000);
        }
        Ok(c)
    }

    fn read_cpu_v2(&self, rel: &str) -> Result<CpuStats, CgroupError> {
        let d = self.open("cpu", rel)?;
        let mut buf = String::with_capacity(1024);
        d.read("cpu.stat", &mut buf)?;
        let [usage, user, system] = pick_keys(&buf, ["usage_usec", "user_usec", "system_usec"]);
        let usage = usage.ok_or_else(|| CgroupError::Parse {
            path: d.path.join("cpu.stat"),
            message: "no usage_usec".into(),
        })?;
        Ok(CpuStats {
            usage_total_ns: usage.saturating_mul(1000),
            usage_user_ns: user.map(|u| u.saturating_mul(1000)),
            usage_system_ns: system.map(|u| u.saturating_mul(1000)),
        })
    }

    fn read_memory_v1(&self, rel: &str) -> Result<MemoryStats, CgroupError> {
        let d = self.open("memory", rel)?;
        let mut buf = String::with_capacity(4096);
        let usage = d.u64("memory.usage_in_bytes", &mut buf)?;
        let max_usage_bytes = d.u64("memory.max_usage_in_bytes", &mut buf).ok();
        let failcnt = d.u64("memory.failcnt", &mut buf).ok();
        d.read("memory.stat", &mut buf)?;
        // With use_hierarchy (always on since 5.x) the `total_` keys include child cgroups, which
        // is what a pod cgroup must report; cAdvisor prefers them too.
        let v = pick_keys(
            &buf,
            [
                "total_cache",
                "total_rss",
                "total_swap",
                "total_mapped_file",
                "total_inactive_file",
                "total_pgfault",
                "total_pgmajfault",
                "cache",
                "rss",
                "swap",
                "mapped_file",
                "inactive_file",
                "pgfault",
                "pgmajfault",
            ],
        );
        let pick = |i: usize| v[i].or(v[i + 7]);
        let inactive_file = pick(4).unwrap_or(0);
        Ok(MemoryStats {
            usage_bytes: usage,
            max_usage_bytes,
            failcnt,
            cache_bytes: pick(0),
            rss_bytes: pick(1),
            swap_bytes: pick(2),
            mapped_file_bytes: pick(3),
            working_set_bytes: usage.saturating_sub(inactive_file),
            pgfault: pick(5),
            pgmajfault: pick(6),
        })
    }

    fn read_memory_v2(&self, rel: &str) -> Result<MemoryStats, CgroupError> {
        let d = self.open("memory", rel)?;
        let mut buf = String::with_capacity(4096);
        let usage = d.u64("memory.current", &mut buf)?;
        let max_usage_bytes = d.u64("memory.peak", &mut buf).ok();
        let swap_bytes = d.u64("memory.swap.current", &mut buf).ok();
        // v2 has no failcnt; the number of times the limit was hit is memory.events `max`.
        let failcnt = d
            .read("memory.events", &mut buf)
            .ok()
            .and_then(|_| pick_keys(&buf, ["max"])[0]);
        d.read("memory.stat", &mut buf)?;
        let [file, anon, file_mapped, inactive_file, pgfault, pgmajfault] = pick_keys(
            &buf,
            [
                "file",
                "anon",
                "file_mapped",
                "inactive_file",
                "pgfault",
                "pgmajfault",
            ],
        );
        Ok(MemoryStats {
            usage_bytes: usage,
            max_usage_bytes,
            failcnt,
            cache_bytes: file,
            rss_bytes: anon,
            swap_bytes,
            mapped_file_bytes: file_mapped,
            working_set_bytes: usage.saturating_sub(inactive_file.unwrap_or(0)),
            pgfault,
            pgmajfault,
        })
    }

    /// I/O of one cgroup (`"/"`: the whole node) per device, split into read, write, sync,
    /// async and total — what cAdvisor reads on cgroup v1 (reference §2.2). `Ok(None)` where
    /// there is no v1 blkio hierarchy: cgroup v2's `io.stat` counts `rbytes`/`wbytes`/`rios`/
    /// `wios`/`dbytes`/`dios` and has no sync/async split at all (libcontainer maps it onto
    /// Read and Write only), so on v2 the split does not exist to be read.
    ///
    /// The kernel keeps blk-throttle's counters only for a device whose request queue has had a
    /// throttle rule set in some cgroup (seen on Linux 6.18: the files list nothing but `Total
    /// 0` until then), and a removed cgroup's I/O leaves the recursive sums of its ancestors.
    pub fn read_blkio(&self, rel: &str) -> Result<Option<BlkioStats>, CgroupError> {
        if !self.v1.contains_key("blkio") {
            return Ok(None);
        }
        let d = self.open("blkio", rel)?;
        let mut buf = String::with_capacity(4096);
        let mut last_err = None;
        for (bytes_file, ops_file) in BLKIO_FILES {
            match d.read(bytes_file, &mut buf) {
                Ok(()) => {}
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            }
            let service_bytes = parse_blkio(&buf);
            if service_bytes.is_empty() {
                last_err = None;
                continue;
            }
            let serviced = match d.read(ops_file, &mut buf) {
                Ok(()) => parse_blkio(&buf),
                Err(_) => Default::default(),
            };
            return Ok(Some(BlkioStats {
                service_bytes,
                serviced,
            }));
        }
        match last_err {
            // Files that are not there (no such scheduler): nothing is counted here.
            Some(e) if !is_not_found(&e) => Err(e),
            _ => Ok(Some(BlkioStats::default())),
        }
    }

    /// PIDs of processes in a cgroup (to enter its network namespace via /proc/<pid>/net/dev).
    pub fn pids(&self, rel: &str) -> Vec<u32> {
        let dir = match self.dir("cpuacct", rel).or_else(|| self.dir("cpu", rel)) {
            Some(d) => d,
            None => return Vec::new(),
        };
        let mut buf = String::new();
        match self.files.read_in(&dir, "cgroup.procs", &mut buf) {
            Ok(()) => buf.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Finds kubelet pod cgroups and their containers.
    pub fn discover_pods(&self) -> Vec<PodCgroup> {
        let Some(root) = self.accounting_root() else {
            return Vec::new();
        };
        let mut pods = Vec::new();
        for top in ["kubepods", "kubepods.slice"] {
            let dir = root.join(top);
            if dir.is_dir() {
                collect_pods(root, &dir, 0, &mut pods);
            }
        }
        collect_runtime_pods(root, &mut pods);
        collect_containerd_pods(root, &mut pods);
        pods.sort_by(|a, b| a.uid.cmp(&b.uid));
        pods
    }
}

/// A directory entry that is a directory: from the listing's `d_type` (no `stat` per entry),
/// following a symbolic link (a `host_root` assembled from links) only when there is one.
fn is_dir_entry(entry: &fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(t) if t.is_symlink() => entry.path().is_dir(),
        Ok(t) => t.is_dir(),
        Err(_) => false,
    }
}

/// Walks `kubepods` (depth 0), its QoS classes (depth 1) and finds pod directories.
fn collect_pods(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PodCgroup>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // d_type from the directory listing: no stat per entry.
        if !is_dir_entry(&entry) {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(uid) = pod_uid_from_dir(&name) {
            let rel = rel_path(root, &path);
            let containers = list_containers(root, &path);
            out.push(PodCgroup {
                uid,
                path: rel,
                containers,
            });
        } else if depth == 0 && is_qos_dir(&name) {
            collect_pods(root, &path, depth + 1, out);
        }
    }
}

/// containerd without a kubelet puts a task's cgroup at `/<namespace>/<id>` (`/default/<id>`,
/// `/k8s.io/<id>`): any other top-level directory whose children are container ids is such a
/// namespace, and each container a pod of one.
fn collect_containerd_pods(root: &Path, out: &mut Vec<PodCgroup>) {
    const KNOWN: &[&str] = &[
        "kubepods",
        "kubepods.slice",
        "libpod_parent",
        "machine.slice",
        "docker",
        "system.slice",
        "user.slice",
        "init.scope",
    ];
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for ns in entries.flatten() {
        let name = ns.file_name().to_string_lossy().to_string();
        if KNOWN.contains(&name.as_str()) || !ns.path().is_dir() {
            continue;
        }
        let Ok(children) = fs::read_dir(ns.path()) else {
            continue;
        };
        for c in children.flatten() {
            let id = c.file_name().to_string_lossy().to_string();
            if is_hex64(&id) && is_dir_entry(&c) {
                let rel = rel_path(root, &c.path());
                out.push(PodCgroup {
                    uid: id.clone(),
                    path: rel.clone(),
                    containers: vec![ContainerCgroup { id, path: rel }],
                });
            }
        }
    }
}

/// Container hosts without a kubelet (issue [8/8]): podman with the cgroupfs manager
/// (`libpod_parent/<pod id>/libpod-<id>`, stand-alone `libpod_parent/libpod-<id>`), podman with
/// systemd (`machine.slice/libpod-pod-<pod id>.slice/libpod-<id>.scope`, stand-alone
/// `machine.slice/libpod-<id>.scope`) and docker (`docker/<id>`, `system.slice/docker-<id>.scope`).
/// A stand-alone container is a pod of one whose uid is the container id.
fn collect_runtime_pods(root: &Path, out: &mut Vec<PodCgroup>) {
    for parent in ["libpod_parent", "machine.slice", "docker", "system.slice"] {
        let Ok(entries) = fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !is_dir_entry(&entry) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let pod_id = match parent {
                "libpod_parent" => Some(name.as_str()),
                "machine.slice" => name
                    .strip_prefix("libpod-pod-")
                    .and_then(|n| n.strip_suffix(".slice")),
                _ => None,
            };
            if let Some(pod_id) = pod_id.filter(|p| is_hex64(p)) {
                let containers = list_containers(root, &path);
                out.push(PodCgroup {
                    uid: pod_id.to_string(),
                    path: rel_path(root, &path),
                    containers,
                });
                continue;
            }
            let standalone = match parent {
                "docker" => true,
                "system.slice" => name.starts_with("docker-"),
                _ => name.starts_with("libpod-"),
            };
            if let Some(id) = container_id_from_dir(&name).filter(|id| standalone && is_hex64(id)) {
                let rel = rel_path(root, &path);
                out.push(PodCgroup {
                    uid: id.clone(),
                    path: rel.clone(),
                    containers: vec![ContainerCgroup { id, path: rel }],
                });
            }
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_qos_dir(name: &str) -> bool {
    matches!(
        name,
        "burstable" | "besteffort" | "kubepods-burstable.slice" | "kubepods-besteffort.slice"
    )
}

fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("/{}", rel.to_string_lossy())
}

fn list_containers(root: &Path, pod_dir: &Path) -> Vec<ContainerCgroup> {
    let Ok(entries) = fs::read_dir(pod_dir) else {
        return Vec::new();
    };
    let mut out: Vec<ContainerCgroup> = entries
        .flatten()
        .filter(is_dir_entry)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            container_id_from_dir(&name).map(|id| ContainerCgroup {
                id,
                path: rel_path(root, &e.path()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice` /
/// `kubepods-pod<uid>.slice` (systemd) → the UID with dashes.
pub fn pod_uid_from_dir(name: &str) -> Option<String> {
    let uid = if let Some(rest) = name.strip_suffix(".slice") {
        let idx = rest.rfind("-pod")?;
        rest[idx + 4..].replace('_', "-")
    } else {
        name.strip_prefix("pod")?.to_string()
    };
    let ok = uid.len() >= 8 && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    ok.then_some(uid)
}

/// A container directory: a bare id (cgroupfs) or `<runtime>-<id>.scope` (systemd). The
/// conmon scopes of cri-o (`crio-conmon-<id>.scope`) are not containers.
pub fn container_id_from_dir(name: &str) -> Option<String> {
    let id = if let Some(rest) = name.strip_suffix(".scope") {
        if rest.starts_with("crio-conmon-") {
            return None;
        }
        let idx = rest.rfind('-')?;
        &rest[idx + 1..]
    } else {
        name.strip_prefix("libpod-").unwrap_or(name)
    };
    (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Reads a small pseudo-file with one `read` into a buffer sized for cgroup files.
pub fn read_small(path: &Path) -> Result<String, CgroupError> {
    use std::io::Read;
    let err = |source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(err)?;
    let mut buf = String::with_capacity(2048);
    f.read_to_string(&mut buf).map_err(err)?;
    Ok(buf)
}

/// Values of the asked keys in a `key value` per line file, without building a map.
pub fn pick_keys<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        if let Some(i) = keys.iter().position(|x| *x == k) {
            out[i] = v.parse().ok();
        }
    }
    out
}

fn is_not_found(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Parses a v1 blkio statistic: `<major>:<minor> <Op> <value>` per line (Op one of Read,
/// Write, Sync, Async, Discard, Total) and a last `Total <n>` line over all devices, which is
/// skipped. Lines that do not parse are skipped; a device listed with no known Op is kept
/// with every kind `None`.
pub fn parse_blkio(text: &str) -> std::collections::BTreeMap<(u32, u32), BlkioOps> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(v)) =
            (major.parse::<u32>(), minor.parse::<u32>(), v.parse::<u64>())
        else {
            continue;
        };
        let e: &mut BlkioOps = out.entry((major, minor)).or_default();
        match op {
            "Read" => e.read = Some(v),
            "Write" => e.write = Some(v),
            "Sync" => e.sync = Some(v),
            "Async" => e.async_ = Some(v),
            "Total" => e.total = Some(v),
            _ => {}
        }
    }
    out
}

/// A cgroup directory whose files are read through the shared [`OpenFiles`].
struct CgroupDir<'a> {
    path: PathBuf,
    files: &'a OpenFiles,
}

impl CgroupDir<'_> {
    /// Reads one file of the directory into `buf` (replacing its contents).
    fn read(&self, name: &str, buf: &mut String) -> Result<(), CgroupError> {
        self.files
            .read_in(&self.path, name, buf)
            .map_err(|source| CgroupError::Read {
                path: self.path.join(name),
                source,
            })
    }

    fn u64(&self, name: &str, buf: &mut String) -> Result<u64, CgroupError> {
        self.read(name, buf)?;
        let t = buf.trim();
        t.parse::<u64>().map_err(|_| CgroupError::Parse {
            path: self.path.join(name),
            message: format!("expected a whole number, found {:?}", truncate(t)),
        })
    }
}

/// Reads a `key value` per line file (cpu.stat, memory.stat, memory.events, cpuacct.stat).
/// Lines that do not parse are skipped: the kernel adds keys over time.
pub fn read_flat_keyed(path: &Path) -> Result<HashMap<String, u64>, CgroupError> {
    let text = fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_flat_keyed(&text))
}

pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse::<u64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pod_uids_from_both_drivers() {
        assert_eq!(
            pod_uid_from_dir("pod3f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b").as_deref(),
            Some("3f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(
            pod_uid_from_dir("kubepods-burstable-pod3f1c2a9e_5b6d_4e7f_8a9b_0c1d2e3f4a5b.slice")
                .as_deref(),
            Some("3f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(
            pod_uid_from_dir("kubepods-pod3f1c2a9e_5b6d_4e7f_8a9b_0c1d2e3f4a5b.slice").as_deref(),
            Some("3f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(pod_uid_from_dir("burstable"), None);
        assert_eq!(pod_uid_from_dir("kubepods-burstable.slice"), None);
        assert_eq!(pod_uid_from_dir("podzzz"), None);
    }

    #[test]
    fn container_ids_from_both_drivers() {
        let id = "a".repeat(64);
        assert_eq!(container_id_from_dir(&id), Some(id.clone()));
        assert_eq!(
            container_id_from_dir(&format!("cri-containerd-{id}.scope")),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_dir(&format!("crio-{id}.scope")),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_dir(&format!("docker-{id}.scope")),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_dir(&format!("crio-conmon-{id}.scope")),
            None
        );
        assert_eq!(container_id_from_dir("tasks"), None);
        assert_eq!(
            container_id_from_dir(&format!("libpod-{id}")),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_dir(&format!("libpod-{id}.scope")),
            Some(id.clone())
        );
        assert_eq!(container_id_from_dir("conmon"), None);
    }

    #[test]
    fn pods_and_containers_are_found_through_symlinked_directories() {
        // A host_root assembled from links (pod directories pointing elsewhere): listing uses
        // the entries' d_type, and a link is followed rather than skipped.
        let dir = tempfile::tempdir().unwrap();
        let uid = "3f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
        let cid = "a".repeat(64);
        let real = dir.path().join("elsewhere/pod");
        fs::create_dir_all(real.join(&cid)).unwrap();
        fs::create_dir_all(real.join("b".repeat(64))).unwrap();
        let qos = dir.path().join("sys/fs/cgroup/cpuacct/kubepods/burstable");
        fs::create_dir_all(&qos).unwrap();
        std::os::unix::fs::symlink(&real, qos.join(format!("pod{uid}"))).unwrap();
        // A regular file named like a pod is not a pod.
        fs::write(qos.join("pod00000000-0000-4000-8000-000000000000"), "").unwrap();
        let cg = Cgroups::detect(dir.path()).unwrap();
        let pods = cg.discover_pods();
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(pods[0].uid, uid);
        let mut ids: Vec<&str> = pods[0].containers.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, [cid.as_str(), &"b".repeat(64)]);
    }

    /// Text as blk-throttle writes it (Linux 6.18, a virtio disk 254:0 and an NVMe disk).
    #[test]
    fn blkio_rows_by_device_and_kind() {
        let text = "254:0 Read 8458240\n254:0 Write 30072832\n254:0 Sync 38006784\n254:0 Async 540672\n254:0 Discard 16384\n254:0 Total 38547456\n259:0 Read 4096\n259:0 Write 0\n259:0 Sync 4096\n259:0 Async 0\n259:0 Discard 0\n259:0 Total 4096\nTotal 38551552\n";
        let m = parse_blkio(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[&(254, 0)],
            BlkioOps {
                read: Some(8458240),
                write: Some(30072832),
                sync: Some(38006784),
                async_: Some(540672),
                total: Some(38547456),
            }
        );
        assert_eq!(m[&(259, 0)].sync, Some(4096));
        // Nothing counted yet: only the all-devices total.
        assert!(parse_blkio("Total 0\n").is_empty());
        assert!(parse_blkio("garbage\n1:x Read 5\n").is_empty());
    }

    #[test]
    fn blkio_of_v1_hierarchies_only() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sys/fs/cgroup");
        fs::create_dir_all(base.join("blkio")).unwrap();
        fs::create_dir_all(base.join("memory")).unwrap();
        // The throttle files list devices; the CFQ files exist but are empty.
        fs::write(
            base.join("blkio/blkio.io_service_bytes_recursive"),
            "Total 0\n",
        )
        .unwrap();
        fs::write(
            base.join("blkio/blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 10\n8:0 Write 20\n8:0 Sync 25\n8:0 Async 5\n8:0 Total 30\nTotal 30\n",
        )
        .unwrap();
        fs::write(
            base.join("blkio/blkio.throttle.io_serviced_recursive"),
            "8:0 Read 1\n8:0 Write 2\n8:0 Sync 2\n8:0 Async 1\n8:0 Total 3\nTotal 3\n",
        )
        .unwrap();
        let cg = Cgroups::detect(dir.path()).unwrap();
        let s = cg.read_blkio("/").unwrap().unwrap();
        assert_eq!(s.service_bytes[&(8, 0)].async_, Some(5));
        assert_eq!(s.serviced[&(8, 0)].sync, Some(2));

        // cgroup v2: no blkio hierarchy, no sync/async split to read.
        let v2 = tempfile::tempdir().unwrap();
        fs::create_dir_all(v2.path().join("sys/fs/cgroup")).unwrap();
        fs::write(
            v2.path().join("sys/fs/cgroup/cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let cg = Cgroups::detect(v2.path()).unwrap();
        assert_eq!(cg.read_blkio("/").unwrap(), None);
    }

    /// This machine's own root blkio cgroup, when it has one (a v1 or hybrid host): it reads,
    /// and every device it lists has all five kinds.
    #[test]
    fn blkio_of_this_machine() {
        let Ok(cg) = Cgroups::detect(Path::new("/")) else {
            return;
        };
        match cg.read_blkio("/") {
            Ok(Some(s)) => {
                for (dev, ops) in s.service_bytes.iter().chain(&s.serviced) {
                    let all = [ops.read, ops.write, ops.sync, ops.async_, ops.total];
                    assert!(all.iter().all(Option::is_some), "{dev:?}: {ops:?}");
                }
            }
            Ok(None) => eprintln!("no v1 blkio hierarchy here (cgroup v2): nothing to read"),
            Err(e) => panic!("{e}"),
        }
    }

    proptest! {
        #[test]
        fn flat_keyed_never_panics(s in "\\PC*") {
            let _ = parse_flat_keyed(&s);
        }

        #[test]
        fn dir_name_parsers_never_panic(s in "\\PC{0,80}") {
            let _ = pod_uid_from_dir(&s);
            let _ = container_id_from_dir(&s);
        }
    }
}
