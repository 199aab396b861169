# shellcheck shell=bash
# Sourced by images.sh and run.sh: a podman of the demo's own, so that nothing it builds or runs
# touches the host's podman storage, networks or settings, and nothing of the host's disturbs it.
#
#   BOOKINFO_CACHE   where the rootfs tarballs, pip downloads, image storage and network
#                    definitions stay between runs (default /tmp/adi-bookinfo); delete it for a
#                    clean slate
#
# Exports CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, which every podman (and podman-compose)
# started from the sourcing script reads. The runtime is runc, not crun: crun refuses hosts that
# mix cgroup v1 and v2, runc runs on both. Run state (locks, container state, events) lives in
# /run, cleared at boot as podman expects.

BOOKINFO_CACHE=${BOOKINFO_CACHE:-/tmp/adi-bookinfo}
mkdir -p "$BOOKINFO_CACHE"
BOOKINFO_CACHE=$(cd "$BOOKINFO_CACHE" && pwd)
BOOKINFO_RUNROOT=/run/adi-bookinfo-$(printf %s "$BOOKINFO_CACHE" | sha256sum | cut -c1-8)
mkdir -p "$BOOKINFO_CACHE/conf" "$BOOKINFO_CACHE/networks" "$BOOKINFO_RUNROOT"

cat >"$BOOKINFO_CACHE/conf/containers.conf.new" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$BOOKINFO_CACHE/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$BOOKINFO_RUNROOT/events.log"
tmp_dir = "$BOOKINFO_RUNROOT/libpod"
EOF
cat >"$BOOKINFO_CACHE/conf/storage.conf.new" <<EOF
[storage]
driver = "overlay"
graphroot = "$BOOKINFO_CACHE/storage"
runroot = "$BOOKINFO_RUNROOT/storage"
EOF
mv -f "$BOOKINFO_CACHE/conf/containers.conf.new" "$BOOKINFO_CACHE/conf/containers.conf"
mv -f "$BOOKINFO_CACHE/conf/storage.conf.new" "$BOOKINFO_CACHE/conf/storage.conf"
export CONTAINERS_CONF=$BOOKINFO_CACHE/conf/containers.conf
export CONTAINERS_STORAGE_CONF=$BOOKINFO_CACHE/conf/storage.conf
