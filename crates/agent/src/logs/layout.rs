//! Where logs live on a node and what each path means (reference §3.1, issue [2/8]):
//!
//! * containers: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, rotated by
//!   the kubelet to `<restart>.log.<stamp>` and later `<restart>.log.<stamp>.gz`; the
//!   `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` symlinks name the container id;
//! * host: `/var/log/{dmesg,messages,secure}` and the Debian/Ubuntu names `syslog`, `auth.log`,
//!   `kern.log`, rotated by logrotate to `<name>.1`, `<name>.2.gz` or `<name>-<date>`.
//!
//! * container hosts without Kubernetes (issue [8/8]): podman's k8s-file logs
//!   `/var/lib/containers/storage/overlay-containers/<id>/userdata/ctr.log` (CRI format) and
//!   docker's json-file logs `/var/lib/docker/containers/<id>/<id>-json.log` (rotated to
//!   `…-json.log.1`); the container id names the container, the pod feed says which pod.
//!
//! All under the config's `host_root`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kinsight_tailer::{FileRole, Layout, Root};

/// Host log files and the stream each feeds. Debian names map to the names CloudWatch users
/// know (`.host.messages`, `.host.secure`, `.host.dmesg`), so their queries keep working.
pub const HOST_FILES: &[(&str, &str)] = &[
    ("dmesg", "dmesg"),
    ("messages", "messages"),
    ("secure", "secure"),
    ("syslog", "messages"),
    ("auth.log", "secure"),
    ("kern.log", "dmesg"),
];

/// What a followed file is, from its (family) path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    Container(ContainerRef),
    /// A podman or docker container's log, by container id.
    Runtime {
        id: String,
    },
    /// A host file; `stream` is one of dmesg, messages, secure.
    Host {
        file: String,
        stream: &'static str,
    },
}

/// A container log file's identity as its path tells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// The `N` of `N.log`: the container's restart count when the file was created.
    pub restart: u32,
}

/// The node's log directories under `host_root`.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    pub pods_dir: PathBuf,
    pub containers_dir: PathBuf,
    pub log_dir: PathBuf,
    /// podman's per-container storage (`<id>/userdata/ctr.log`).
    pub podman_dir: PathBuf,
    /// docker's per-container directories (`<id>/<id>-json.log`).
    pub docker_dir: PathBuf,
    pub host_root: PathBuf,
}

impl NodeLayout {
    pub fn new(host_root: &Path) -> NodeLayout {
        let log_dir = host_root.join("var/log");
        NodeLayout {
            pods_dir: log_dir.join("pods"),
            containers_dir: log_dir.join("containers"),
            log_dir,
            podman_dir: host_root.join("var/lib/containers/storage/overlay-containers"),
            docker_dir: host_root.join("var/lib/docker/containers"),
            host_root: host_root.to_path_buf(),
        }
    }

    /// Directories the tailer walks: pods three levels deep, /var/log itself one level.
    pub fn roots(&self, host_files: bool) -> Vec<Root> {
        let mut r = vec![Root {
            dir: self.pods_dir.clone(),
            max_depth: 3,
        }];
        if host_files {
            r.push(Root {
                dir: self.log_dir.clone(),
                max_depth: 1,
            });
        }
        // Container runtimes without a kubelet: only where they are installed.
        if self.podman_dir.is_dir() {
            r.push(Root {
                dir: self.podman_dir.clone(),
                max_depth: 3,
            });
        }
        if self.docker_dir.is_dir() {
            r.push(Root {
                dir: self.docker_dir.clone(),
                max_depth: 2,
            });
        }
        r
    }

