#!/usr/bin/env bash
# Prepares real podman containers on a Debian 12 root machine without systemd, on a cgroup v1
# hybrid host, with no image registry (the recipe of the project's testbed notes):
#  - packages podman, runc, busybox-static (~25 s the first time);
#  - /etc/containers/containers.conf for this host: runc (crun refuses hybrid hosts whose
#    cgroup2 still owns a controller), cgroupfs manager and file events (no systemd), default
#    ulimits at most the hard limits (no CAP_SYS_RESOURCE here; podman lowers nproc to 32768);
#  - a local image localhost/busybox:test made from the static busybox.
# Idempotent: quick when everything is present. Prints nothing on success unless -v.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || [ ! -x /bin/busybox ]; then
  apt-get update -qq
  apt-get install -y -qq podman runc busybox-static >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ] || ! grep -q kinsight /etc/containers/containers.conf; then
  NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
  [ "$NOFILE" = unlimited ] && NOFILE=1048576; [ "$NOFILE" -gt 1048576 ] && NOFILE=1048576
  { [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; } && NPROC=32768
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<CONF
# written by kinsight scripts/podman-setup.sh
[containers]
default_ulimits = ["nofile=${NOFILE}:${NOFILE}", "nproc=${NPROC}:${NPROC}"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
if ! podman image exists localhost/busybox:test 2>/dev/null; then
  work=$(mktemp -d)
  mkdir -p "$work"/rootfs/{bin,etc,tmp,proc,sys,dev,root}
  cp /bin/busybox "$work/rootfs/bin/busybox"
  for a in $("$work/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"; echo 'root:x:0:' > "$work/rootfs/etc/group"
  chmod 1777 "$work/rootfs/tmp"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  podman import -q --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$work/rootfs.tar" localhost/busybox:test >/dev/null
  rm -rf "$work"
fi
[ "${1:-}" = -v ] && podman --version
exit 0
