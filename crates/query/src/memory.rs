//! How much memory this process may use, so that query memory is a share of it (issue 15 item
//! 4): a 2 GiB pod must not be given two 1 GiB query pools on top of everything else.
//!
//! The limit is the smallest of the memory limits of the cgroups on the process's path (cgroup
//! v2 `memory.max`, v1 `memory.limit_in_bytes`; a container sees its own cgroup as the root)
//! and the machine's `MemTotal`.

use std::path::Path;

/// v1 reports "no limit" as a number near `i64::MAX` rounded down to a page.
const UNLIMITED_V1: u64 = 1 << 60;

/// The memory this process may use, in bytes (`None` when nothing can be read).
pub fn available_bytes() -> Option<u64> {
    limit_under(Path::new("/"))
}

/// [`available_bytes`] with `/proc` and `/sys/fs/cgroup` under `root` (tests).
pub fn limit_under(root: &Path) -> Option<u64> {
    let total = mem_total(&root.join("proc/meminfo"));
    let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup"))
        .ok()
        .and_then(|text| cgroup_limit(&root.join("sys/fs/cgroup"), &text));
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

fn mem_total(meminfo: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The smallest memory limit along the process's cgroup path, from `/proc/self/cgroup`'s text.
fn cgroup_limit(mount: &Path, proc_cgroup: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut keep = |v: Option<u64>| {
        if let Some(v) = v {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // v2 (unified): every level from the process's cgroup up to the root.
            keep(walk_up(&mount.join(rel), mount, "memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            let base = mount.join("memory");
            let found = walk_up(&base.join(rel), &base, "memory.limit_in_bytes");
            // In a container the hierarchy is often mounted at the container's own cgroup, so
            // the host's path does not exist under it: the mount's root is the cgroup.
            keep(found.or_else(|| read_limit(&base.join("memory.limit_in_bytes"))));
        }
    }
    best
}

/// The smallest limit in `file` from `dir` up to `top` (inclusive).
fn walk_up(dir: &Path, top: &Path, file: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut d = Some(dir);
    while let Some(here) = d {
        if !here.starts_with(top) {
            break;
        }
        if let Some(v) = read_limit(&here.join(file)) {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
        if here == top {
            break;
        }
        d = here.parent();
    }
    best
}

/// A limit file: a number of bytes, or `max` / a v1 "unlimited" value (`None`).
fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: u64 = text.trim().parse().ok()?;
    (v < UNLIMITED_V1).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn the_smallest_limit_of_the_path_and_the_machine() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree: 1 kB\n",
        );
        // v2: a pod limit of 2 GiB above a container without one.
        write(r, "proc/self/cgroup", "0::/kubepods/pod1/c1\n");
        write(r, "sys/fs/cgroup/memory.max", "max\n");
        write(r, "sys/fs/cgroup/kubepods/memory.max", "max\n");
        write(r, "sys/fs/cgroup/kubepods/pod1/memory.max", "2147483648\n");
        write(r, "sys/fs/cgroup/kubepods/pod1/c1/memory.max", "max\n");
        assert_eq!(limit_under(r), Some(2 << 30));
        // No cgroup limit: the machine's memory.
        write(r, "sys/fs/cgroup/kubepods/pod1/memory.max", "max\n");
        assert_eq!(limit_under(r), Some(16_384_000 * 1024));
    }

    #[test]
    fn cgroup_v1_inside_a_container_reads_the_mount_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "proc/meminfo", "MemTotal:       16384000 kB\n");
        write(
            r,
            "proc/self/cgroup",
            "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
        );
        // The host's path is not under the container's mount; its root is the container.
        write(
            r,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "536870912\n",
        );
        assert_eq!(limit_under(r), Some(512 << 20));
        write(
            r,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(limit_under(r), Some(16_384_000 * 1024));
    }
}