    /// Where followed files may really be, symlinks resolved (issue 15, item 7): the node's
    /// log directory and the runtimes' log directories. A link that leads elsewhere —
    /// `/var/log/syslog` → `/etc/shadow`, planted by whoever can write to `/var/log` — is
    /// refused; the kubelet's links stay inside (`/var/log/containers` → `/var/log/pods`,
    /// cri-dockerd's `/var/log/pods/…/0.log` → `/var/lib/docker/containers/…`).
    pub fn allowed_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.log_dir.clone(),
            self.podman_dir.clone(),
            self.docker_dir.clone(),
        ]
    }

    /// The container id of a podman or docker log path (a live name).
    fn runtime_id(&self, path: &Path) -> Option<String> {
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Ok(rel) = path.strip_prefix(&self.podman_dir) {
            let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
            if let [id, "userdata", "ctr.log"] = parts[..] {
                return hex64(id).then(|| id.to_string());
            }
        } else if let Ok(rel) = path.strip_prefix(&self.docker_dir) {
            let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
            if let [id, file] = parts[..] {
                return (hex64(id) && file == format!("{id}-json.log")).then(|| id.to_string());
            }
        }
        None
    }

    /// Parses a family (live) path.
    pub fn source(&self, path: &Path) -> Option<LogSource> {
        if let Ok(rel) = path.strip_prefix(&self.pods_dir) {
            let mut parts = rel.iter();
            let pod_dir = parts.next()?.to_str()?;
            let container = parts.next()?.to_str()?;
            let file = parts.next()?.to_str()?;
            if parts.next().is_some() {
                return None;
            }
            let mut it = pod_dir.split('_');
            let (namespace, pod, uid) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || namespace.is_empty() || pod.is_empty() {
                return None;
            }
            let restart = file.strip_suffix(".log")?.parse().unwrap_or(0);
            return Some(LogSource::Container(ContainerRef {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                pod_uid: uid.to_string(),
                container: container.to_string(),
                restart,
            }));
        }
        if let Some(id) = self.runtime_id(path) {
            return Some(LogSource::Runtime { id });
        }
        if path.parent() == Some(self.log_dir.as_path()) {
            let name = path.file_name()?.to_str()?;
            let (_, stream) = HOST_FILES.iter().find(|(f, _)| *f == name)?;
            return Some(LogSource::Host {
                file: name.to_string(),
                stream,
            });
        }
        None
    }

    /// Container ids named by the `/var/log/containers` symlinks: target file → 64-hex id.
    pub fn container_ids(&self) -> HashMap<PathBuf, String> {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.containers_dir) else {
            return out;
        };
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".log") else {
                continue;
            };
            let Some((_, id)) = stem.rsplit_once('-') else {
                continue;
            };
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let target = if target.is_absolute() {
                // Links are absolute on the host; re-root them under host_root.
                match target.strip_prefix("/var/log/pods") {
                    Ok(rel) => self.pods_dir.join(rel),
                    Err(_) => target,
                }
            } else {
                self.containers_dir.join(target)
            };
            out.insert(target, id.to_string());
        }
        out
    }
}

