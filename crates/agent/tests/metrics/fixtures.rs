//! Fixture host trees: a directory that looks like a node's `/` to the agent (`host_root`),
//! with /proc files and a cgroup hierarchy whose counters the test sets. File contents follow
//! what the kernel writes (key sets of cgroup v2 `memory.stat` on a 6.x kernel, cgroup v1
//! `memory.stat` on 5.10, /proc formats); the numbers are the test's.

use std::fs;
use std::path::{Path, PathBuf};

pub fn kube(name: &str, vars: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube")
        .join(name);
    let mut text = fs::read_to_string(&path).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    text
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    /// Pure cgroup v2, kubelet with the systemd driver (EKS AL2023, Bottlerocket).
    V2Systemd,
    /// cgroup v1 with `cpu,cpuacct` co-mounted, kubelet with the cgroupfs driver.
    V1Cgroupfs,
}

pub struct HostTree {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
}

pub struct CgroupCounters {
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub mem_usage: u64,
    pub mem_inactive_file: u64,
    pub mem_anon: u64,
    pub mem_file: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
    pub limit: Option<u64>,
    pub pids: Vec<u32>,
}

impl HostTree {
    pub fn new(layout: Layout) -> HostTree {
        let t = HostTree {
            dir: tempfile::tempdir().unwrap(),
            layout,
        };
        let cpuinfo: String = (0..4).map(|i| format!("processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n\n")).collect();
        t.write("proc/cpuinfo", &cpuinfo);
        t.write("proc/meminfo", "MemTotal:        8000000 kB\nMemFree:         2000000 kB\nMemAvailable:    5000000 kB\nBuffers:          100000 kB\nCached:          2500000 kB\nSwapCached:            0 kB\nActive:          3000000 kB\nInactive:        1500000 kB\nActive(anon):    1800000 kB\nInactive(anon):   100000 kB\nActive(file):    1200000 kB\nInactive(file):  1400000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nAnonPages:       1900000 kB\nMapped:           300000 kB\nShmem:             20000 kB\n");
        let root = t.root().display().to_string();
        // The tree's mounts all live on the device of the temporary directory: the agent
        // statfs's a mount point only when its device number is the mount's.
        let dev = {
            use std::os::unix::fs::MetadataExt;
            let d = fs::metadata(t.root()).unwrap().dev();
            format!("{}:{}", libc::major(d), libc::minor(d))
        };
        t.write("proc/1/mountinfo", &format!("22 1 {dev} / / rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c\n23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n24 22 {dev} / /data rw,relatime - ext4 /dev/nvme0n1p1 rw\n25 22 {dev} / /run rw,nosuid,nodev - tmpfs tmpfs rw,size=1588240k,mode=755\n# {root}\n"));
        fs::create_dir_all(t.root().join("data")).unwrap();
        fs::create_dir_all(t.root().join("run")).unwrap();
        fs::create_dir_all(t.root().join("sys/class/block/nvme0n1")).unwrap();
        fs::create_dir_all(t.root().join("sys/class/block/nvme0n1p1")).unwrap();
        t.write("sys/class/block/nvme0n1p1/partition", "1\n");
        match layout {
            Layout::V2Systemd => {
                t.write(
                    "sys/fs/cgroup/cgroup.controllers",
                    "cpuset cpu io memory hugetlb pids rdma misc\n",
                );
            }
            Layout::V1Cgroupfs => {
                for c in ["cpu,cpuacct", "memory", "blkio", "pids"] {
                    fs::create_dir_all(t.root().join("sys/fs/cgroup").join(c)).unwrap();
                }
                std::os::unix::fs::symlink("cpu,cpuacct", t.root().join("sys/fs/cgroup/cpu"))
                    .unwrap();
                std::os::unix::fs::symlink("cpu,cpuacct", t.root().join("sys/fs/cgroup/cpuacct"))
                    .unwrap();
                // The root memory cgroup provides node max_usage and failcnt.
                t.write(
                    "sys/fs/cgroup/memory/memory.max_usage_in_bytes",
                    "6100000000\n",
                );
                t.write("sys/fs/cgroup/memory/memory.failcnt", "0\n");
                t.write("sys/fs/cgroup/memory/memory.usage_in_bytes", "6000000000\n");
                t.write(
                    "sys/fs/cgroup/memory/memory.stat",
                    "cache 0\nrss 0\ntotal_inactive_file 0\n",
                );
                t.write(
                    "sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "9223372036854771712\n",
                );
                t.write("sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "0\n");
            }
        }
        t
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Node counters: CPU in USER_HZ ticks, network bytes of eth0, sectors read/written.
    pub fn set_node(
        &self,
        user_ticks: u64,
        system_ticks: u64,
        rx: u64,
        tx: u64,
        sectors: u64,
        pgfault: u64,
    ) {
        self.write("proc/stat", &format!("cpu  {user_ticks} 0 {system_ticks} 99999 10 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\nintr 1\nctxt 2\nbtime 1764300000\n"));
        self.write(
            "proc/vmstat",
            &format!("nr_free_pages 500000\npgfault {pgfault}\npgmajfault 7\n"),
        );
        self.net_dev(
            1,
            &[("lo", 999, 999), ("eth0", rx, tx), ("veth1a2b3c", 5, 5)],
        );
        self.write("proc/diskstats", &format!(" 259       0 nvme0n1 1000 0 {sectors} 300 2000 0 {sectors} 900 0 800 1200\n 259       1 nvme0n1p1 1000 0 {sectors} 300 2000 0 {sectors} 900 0 800 1200\n   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n"));
    }

    pub fn net_dev(&self, pid: u32, ifaces: &[(&str, u64, u64)]) {
        let mut s = String::from(
            "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
        );
        for (name, rx, tx) in ifaces {
            s.push_str(&format!(
                "{name:>6}: {rx} {} 0 1 0 0 0 0 {tx} {} 0 2 0 0 0 0\n",
                rx / 100,
                tx / 100
            ));
        }
        self.write(&format!("proc/{pid}/net/dev"), &s);
    }

    /// Relative cgroup path of a pod in the layout's driver naming.
    pub fn pod_path(&self, uid: &str) -> String {
        match self.layout {
            Layout::V2Systemd => format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            ),
            Layout::V1Cgroupfs => format!("/kubepods/burstable/pod{uid}"),
        }
    }

    pub fn container_path(&self, uid: &str, cid: &str) -> String {
        match self.layout {
            Layout::V2Systemd => format!("{}/cri-containerd-{cid}.scope", self.pod_path(uid)),
            Layout::V1Cgroupfs => format!("{}/{cid}", self.pod_path(uid)),
        }
    }

    fn cg_dirs(&self, rel: &str) -> Vec<PathBuf> {
        let rel = rel.trim_start_matches('/');
        match self.layout {
            Layout::V2Systemd => vec![self.root().join("sys/fs/cgroup").join(rel)],
            Layout::V1Cgroupfs => ["cpu,cpuacct", "memory"]
                .iter()
                .map(|c| self.root().join("sys/fs/cgroup").join(c).join(rel))
                .collect(),
        }
    }

    pub fn set_cgroup(&self, rel: &str, c: &CgroupCounters) {
        for d in self.cg_dirs(rel) {
            fs::create_dir_all(&d).unwrap();
        }
        let procs: String = c.pids.iter().map(|p| format!("{p}\n")).collect();
        match self.layout {
            Layout::V2Systemd => {
                let d = &self.cg_dirs(rel)[0];
                w(
                    d,
                    "cpu.stat",
                    &format!(
                        "usage_usec {}\nuser_usec {}\nsystem_usec {}\nnr_periods 120\nnr_throttled 3\nthrottled_usec 4500\nnr_bursts 0\nburst_usec 0\n",
                        c.cpu_usage_ns / 1000,
                        c.cpu_user_ns / 1000,
                        c.cpu_system_ns / 1000
                    ),
                );
                w(
                    d,
                    "cpu.max",
                    &match c.limit {
                        Some(_) => "50000 100000\n".to_string(),
                        None => "max 100000\n".to_string(),
                    },
                );
                w(d, "memory.current", &format!("{}\n", c.mem_usage));
                w(
                    d,
                    "memory.max",
                    &match c.limit {
                        Some(l) => format!("{l}\n"),
                        None => "max\n".into(),
                    },
                );
                w(d, "memory.peak", &format!("{}\n", c.mem_usage + 4096));
                w(d, "memory.swap.current", "0\n");
                w(
                    d,
                    "memory.events",
                    "low 0\nhigh 0\nmax 2\noom 0\noom_kill 0\noom_group_kill 0\n",
                );
                w(
                    d,
                    "memory.stat",
                    &format!(
                        "anon {}\nfile {}\nkernel 1900544\nkernel_stack 212992\npagetables 450560\nsec_pagetables 0\npercpu 2496\nsock 0\nvmalloc 8192\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 1234567\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon {}\nactive_anon 8192\ninactive_file {}\nactive_file 100000\nunevictable 0\nslab_reclaimable 600000\nslab_unreclaimable 300000\nslab 900000\nworkingset_refault_anon 0\nworkingset_refault_file 12\nworkingset_activate_anon 0\nworkingset_activate_file 3\nworkingset_restore_anon 0\nworkingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 0\npgsteal 0\npgscan_kswapd 0\npgscan_direct 0\npgsteal_kswapd 0\npgsteal_direct 0\npgfault {}\npgmajfault {}\npgrefill 0\npgactivate 10\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n",
                        c.mem_anon,
                        c.mem_file,
                        c.mem_anon,
                        c.mem_inactive_file,
                        c.pgfault,
                        c.pgmajfault
                    ),
                );
                w(d, "cgroup.procs", &procs);
            }
            Layout::V1Cgroupfs => {
                let dirs = self.cg_dirs(rel);
                let (cpu, mem) = (&dirs[0], &dirs[1]);
                w(cpu, "cpuacct.usage", &format!("{}\n", c.cpu_usage_ns));
                w(
                    cpu,
                    "cpuacct.stat",
                    &format!(
                        "user {}\nsystem {}\n",
                        c.cpu_user_ns / 10_000_000,
                        c.cpu_system_ns / 10_000_000
                    ),
                );
                w(
                    cpu,
                    "cpu.stat",
                    "nr_periods 120\nnr_throttled 3\nthrottled_time 4500000\n",
                );
                w(
                    cpu,
                    "cpu.cfs_quota_us",
                    &format!("{}\n", if c.limit.is_some() { 50000 } else { -1 }),
                );
                w(cpu, "cpu.cfs_period_us", "100000\n");
                w(cpu, "cgroup.procs", &procs);
                w(mem, "memory.usage_in_bytes", &format!("{}\n", c.mem_usage));
                w(
                    mem,
                    "memory.max_usage_in_bytes",
                    &format!("{}\n", c.mem_usage + 4096),
                );
                w(mem, "memory.failcnt", "2\n");
                w(
                    mem,
                    "memory.limit_in_bytes",
                    &format!("{}\n", c.limit.unwrap_or(9223372036854771712)),
                );
                w(
                    mem,
                    "memory.stat",
                    &format!(
                        "cache {f}\nrss {a}\nrss_huge 0\nshmem 0\nmapped_file 1234567\ndirty 0\nwriteback 0\nswap 0\npgpgin 100\npgpgout 50\npgfault {pf}\npgmajfault {pmf}\ninactive_anon 0\nactive_anon {a}\ninactive_file {i}\nactive_file 100000\nunevictable 0\nhierarchical_memory_limit {l}\ntotal_cache {f}\ntotal_rss {a}\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 1234567\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 100\ntotal_pgpgout 50\ntotal_pgfault {pf}\ntotal_pgmajfault {pmf}\ntotal_inactive_anon 0\ntotal_active_anon {a}\ntotal_inactive_file {i}\ntotal_active_file 100000\ntotal_unevictable 0\n",
                        f = c.mem_file,
                        a = c.mem_anon,
                        pf = c.pgfault,
                        pmf = c.pgmajfault,
                        i = c.mem_inactive_file,
                        l = c.limit.unwrap_or(9223372036854771712)
                    ),
                );
            }
        }
    }
}

fn w(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

/// Finds the single event of a type matching a predicate.
/// The finished events as whole documents (directive included), after checking that no event
/// sets a key twice and that each one's JSON text — what the agent ships — is exactly what
/// serde writes for that document.
pub fn docs(
    evs: Vec<kinsight_agent::perf::PerfEvent>,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    evs.iter()
        .map(|e| {
            let doc = e.document();
            assert_eq!(
                doc.len(),
                e.fields.len() + usize::from(e.directive.is_some()),
                "a key is set twice in {doc:?}"
            );
            assert_eq!(e.to_json(), serde_json::to_string(&doc).unwrap());
            doc
        })
        .collect()
}

pub fn find<'a>(
    events: &'a [serde_json::Map<String, serde_json::Value>],
    ty: &str,
    pred: impl Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> &'a serde_json::Map<String, serde_json::Value> {
    let matching: Vec<_> = events
        .iter()
        .filter(|e| e["Type"] == ty && pred(e))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {ty} event, found {}: {matching:#?}",
        matching.len()
    );
    matching[0]
}

pub fn num(e: &serde_json::Map<String, serde_json::Value>, k: &str) -> f64 {
    e.get(k).and_then(|v| v.as_f64()).unwrap_or_else(|| {
        panic!(
            "{k} missing from {}",
            serde_json::to_string_pretty(e).unwrap()
        )
    })
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Reads of a cgroup's cumulative CPU counter taken right before and right after a
/// collection, so a test can bound what the agent measured between two collections from the
/// kernel's own counter rather than from a fixed expectation that a busy machine may not meet.
pub struct Bracket {
    before: (std::time::Instant, u64),
    after: (std::time::Instant, u64),
}

pub fn cpu_usage_ns(cpuacct_usage: &Path) -> u64 {
    fs::read_to_string(cpuacct_usage)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Bracket {
    pub async fn around<F: std::future::Future<Output = T>, T>(
        counter: &Path,
        f: F,
    ) -> (T, Bracket) {
        let before = (std::time::Instant::now(), cpu_usage_ns(counter));
        let out = f.await;
        let after = (std::time::Instant::now(), cpu_usage_ns(counter));
        (out, Bracket { before, after })
    }

    /// The range of millicores any measurement between a read inside `first` and a read inside
    /// `second` can give.
    pub fn millicores_range(first: &Bracket, second: &Bracket) -> (f64, f64) {
        let ns =
            |a: std::time::Instant, b: std::time::Instant| b.duration_since(a).as_nanos() as f64;
        let lo =
            (second.before.1 - first.after.1) as f64 / ns(first.before.0, second.after.0) * 1000.0;
        let hi =
            (second.after.1 - first.before.1) as f64 / ns(first.after.0, second.before.0) * 1000.0;
        (lo, hi)
    }
}
