//! Node-level statistics from /proc and statfs under the host root (reference §2.1–2.3):
//! CPU times, core count, memory, per-interface network counters, per-device disk I/O and
//! mounted filesystems. Parsers take text and never panic; readers name the file on error.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The interfaces of a `net/dev` text, without those cAdvisor ignores.
fn network_interfaces(text: &str) -> BTreeMap<String, NetCounters> {
    parse_net_dev(text)
        .into_iter()
        .filter(|(name, _)| !is_ignored_interface(name))
        .collect()
}

/// Nanoseconds per USER_HZ tick (100 Hz on every Linux ABI kubelets run on).
const NS_PER_TICK: u64 = 10_000_000;

/// Cumulative CPU time of the whole node, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub total_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
}

/// Node memory with the meaning of the root cgroup's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMemory {
    pub total_bytes: u64,
    pub usage_bytes: u64,
    pub cache_bytes: u64,
    pub rss_bytes: u64,
    pub swap_bytes: u64,
    pub mapped_file_bytes: u64,
    pub working_set_bytes: u64,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Counters of one block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// One line of /proc/diskstats: the kernel's name of the device, its number and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStat {
    pub name: String,
    /// Major and minor number (how the cgroup blkio files name the device).
    pub dev: (u32, u32),
    pub counters: DiskCounters,
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub device: String,
    /// Major and minor number of the filesystem (`st_dev`).
    pub dev: (u32, u32),
    pub fstype: String,
    pub mount_point: String,
    pub capacity_bytes: u64,
    pub usage_bytes: u64,
    pub available_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// A process's `/proc/<pid>` directory, held open ([`Host::process`]).
#[derive(Debug)]
pub struct ProcessDir {
    pid: u32,
    dir: std::os::fd::OwnedFd,
}

impl ProcessDir {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Opens `rel` below the process's directory (fails once the process has exited).
    fn open(&self, rel: &str) -> std::io::Result<fs::File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let name = CString::new(rel)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: openat on a directory descriptor we hold, with a NUL-terminated name; a
        // returned descriptor is owned by the File from here on.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(unsafe { fs::File::from_raw_fd(fd) })
    }
}

/// Reads /proc and statfs below a host root (`/` on the host, `/rootfs` in a DaemonSet).
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
    /// This process's own mount table: which filesystems it can reach, and where.
    own_mountinfo: PathBuf,
}

impl Host {
    pub fn new(root: &Path) -> Host {
        Host {
            root: root.to_path_buf(),
            own_mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }

    /// Reads this process's mount table from `path` instead (tests describe a container).
    pub fn with_own_mountinfo(mut self, path: &Path) -> Host {
        self.own_mountinfo = path.to_path_buf();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self, rel: &str) -> Result<(PathBuf, String), HostError> {
        let path = self.root.join(rel);
        fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|source| HostError::Read { path, source })
    }

    pub fn cpu_times(&self) -> Result<CpuTimes, HostError> {
        let (path, text) = self.read("proc/stat")?;
        parse_proc_stat(&text).ok_or_else(|| HostError::Parse {
            path,
            message: "no aggregate `cpu` line".into(),
        })
    }

    /// Logical CPUs (gopsutil counts `processor` entries of /proc/cpuinfo).
    pub fn num_cores(&self) -> Result<u32, HostError> {
        let (path, text) = self.read("proc/cpuinfo")?;
        let n = text
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count() as u32;
        if n == 0 {
            return Err(HostError::Parse {
                path,
                message: "no `processor` entries".into(),
            });
        }
        Ok(n)
    }

    pub fn memory(&self) -> Result<NodeMemory, HostError> {
        let (path, text) = self.read("proc/meminfo")?;
        parse_meminfo(&text).ok_or_else(|| HostError::Parse {
            path,
            message: "no MemTotal/MemFree".into(),
        })
    }

