#!/usr/bin/env bash
# Private containerd (CRI v1) for podtrail's integration tests.
#
#   scripts/containerd-test-env.sh up      # install, build images, start, import; prints socket path
#   scripts/containerd-test-env.sh down    # stop our containerd, shims, containers; clean state + cgroups
#   scripts/containerd-test-env.sh status  # is it running? (exit 0 = running and CRI plugin ok)
#   scripts/containerd-test-env.sh stop-daemon   # stop only containerd (shims and containers
#   scripts/containerd-test-env.sh start-daemon  #   keep running), then start it again
#
# Everything is private: own config, root, state, sockets and runc root, so it never
# talks to (or conflicts with) a system containerd. Pods must use host networking
# (no CNI is configured) and should put their cgroups under /podtrail-test/...
# (PodSandboxConfig.linux.cgroup_parent) so `down` can clean the pod-level cgroups
# that containerd leaves behind.
#
# Images (built once, no registry or docker, cached in $PODTRAIL_CACHE/images):
#   podtrail.local/pause:1    static C pause (sandbox image)
#   podtrail.local/busybox:1  Debian busybox-static, /bin/<applet> symlinks (use absolute paths)
#   podtrail.local/distroless:1  one static binary, /busybox, and no shell on any path
#
# Environment overrides:
#   PODTRAIL_CACHE      (default $HOME/.cache/podtrail)
#   PODTRAIL_CTR_BASE   state dir: config, socket, pid, log   (default /run/podtrail-test)
#   PODTRAIL_CTR_ROOT   containerd root (content, snapshots)  (default /var/lib/podtrail-test)
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

CACHE="${PODTRAIL_CACHE:-$HOME/.cache/podtrail}"
IMG_DIR="$CACHE/images"
BASE="${PODTRAIL_CTR_BASE:-/run/podtrail-test}"
CROOT="${PODTRAIL_CTR_ROOT:-/var/lib/podtrail-test}"
SOCK="$BASE/containerd.sock"
PIDFILE="$BASE/containerd.pid"
LOG="$BASE/containerd.log"
CONFIG="$BASE/config.toml"
STATE="$BASE/state"
RUNC_ROOT="$BASE/runc"
CGROUP_PREFIX="podtrail-test"
NS="k8s.io"

# Bump when the image recipes change, to invalidate the cache.
IMAGE_RECIPE=1
PAUSE_REF="podtrail.local/pause:1"
BUSYBOX_REF="podtrail.local/busybox:1"
PAUSE_TAR="$IMG_DIR/pause-1-r$IMAGE_RECIPE.oci.tar"
BUSYBOX_TAR="$IMG_DIR/busybox-1-r$IMAGE_RECIPE.oci.tar"
DISTROLESS_REF="podtrail.local/distroless:1"
DISTROLESS_TAR="$IMG_DIR/distroless-1-r$IMAGE_RECIPE.oci.tar"

