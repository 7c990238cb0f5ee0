#!/usr/bin/env bash
# A throwaway Docker-compatible API for exec-docker tests: podman's `system service` on a unix socket under <dir>,
# with its own containers.conf (runtime runc, explicit ulimits) and its own storage under <dir> — never /etc, never
# the user's podman storage. Also builds the worker test image from the built ork-worker (+ its shared libraries),
# the ork-object-local plugin and busybox-static, imported with `podman import` (no registry needed).
#   docker_service.sh start <dir> <build dir>   images + service; writes <dir>/docker_host, <dir>/image, <dir>/pid,
#                                               <dir>/bundle (ork-worker + its libraries for container tasks) and
#                                               the plain task image localhost/busybox:test (busybox only)
#   docker_service.sh stop <dir>                stops the service (its PID), removes its containers, then <dir>
#   docker_service.sh remove <dir> <id>         force-removes one container (the conformance "lost job" command)
#   docker_service.sh podman <dir> args...      runs podman against <dir>'s storage
# Fails (never skips) when podman, runc or busybox-static are missing: scripts/install-deps installs them.
set -euo pipefail

usage() {
  echo "usage: $0 start <dir> <build dir> | stop <dir> | remove <dir> <id> | podman <dir> args..." >&2
  exit 2
}
[ $# -ge 2 ] || usage
verb=$1
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
IMAGE=localhost/ork-worker:test

pm() {
  CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/storage" --runroot "$dir/run" --runtime runc \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$dir/tmp" "$@"
}

write_conf() {
  mkdir -p "$dir/storage" "$dir/run" "$dir/tmp"
  cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
EOF
}

# Copies a file and its shared libraries into the root file system at the same paths.
copy_with_libs() {
  local root=$1 file=$2 dest=$3 lib
  install -D -m 0755 "$file" "$root$dest"
  for lib in $(ldd "$file" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'); do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

build_image() {
  local build=$1 root="$dir/rootfs" t0=$SECONDS applet
  [ -x "$build/bin/ork-worker" ] || { echo "docker_service: no $build/bin/ork-worker (build it first)" >&2; exit 1; }
  [ -f "$build/lib/libork-object-local.so" ] || { echo "docker_service: no $build/lib/libork-object-local.so" >&2; exit 1; }
  rm -rf "$root"
  mkdir -p "$root"/{bin,tmp,etc,usr/local/bin,usr/local/lib,proc,sys,dev}
  chmod 1777 "$root/tmp"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  copy_with_libs "$root" "$build/bin/ork-worker" /usr/local/bin/ork-worker
  copy_with_libs "$root" "$build/lib/libork-object-local.so" /usr/local/lib/libork-object-local.so
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  tar -C "$root" -cf "$dir/rootfs.tar" .
  pm import -q --change 'ENV=PATH=/usr/local/bin:/usr/bin:/bin' --change 'WORKDIR=/tmp' "$dir/rootfs.tar" "$IMAGE" >/dev/null
  rm -rf "$root" "$dir/rootfs.tar"
  echo "$IMAGE" >"$dir/image"
  # A plain image for container tasks (no Ork inside) and the worker bundle exec-docker mounts into such images.
  mkdir -p "$root/bin" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  tar -C "$root" -cf "$dir/rootfs.tar" .
  pm import -q --change 'ENV=PATH=/bin' --change 'CMD ["echo", "{\"default\": true}"]' "$dir/rootfs.tar" \
    localhost/busybox:test >/dev/null
  rm -rf "$root" "$dir/rootfs.tar" "$dir/bundle"
  local f lib
  for f in "$build/bin/ork-worker" "$build/lib/libork-object-local.so"; do
    for lib in $(ldd "$f" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'); do
      install -D -m 0755 "$(readlink -f "$lib")" "$dir/bundle/lib/$(basename "$lib")"
    done
  done
  install -D -m 0755 "$build/bin/ork-worker" "$dir/bundle/bin/ork-worker"
  install -D -m 0755 "$build/lib/libork-object-local.so" "$dir/bundle/lib/libork-object-local.so"
  echo "docker_service: image $IMAGE built in $((SECONDS - t0)) s"
}

stop_service() {
  if [ -f "$dir/pid" ]; then
    local pid
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
  fi
}

case "$verb" in
start)
  [ $# -eq 3 ] || usage
  build=$(cd "$3" && pwd)
  for tool in podman runc busybox curl; do
    command -v "$tool" >/dev/null || { echo "docker_service: $tool not installed (scripts/install-deps)" >&2; exit 1; }
  done
  busybox --list >/dev/null
  stop_service
  [ -d "$dir/storage" ] && pm rm -af -t 0 >/dev/null 2>&1 || true
  write_conf
  build_image "$build"
  sock="$dir/podman.sock"
  rm -f "$sock"
  CONTAINERS_CONF="$dir/containers.conf" setsid podman --root "$dir/storage" --runroot "$dir/run" --runtime runc \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$dir/tmp" \
    system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 100); do
    if curl -sf --unix-socket "$sock" http://d/v1.41/_ping >/dev/null 2>&1; then
      echo "unix://$sock" >"$dir/docker_host"
      # A container must actually run here (runc, ulimits, storage): fail now rather than in every test.
      out=$(pm run --rm "$IMAGE" sh -c 'echo ok' 2>&1) || { echo "docker_service: podman run failed: $out" >&2; exit 1; }
      [ "$out" = ok ] || { echo "docker_service: podman run printed '$out'" >&2; exit 1; }
      echo "docker_service: API on unix://$sock (pid $(cat "$dir/pid"))"
      exit 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "docker_service: the podman service did not come up:" >&2
  cat "$dir/service.log" >&2
  stop_service
  exit 1
  ;;
stop)
  stop_service
  if [ -d "$dir/storage" ]; then
    pm rm -af -t 0 >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
remove)
  [ $# -eq 3 ] || usage
  pm rm -f -t 0 "$3" >/dev/null
  ;;
podman)
  shift 2
  pm "$@"
  ;;
*) usage ;;
esac