    /// `pgfault` and `pgmajfault` from /proc/vmstat.
    pub fn page_faults(&self) -> Result<(u64, u64), HostError> {
        let (path, text) = self.read("proc/vmstat")?;
        let kv = crate::cgroup::parse_flat_keyed(&text);
        match (kv.get("pgfault"), kv.get("pgmajfault")) {
            (Some(a), Some(b)) => Ok((*a, *b)),
            _ => Err(HostError::Parse {
                path,
                message: "no pgfault/pgmajfault".into(),
            }),
        }
    }

    /// Interfaces seen from the network namespace of `pid` (1 = the host's namespace),
    /// without those cAdvisor ignores (names starting with lo, veth, docker, nerdctl).
    pub fn network(&self, pid: u32) -> Result<BTreeMap<String, NetCounters>, HostError> {
        let (_, text) = self.read(&format!("proc/{pid}/net/dev"))?;
        Ok(network_interfaces(&text))
    }

    /// Holds `/proc/<pid>` open, so that files read through it later belong to that very
    /// process: once it has exited they fail to open, even if its pid was taken by another
    /// process since.
    pub fn process(&self, pid: u32) -> Result<ProcessDir, HostError> {
        let path = self.root.join(format!("proc/{pid}"));
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&path)
            .map_err(|source| HostError::Read {
                path: path.clone(),
                source,
            })?;
        Ok(ProcessDir {
            pid,
            dir: fd.into(),
        })
    }

    /// [`Host::network`] through a held process directory.
    pub fn process_network(
        &self,
        p: &ProcessDir,
    ) -> Result<BTreeMap<String, NetCounters>, HostError> {
        let err = |source| HostError::Read {
            path: self.root.join(format!("proc/{}/net/dev", p.pid)),
            source,
        };
        let file = p.open("net/dev").map_err(err)?;
        let mut text = String::new();
        crate::pseudofs::read_at_start(&file, &mut text).map_err(err)?;
        Ok(network_interfaces(&text))
    }

    /// Block devices with I/O, in /proc/diskstats order (`name` without `/dev/`). Partitions,
    /// loop and RAM devices are left out so that I/O is not counted twice.
    pub fn disk_io(&self) -> Result<Vec<DiskStat>, HostError> {
        let (_, text) = self.read("proc/diskstats")?;
        let mut out = Vec::new();
        for d in parse_diskstats(&text) {
            let name = &d.name;
            if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
                continue;
            }
            // A partition has a `partition` file in sysfs; whole disks do not.
            if self
                .root
                .join(format!("sys/class/block/{name}/partition"))
                .exists()
            {
                continue;
            }
            if d.counters == DiskCounters::default() {
                continue;
            }
            out.push(d);
        }
        Ok(out)
    }

    /// The host's mount table (`/proc/1/mountinfo`: the mounts of the host's init, not of the
    /// agent's container).
    pub fn mount_table(&self) -> Result<Vec<MountInfo>, HostError> {
        let (_, text) = self.read("proc/1/mountinfo")?;
        Ok(parse_mountinfo(&text))
    }

    /// Filesystems of the host's mount table whose device matches cAdvisor's
    /// `^(tmpfs|/dev/.*|overlay)$`, one per device (the first mount wins).
    ///
    /// statfs needs a path on the filesystem. Under a host root that is the host's whole `/`
    /// that is the mount point itself; a DaemonSet that mounts only what it reads (issue 15,
    /// item 8: /var/log, /proc, /sys, the journal, the state directory) reaches a filesystem
    /// through any of its own mounts on the same device. A path is used only when its device
    /// number is the mount's, so a filesystem the agent cannot reach is left out rather than
    /// reported with the numbers of whatever lies at that path in the container.
    pub fn filesystems(&self) -> Result<Vec<Filesystem>, HostError> {
        Ok(self.filesystems_of(&self.mount_table()?))
    }

    /// [`Host::filesystems`] of a mount table already read ([`Host::mount_table`]).
    pub fn filesystems_of(&self, mounts: &[MountInfo]) -> Vec<Filesystem> {
        let own: Vec<MountInfo> = fs::read_to_string(&self.own_mountinfo)
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for m in mounts.iter().cloned() {
            if !(m.device == "tmpfs" || m.device == "overlay" || m.device.starts_with("/dev/")) {
                continue;
            }
            if !seen.insert(m.device.clone()) {
                continue;
            }
            let at = self.root.join(m.mount_point.trim_start_matches('/'));
            let on_device = |p: &Path| {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(p).is_ok_and(|md| md.dev() == m.dev())
            };
            let path = if on_device(&at) {
                at
            } else {
                match own
                    .iter()
                    .filter(|o| o.dev == m.dev)
                    .map(|o| PathBuf::from(&o.mount_point))
                    .find(|p| on_device(p))
                {
                    Some(p) => p,
                    None => continue,
                }
            };
            if let Some(st) = statvfs(&path) {
                if st.capacity_bytes == 0 {
                    continue;
                }
                out.push(Filesystem {
                    device: m.device,
                    dev: m.dev,
                    fstype: m.fstype,
                    mount_point: m.mount_point,
                    ..st
                });
            }
        }
        out
    }
}