impl Layout for NodeLayout {
    fn classify(&self, path: &Path) -> Option<FileRole> {
        let name = path.file_name()?.to_str()?;
        // The kubelet compresses a rotation into `<name>.gz.tmp` and then renames it; the
        // finished `.gz` is what counts.
        if name.ends_with(".tmp") {
            return None;
        }
        if path.starts_with(&self.pods_dir) {
            if name.ends_with(".log") {
                return Some(FileRole::Live);
            }
            let i = name.find(".log.")?;
            return Some(FileRole::Rotated {
                family: path.with_file_name(&name[..i + 4]),
            });
        }
        if path.starts_with(&self.podman_dir) || path.starts_with(&self.docker_dir) {
            if self.runtime_id(path).is_some() {
                return Some(FileRole::Live);
            }
            // docker's json-file rotation: `<id>-json.log.1`, `.2`, ...
            let i = name.find("-json.log.")?;
            let family = path.with_file_name(&name[..i + 9]);
            return self
                .runtime_id(&family)
                .map(|_| FileRole::Rotated { family });
        }
        if path.parent() != Some(self.log_dir.as_path()) {
            return None;
        }
        for (base, _) in HOST_FILES {
            if name == *base {
                return Some(FileRole::Live);
            }
            if let Some(rest) = name.strip_prefix(base)
                && (rest.starts_with('.') || rest.starts_with('-'))
                && rest.len() > 1
            {
                return Some(FileRole::Rotated {
                    family: path.with_file_name(base),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_podman_and_docker_logs() {
        let l = NodeLayout::new(Path::new("/rootfs"));
        let id = "a".repeat(64);
        let podman = PathBuf::from(format!(
            "/rootfs/var/lib/containers/storage/overlay-containers/{id}/userdata/ctr.log"
        ));
        assert_eq!(l.classify(&podman), Some(FileRole::Live));
        assert_eq!(
            l.source(&podman),
            Some(LogSource::Runtime { id: id.clone() })
        );
        assert_eq!(l.classify(&podman.with_file_name("config.json")), None);
        let docker = PathBuf::from(format!(
            "/rootfs/var/lib/docker/containers/{id}/{id}-json.log"
        ));
        assert_eq!(l.classify(&docker), Some(FileRole::Live));
        assert_eq!(
            l.classify(&docker.with_file_name(format!("{id}-json.log.1"))),
            Some(FileRole::Rotated {
                family: docker.clone()
            })
        );
        assert_eq!(l.source(&docker), Some(LogSource::Runtime { id }));
        assert_eq!(
            l.classify(Path::new("/rootfs/var/lib/docker/containers/x/hostname")),
            None
        );
    }

    #[test]
    fn classifies_kubelet_and_logrotate_names() {
        let l = NodeLayout::new(Path::new("/rootfs"));
        let live = Path::new("/rootfs/var/log/pods/prod_api-7d9f-abcde_0b4f/api/0.log");
        assert_eq!(l.classify(live), Some(FileRole::Live));
        assert_eq!(
            l.classify(Path::new(
                "/rootfs/var/log/pods/prod_api-7d9f-abcde_0b4f/api/0.log.20240501-101500.gz"
            )),
            Some(FileRole::Rotated {
                family: live.to_path_buf()
            })
        );
        assert_eq!(
            l.classify(Path::new("/rootfs/var/log/auth.log.2.gz")),
            Some(FileRole::Rotated {
                family: "/rootfs/var/log/auth.log".into()
            })
        );
        assert_eq!(
            l.classify(Path::new("/rootfs/var/log/messages-20240501")),
            Some(FileRole::Rotated {
                family: "/rootfs/var/log/messages".into()
            })
        );
        assert_eq!(
            l.classify(Path::new("/rootfs/var/log/syslog")),
            Some(FileRole::Live)
        );
        assert_eq!(l.classify(Path::new("/rootfs/var/log/dpkg.log")), None);
        assert_eq!(
            l.classify(Path::new(
                "/rootfs/var/log/pods/prod_api-7d9f8b6c5d-x2k4q_0b4f/api/0.log.20240501-101500.gz.tmp"
            )),
            None
        );
        assert_eq!(
            l.classify(Path::new("/rootfs/var/log/apt/history.log")),
            None
        );
        assert_eq!(
            l.source(live),
            Some(LogSource::Container(ContainerRef {
                namespace: "prod".into(),
                pod: "api-7d9f-abcde".into(),
                pod_uid: "0b4f".into(),
                container: "api".into(),
                restart: 0
            }))
        );
        assert_eq!(
            l.source(Path::new("/rootfs/var/log/kern.log")),
            Some(LogSource::Host {
                file: "kern.log".into(),
                stream: "dmesg"
            })
        );
        assert_eq!(
            l.source(Path::new("/rootfs/var/log/pods/bad/c/0.log")),
            None
        );
    }

    #[test]
    fn container_ids_come_from_the_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let l = NodeLayout::new(d.path());
        std::fs::create_dir_all(l.pods_dir.join("ns_p_u/c")).unwrap();
        std::fs::create_dir_all(&l.containers_dir).unwrap();
        let id = "a".repeat(64);
        std::os::unix::fs::symlink(
            "/var/log/pods/ns_p_u/c/0.log",
            l.containers_dir.join(format!("p_ns_c-{id}.log")),
        )
        .unwrap();
        let ids = l.container_ids();
        assert_eq!(ids.get(&l.pods_dir.join("ns_p_u/c/0.log")), Some(&id));
    }
}