# grep -q exits at the first match; under pipefail the writer's SIGPIPE then fails the
# whole pipeline. `has` reads all of its input.
has() { grep "$@" >/dev/null; }
log() { printf '[containerd-test-env] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# True if PID exists and is not a zombie (our daemons are reparented to PID 1, which may reap late).
alive() {
  local st
  st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# ---------------------------------------------------------------- install
ensure_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file_is_static /bin/busybox || missing+=(busybox-static)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Do not let the package start a system containerd (if an init system is present).
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

file_is_static() {
  # A static ELF has no PT_INTERP; `ldd` says "not a dynamic executable".
  ! ldd "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- images
build_images() {
  mkdir -p "$IMG_DIR"
  if [ ! -s "$PAUSE_TAR" ]; then
    log "building $PAUSE_REF"
    local work; work="$(mktemp -d)"
    cat >"$work/pause.c" <<'EOF'
/* Minimal sandbox "pause": sleep forever, reap zombies, exit on INT/TERM. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int s) { (void)s; _exit(0); }
static void on_chld(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGINT, &sa, 0);
  sigaction(SIGTERM, &sa, 0);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, 0);
  for (;;) pause();
}
EOF
    mkdir -p "$work/rootfs"
    gcc -static -Os -s -o "$work/rootfs/pause" "$work/pause.c"
    mk_oci_tar "$work/rootfs" "$PAUSE_REF" '["/pause"]' '[]' "$PAUSE_TAR.tmp"
    mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"
    rm -rf "$work"
  fi
  if [ ! -s "$BUSYBOX_TAR" ]; then
    log "building $BUSYBOX_REF"
    local work; work="$(mktemp -d)"
    local r="$work/rootfs"
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do
      [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    mk_oci_tar "$r" "$BUSYBOX_REF" '[]' '["/bin/sh"]' "$BUSYBOX_TAR.tmp"
    mv "$BUSYBOX_TAR.tmp" "$BUSYBOX_TAR"
    rm -rf "$work"
  fi
  if [ ! -s "$DISTROLESS_TAR" ]; then
    # Like a distroless image: a single static program, no shell anywhere on a path.
    log "building $DISTROLESS_REF"
    local work; work="$(mktemp -d)"
    local r="$work/rootfs"
    mkdir -p "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
    cp /bin/busybox "$r/busybox"
    printf 'root:x:0:0:root:/:/nonexistent\n' >"$r/etc/passwd"
    mk_oci_tar "$r" "$DISTROLESS_REF" '["/busybox"]' '["sleep", "600"]' "$DISTROLESS_TAR.tmp"
    mv "$DISTROLESS_TAR.tmp" "$DISTROLESS_TAR"
    rm -rf "$work"
  fi
}

# mk_oci_tar ROOTFS_DIR REF ENTRYPOINT_JSON CMD_JSON OUT_TAR
# Writes a single-layer OCI image layout archive (as accepted by `ctr images import`).
mk_oci_tar() {
  python3 - "$@" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile

rootfs, ref, entrypoint, cmd, out = sys.argv[1:6]

def add_tree(tf):
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            arc = os.path.relpath(full, rootfs)
            ti = tf.gettarinfo(full, arc)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mtime = 0
            if ti.isfile():
                with open(full, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
    add_tree(tf)
layer_tar = raw.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
gz = io.BytesIO()
with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
    g.write(layer_tar)
layer = gz.getvalue()

def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data

config = {
    "architecture": "amd64",
    "os": "linux",
    "created": "1970-01-01T00:00:00Z",
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/",
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "podtrail scripts/containerd-test-env.sh"}],
}
ep, cm = json.loads(entrypoint), json.loads(cmd)
if ep:
    config["config"]["Entrypoint"] = ep
if cm:
    config["config"]["Cmd"] = cm
config_d, config_b = blob(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
layer_d, layer_b = blob(layer)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": len(config_b)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": len(layer_b)}],
}
manifest_d, manifest_b = blob(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
tag = ref.rsplit(":", 1)[1]
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_d,
        "size": len(manifest_b),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
    }],
}

def add_bytes(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))

with tarfile.open(out, mode="w", format=tarfile.GNU_FORMAT) as tf:
    for d in ("blobs", "blobs/sha256"):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
    for d, b in ((config_d, config_b), (layer_d, layer_b), (manifest_d, manifest_b)):
        add_bytes(tf, "blobs/sha256/" + d.split(":", 1)[1], b)
    add_bytes(tf, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    add_bytes(tf, "index.json", json.dumps(index, sort_keys=True).encode())
EOF
}

# ---------------------------------------------------------------- containerd
write_config() {
  mkdir -p "$BASE" "$STATE" "$CROOT" "$RUNC_ROOT" "$BASE/cni/net.d" "$BASE/cni/bin" "$CROOT/opt"
  cat >"$CONFIG" <<EOF
# Generated by podtrail scripts/containerd-test-env.sh -- private test containerd.
version = 2
root = "$CROOT"
state = "$STATE"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$SOCK"
  uid = 0
  gid = 0

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CROOT/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_REF"
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    disable_cgroup = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$RUNC_ROOT"
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$BASE/cni/bin"
      conf_dir = "$BASE/cni/net.d"
EOF
}

our_pid() {
  # Prints the PID of our containerd if the pidfile points at a live containerd using our config.
  [ -s "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | has -- "--config $CONFIG" || return 1
  echo "$pid"
}

responsive() { ctr --address "$SOCK" version >/dev/null 2>&1; }

cri_ok() {
  ctr --address "$SOCK" plugins ls 2>/dev/null | awk '$2 == "cri" && $1 == "io.containerd.grpc.v1" {print $NF}' | has -x ok
}

start_containerd() {
  if our_pid >/dev/null && responsive; then
    log "containerd already running (pid $(our_pid))"
    return 0
  fi
  if our_pid >/dev/null; then
    log "containerd pid $(our_pid) not responsive; restarting"
    stop_containerd
  fi
  if [ -S "$SOCK" ] && responsive; then
    die "$SOCK answers but is not the containerd in $PIDFILE; refusing to touch it"
  fi
  rm -f "$SOCK" "$SOCK.ttrpc"
  write_config
  log "starting containerd (log $LOG)"
  # setsid: its own session, so it survives this shell and never gets our terminal's signals.
  setsid containerd --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 150); do
    if responsive; then break; fi
    if ! alive "$(cat "$PIDFILE")"; then
      tail -n 30 "$LOG" >&2 || true
      die "containerd exited during startup"
    fi
    sleep 0.2
  done
  responsive || { tail -n 30 "$LOG" >&2; die "containerd did not answer on $SOCK within 30s"; }
  for i in $(seq 1 50); do cri_ok && break; sleep 0.2; done
  if ! cri_ok; then
    ctr --address "$SOCK" plugins ls >&2 || true
    grep -i 'cri' "$LOG" | tail -n 20 >&2 || true
    die "CRI plugin did not load"
  fi
}

import_images() {
  local tar ref
  for pair in "$PAUSE_TAR=$PAUSE_REF" "$BUSYBOX_TAR=$BUSYBOX_REF" "$DISTROLESS_TAR=$DISTROLESS_REF"; do
    tar="${pair%%=*}"; ref="${pair#*=}"
    if ctr --address "$SOCK" -n "$NS" images ls -q 2>/dev/null | has -x "$ref"; then
      continue
    fi
    log "importing $ref"
    ctr --address "$SOCK" -n "$NS" images import --snapshotter overlayfs "$tar" >&2
    ctr --address "$SOCK" -n "$NS" images ls -q | has -x "$ref" || die "import of $ref did not produce the image"
  done
}

# ---------------------------------------------------------------- teardown
stop_containerd() {
  local pid
  pid="$(our_pid)" || return 0
  log "stopping containerd pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then
    log "containerd pid $pid ignored SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 25); do alive "$pid" || break; sleep 0.2; done
  fi
}

# PIDs of shims started by OUR containerd: their command line names our socket.
our_shims() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
    case "$cmd" in
      *containerd-shim*"-address $SOCK "*) echo "${p#/proc/}" ;;
    esac
  done
  # Also the shim.pid files under our state dir.
  if [ -d "$STATE/io.containerd.runtime.v2.task" ]; then
    find "$STATE/io.containerd.runtime.v2.task" -name shim.pid -exec cat {} + 2>/dev/null | tr -s ' \n' '\n'
  fi
}

kill_containers() {
  # Kill every container that our runc root knows about (kills init + removes its cgroup).
  [ -d "$RUNC_ROOT" ] || return 0
  local nsroot id
  for nsroot in "$RUNC_ROOT"/*/; do
    [ -d "$nsroot" ] || continue
    for id in $(runc --root "$nsroot" list -q 2>/dev/null); do
      runc --root "$nsroot" delete --force "$id" >/dev/null 2>&1 || log "runc delete --force $id failed"
    done
  done
}

kill_shims() {
  local pids pid i
  pids="$(our_shims | sort -u)"
  [ -n "$pids" ] || return 0
  for pid in $pids; do
    # Only signal processes that really are containerd shims.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | has containerd-shim || continue
    log "killing shim pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq 1 25); do
    local any=0
    for pid in $pids; do alive "$pid" && any=1; done
    [ $any = 0 ] && break
    sleep 0.2
  done
  for pid in $pids; do
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | has containerd-shim; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

remove_shim_sockets() {
  # containerd 1.6 puts shim sockets in /run/containerd/s/<hash>; our task dirs record them.
  [ -d "$STATE/io.containerd.runtime.v2.task" ] || return 0
  local f addr
  while IFS= read -r f; do
    addr="$(cat "$f" 2>/dev/null)"; addr="${addr#unix://}"
    case "$addr" in /run/containerd/s/*) rm -f "$addr" ;; esac
  done < <(find "$STATE/io.containerd.runtime.v2.task" -name address 2>/dev/null)
}

unmount_ours() {
  # Unmount (deepest first) anything mounted under our dirs: rootfs overlays, sandbox shm.
  local m
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($BASE|$CROOT)(/|$)" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

remove_cgroups() {
  # Remove (empty) cgroups named podtrail-test* left behind by our pods, in every hierarchy.
  local h d
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -d "$h" ] || continue
    for d in "$h"$CGROUP_PREFIX*; do
      [ -d "$d" ] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$d" ] && log "cgroup $d still busy (processes left?)"
    done
  done
  return 0
}

cmd_down() {
  need_root
  stop_containerd
  kill_containers
  kill_shims
  kill_containers
  remove_shim_sockets
  unmount_ours
  remove_cgroups
  rm -rf "$BASE" "$CROOT"
  log "down"
}

cmd_up() {
  need_root
  local t0=$SECONDS
  ensure_packages
  build_images
  start_containerd
  import_images
  log "up in $((SECONDS - t0))s; CONTAINER_RUNTIME_ENDPOINT=unix://$SOCK"
  echo "$SOCK"
}

cmd_status() {
  local pid
  if pid="$(our_pid)" && responsive; then
    echo "running pid=$pid socket=$SOCK"
    ctr --address "$SOCK" version | sed 's/^/  /'
    if cri_ok; then echo "  cri plugin: ok"; else echo "  cri plugin: NOT ok"; return 1; fi
    echo "  images ($NS):"
    ctr --address "$SOCK" -n "$NS" images ls -q | sed 's/^/    /'
    echo "  shims: $(our_shims | sort -u | tr '\n' ' ')"
    return 0
  fi
  echo "stopped (socket $SOCK)"
  return 3
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  # A containerd restart as on a node upgrade: shims and containers survive it.
  stop-daemon) need_root; stop_containerd ;;
  start-daemon) need_root; start_containerd; echo "$SOCK" ;;
  *) echo "usage: $0 up|down|status|stop-daemon|start-daemon" >&2; exit 2 ;;
esac
