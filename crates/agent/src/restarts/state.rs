//! Which ended container instances were reported, kept in `<state_dir>/restarts.json` so that
//! an agent restart reports none of them again (format: docs/formats/restarts.md).
//!
//! The instances of one container end in order (`0.log`, `1.log`, …), so the highest reported
//! instance per container says it all. Containers of pods no longer on the node are dropped.

use kinsight_model::durable::{DurableError, create_dir_all, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "restarts.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    written_at_ms: i64,
    containers: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    pod_uid: String,
    container: String,
    /// The highest reported instance: the `N` of its `N.log`.
    instance: u32,
}

/// The reported instances, in memory and on disk.
#[derive(Debug)]
pub struct Reported {
    path: PathBuf,
    /// (pod uid, container name) → highest reported instance.
    by_container: HashMap<(String, String), u32>,
    /// Changed since the last write.
    dirty: bool,
}

impl Reported {
    /// Loads `<state_dir>/restarts.json`. A missing file is an empty set; one that cannot be
    /// read or parsed, or has an unknown version, is moved aside (`.corrupt-<ms>`) with one
    /// error line and the set starts empty: instances may then be reported twice, none is lost.
    pub fn open(state_dir: &Path) -> Reported {
        let path = state_dir.join(FILE_NAME);
        let mut r = Reported {
            path,
            by_container: HashMap::new(),
            dirty: false,
        };
        let text = match std::fs::read(&r.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return r,
            Err(e) => {
                tracing::error!(path = %r.path.display(), error = %e, "cannot read the reported restarts; restarts may be reported again");
                return r;
            }
        };
        match serde_json::from_slice::<StateFile>(&text) {
            Ok(f) if f.version == VERSION => {
                for e in f.containers {
                    r.insert(&e.pod_uid, &e.container, e.instance);
                }
                r.dirty = false;
            }
            Ok(f) => r.move_aside(&format!("unknown version {}", f.version)),
            Err(e) => r.move_aside(&e.to_string()),
        }
        r
    }

    fn move_aside(&self, why: &str) {
        let stamp = crate::run::now_ms();
        let aside = self.path.with_extension(format!("json.corrupt-{stamp}"));
        let moved = std::fs::rename(&self.path, &aside);
        tracing::error!(path = %self.path.display(), aside = %aside.display(), moved = moved.is_ok(), "the reported restarts cannot be read ({why}); moved aside, restarts may be reported again");
    }

    /// Whether instance `instance` of the container (or a later one) was reported.
    pub fn contains(&self, pod_uid: &str, container: &str, instance: u32) -> bool {
        self.by_container
            .get(&(pod_uid.to_string(), container.to_string()))
            .is_some_and(|i| *i >= instance)
    }

    pub fn insert(&mut self, pod_uid: &str, container: &str, instance: u32) {
        let e = self
            .by_container
            .entry((pod_uid.to_string(), container.to_string()))
            .or_insert(instance);
        if *e < instance {
            *e = instance;
        }
        self.dirty = true;
    }

    /// Forgets the containers of pods `keep` says are gone.
    pub fn retain_pods(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.by_container.len();
        self.by_container.retain(|(uid, _), _| keep(uid));
        self.dirty |= self.by_container.len() != before;
    }

    /// Writes the set when it changed (durably: temporary file, fsync, rename, fsync of the
    /// directory).
    pub fn persist(&mut self) -> Result<(), DurableError> {
        if !self.dirty {
            return Ok(());
        }
        let mut containers: Vec<Entry> = self
            .by_container
            .iter()
            .map(|((uid, c), i)| Entry {
                pod_uid: uid.clone(),
                container: c.clone(),
                instance: *i,
            })
            .collect();
        containers.sort();
        let file = StateFile {
            version: VERSION,
            written_at_ms: crate::run::now_ms(),
            containers,
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("plain data serialises");
        if let Some(dir) = self.path.parent() {
            create_dir_all(dir)?;
        }
        write_atomic(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_forgets_gone_pods() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Reported::open(d.path());
        assert!(!r.contains("u1", "app", 0));
        r.insert("u1", "app", 2);
        r.insert("u1", "app", 1);
        r.insert("u2", "web", 0);
        r.persist().unwrap();
        let mut r = Reported::open(d.path());
        assert!(r.contains("u1", "app", 2) && r.contains("u1", "app", 0));
        assert!(!r.contains("u1", "app", 3));
        assert!(r.contains("u2", "web", 0));
        r.retain_pods(|uid| uid == "u1");
        r.persist().unwrap();
        let text = std::fs::read_to_string(d.path().join(FILE_NAME)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["containers"],
            serde_json::json!([{"pod_uid": "u1", "container": "app", "instance": 2}])
        );
    }

    #[test]
    fn a_damaged_file_is_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), "{\"version\": 1, \"contai").unwrap();
        let r = Reported::open(d.path());
        assert!(!r.contains("u1", "app", 0));
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("restarts.json.corrupt-")),
            "{names:?}"
        );
        std::fs::write(
            d.path().join(FILE_NAME),
            r#"{"version": 9, "written_at_ms": 0, "containers": []}"#,
        )
        .unwrap();
        Reported::open(d.path());
        assert!(!d.path().join(FILE_NAME).exists());
    }
}