/// Checks that `host_root` looks like a host's root filesystem (a DaemonSet that forgot the
/// host mounts would otherwise report the container's own numbers, or none).
pub fn check_host_root(root: &Path) -> Result<(), String> {
    for rel in ["proc/stat", "proc/meminfo", "sys/fs/cgroup"] {
        if !root.join(rel).exists() {
            return Err(format!(
                "host_root {} does not look like the host's root filesystem: {} is missing. Mount the host's /proc and /sys at {0}/proc and {0}/sys (read-only hostPaths, as deploy/kubernetes/40-agent-daemonset.yaml does) or set kinsight.host_root",
                root.display(),
                root.join(rel).display(),
            ));
        }
    }
    Ok(())
}

fn is_ignored_interface(name: &str) -> bool {
    ["lo", "veth", "docker", "nerdctl"]
        .iter()
        .any(|p| name.starts_with(p))
}

pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // included in user, idle/iowait/steal are not this node's work.
    let user = get(0) + get(1);
    let system = get(2) + get(5) + get(6);
    Some(CpuTimes {
        total_ns: (user + system) * NS_PER_TICK,
        user_ns: user * NS_PER_TICK,
        system_ns: system * NS_PER_TICK,
    })
}

pub fn parse_meminfo(text: &str) -> Option<NodeMemory> {
    let mut kv = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(v) = v.parse::<u64>() else { continue };
        let mult = if parts.next() == Some("kB") { 1024 } else { 1 };
        kv.insert(k.trim_end_matches(':').to_string(), v.saturating_mul(mult));
    }
    let g = |k: &str| kv.get(k).copied().unwrap_or(0);
    let total = *kv.get("MemTotal")?;
    let free = *kv.get("MemFree")?;
    let usage = total.saturating_sub(free);
    Some(NodeMemory {
        total_bytes: total,
        usage_bytes: usage,
        cache_bytes: g("Buffers") + g("Cached"),
        rss_bytes: g("AnonPages"),
        swap_bytes: g("SwapTotal").saturating_sub(g("SwapFree")),
        mapped_file_bytes: g("Mapped"),
        working_set_bytes: usage.saturating_sub(g("Inactive(file)")),
    })
}

pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetCounters> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(' ') || name.contains('|') {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetCounters {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        );
    }
    out
}

pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u64>().ok();
            Some(DiskStat {
                name: f[2].to_string(),
                dev: (f[0].parse().ok()?, f[1].parse().ok()?),
                counters: DiskCounters {
                    reads: n(3)?,
                    read_bytes: n(5)?.saturating_mul(512),
                    writes: n(7)?,
                    write_bytes: n(9)?.saturating_mul(512),
                },
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
}

pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(Mount {
                device: unescape_mount(f.next()?),
                mount_point: unescape_mount(f.next()?),
                fstype: f.next()?.to_string(),
            })
        })
        .collect()
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Major and minor number of the filesystem (what `stat` reports as `st_dev`).
    pub dev: (u32, u32),
    pub mount_point: String,
    pub fstype: String,
    /// The mount source (`/dev/nvme0n1p1`, `tmpfs`, `overlay`).
    pub device: String,
}

impl MountInfo {
    fn dev(&self) -> u64 {
        libc::makedev(self.dev.0, self.dev.1)
    }
}

/// Parses `/proc/<pid>/mountinfo`: `id parent major:minor root mount-point options
/// [optional fields...] - fstype source super-options` (proc(5)). Lines that do not parse are
/// skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_id, _parent, dev) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            let dev = (major.parse().ok()?, minor.parse().ok()?);
            let (_root, mount_point) = (f.next()?, f.next()?);
            // Options, then optional fields up to the "-" separator.
            f.find(|x| *x == "-")?;
            let fstype = f.next()?.to_string();
            let device = unescape_mount(f.next()?);
            Some(MountInfo {
                dev,
                mount_point: unescape_mount(mount_point),
                fstype,
                device,
            })
        })
        .collect()
}

/// /proc/mounts escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// statfs of a path; `None` when it cannot be read (unmounted meanwhile, permission).
pub fn statvfs(path: &Path) -> Option<Filesystem> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let capacity = st.f_blocks as u64 * frsize;
    Some(Filesystem {
        device: String::new(),
        dev: (0, 0),
        fstype: String::new(),
        mount_point: String::new(),
        capacity_bytes: capacity,
        usage_bytes: (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * frsize,
        available_bytes: st.f_bavail as u64 * frsize,
        inodes: st.f_files as u64,
        inodes_free: st.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proc_stat_sums_busy_ticks() {
        let t = parse_proc_stat("cpu  100 20 30 999 5 1 2 7 0 0\ncpu0 1 1 1 1\n").unwrap();
        assert_eq!(t.user_ns, 120 * NS_PER_TICK);
        assert_eq!(t.system_ns, 33 * NS_PER_TICK);
        assert_eq!(t.total_ns, 153 * NS_PER_TICK);
        assert!(parse_proc_stat("intr 1 2").is_none());
    }

    #[test]
    fn meminfo_maps_to_cgroup_meaning() {
        let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 200 kB\nBuffers: 10 kB\nCached: 100 kB\nAnonPages: 300 kB\nMapped: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\nInactive(file): 60 kB\n").unwrap();
        assert_eq!(m.total_bytes, 1000 * 1024);
        assert_eq!(m.usage_bytes, 800 * 1024);
        assert_eq!(m.cache_bytes, 110 * 1024);
        assert_eq!(m.working_set_bytes, 740 * 1024);
        assert!(parse_meminfo("garbage").is_none());
    }

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 165103496    5596    1    2    0     0          0         0   366417    3548    3    4    0     0       0          0\n";
        let n = parse_net_dev(text);
        let e = n.get("eth0").unwrap();
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (165103496, 5596, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (366417, 3548, 3, 4)
        );
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn diskstats_sectors_to_bytes() {
        let d = parse_diskstats(
            " 254       0 vda 67668 7585 4819690 254960 4804 40947 5946536 21791 0 20832 277852\n",
        );
        assert_eq!(d[0].name, "vda");
        assert_eq!(d[0].dev, (254, 0));
        assert_eq!(
            d[0].counters,
            DiskCounters {
                reads: 67668,
                read_bytes: 4819690 * 512,
                writes: 4804,
                write_bytes: 5946536 * 512
            }
        );
    }

    #[test]
    fn mountinfo_gives_devices_and_mount_points() {
        let text = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n\
                    25 22 0:23 / /run rw,nosuid - tmpfs tmpfs rw,mode=755\n\
                    30 22 259:3 /kubelet /var/lib/my\\040kubelet rw master:2 shared:9 - xfs /dev/nvme1n1 rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            MountInfo {
                dev: (259, 1),
                mount_point: "/".into(),
                fstype: "ext4".into(),
                device: "/dev/nvme0n1p1".into()
            }
        );
        assert_eq!(m[2].mount_point, "/var/lib/my kubelet");
        assert_eq!(
            (m[2].fstype.as_str(), m[2].device.as_str()),
            ("xfs", "/dev/nvme1n1")
        );
    }

    /// A DaemonSet that mounts only what it reads: the host's `/` is not under the host root,
    /// but the host's /var/log is, and it lies on the root filesystem. The root filesystem is
    /// measured through it; a filesystem the container cannot reach is left out, not
    /// measured at the wrong path.
    #[test]
    fn filesystems_are_reached_through_the_mounts_the_agent_has() {
        use std::os::unix::fs::MetadataExt;
        let here = tempfile::tempdir().unwrap();
        let dev = fs::metadata(here.path()).unwrap().dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        // The host root: only /proc/1/mountinfo in it; "/" there is a directory of the
        // container (on a tmpfs here, another device), which must not be taken for the
        // host's root filesystem.
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        assert_ne!(fs::metadata(root.path()).unwrap().dev(), dev);
        fs::create_dir_all(root.path().join("proc/1")).unwrap();
        fs::write(
            root.path().join("proc/1/mountinfo"),
            format!(
                "22 1 {major}:{minor} / / rw - ext4 /dev/root-of-the-host rw\n\
                 40 22 7:9 / /data rw - xfs /dev/elsewhere rw\n"
            ),
        )
        .unwrap();
        // The container's own table: /var/log of the host, mounted at <here>.
        let own = root.path().join("self-mountinfo");
        fs::write(
            &own,
            format!(
                "900 800 0:99 / / rw - overlay overlay rw\n\
                 901 900 {major}:{minor} /var/log {} ro - ext4 /dev/root-of-the-host rw\n",
                here.path().display()
            ),
        )
        .unwrap();
        let h = Host::new(root.path()).with_own_mountinfo(&own);
        let fss = h.filesystems().unwrap();
        assert_eq!(fss.len(), 1, "{fss:?}");
        assert_eq!(fss[0].device, "/dev/root-of-the-host");
        assert_eq!(fss[0].mount_point, "/");
        let want = statvfs(here.path()).unwrap();
        assert_eq!(fss[0].capacity_bytes, want.capacity_bytes);
        assert_eq!(fss[0].inodes, want.inodes);
        // Without a mount on that device nothing is measured.
        fs::write(&own, "900 800 0:99 / / rw - overlay overlay rw\n").unwrap();
        assert!(h.filesystems().unwrap().is_empty());
    }

    #[test]
    fn mounts_unescape() {
        let m = parse_mounts("/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n");
        assert_eq!(m[0].mount_point, "/mnt/my disk");
    }

    #[test]
    fn host_root_without_mounts_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_host_root(dir.path()).unwrap_err();
        assert!(e.contains("proc/stat is missing"), "{e}");
        assert!(check_host_root(Path::new("/")).is_ok());
    }

    #[test]
    fn reads_this_machine() {
        // Real /proc of the machine running the test.
        let h = Host::new(Path::new("/"));
        assert!(h.num_cores().unwrap() >= 1);
        let m = h.memory().unwrap();
        assert!(m.total_bytes > m.working_set_bytes && m.working_set_bytes > 0);
        assert!(h.cpu_times().unwrap().total_ns > 0);
        let fs = h.filesystems().unwrap();
        assert!(fs.iter().any(|f| f.mount_point == "/"), "{fs:?}");
        let root = fs.iter().find(|f| f.mount_point == "/").unwrap();
        assert!(
            root.usage_bytes <= root.capacity_bytes && root.available_bytes <= root.capacity_bytes
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_proc_stat(&s);
            let _ = parse_meminfo(&s);
            let _ = parse_net_dev(&s);
            let _ = parse_diskstats(&s);
            let _ = parse_mounts(&s);
            let _ = parse_mountinfo(&s);
            let _ = unescape_mount(&s);
        }
    }
}
