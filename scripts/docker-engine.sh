#!/usr/bin/env bash
# Start a Docker engine on a Debian/Ubuntu machine and build the fogd node image,
# without any container registry. Used by scripts/test (and CI); usable by anyone whose
# machine cannot pull python:3.12-slim. Run as root.
#
# 1. apt-get install docker.io (and mmdebstrap) if dockerd is missing;
# 2. start dockerd unless `docker info` already answers (iptables off, no default
#    bridge: node containers use host networking or a named network);
# 3. build a base image from Debian's own packages (mmdebstrap: python3 + aiohttp and
#    msgspec wheels fetched by the host's pip), unless FOGD_NODE_BASE_IMAGE exists;
# 4. docker build node_agent/ FROM that base -> FOGD_NODE_IMAGE (default fogd-node:latest).
#
# Env: FOGD_NODE_IMAGE, FOGD_NODE_BASE_IMAGE (fogd-node-base:bookworm), DEBIAN_MIRROR,
#      DOCKERD_LOG (/var/log/fogd-dockerd.log), FOGD_SKIP_IMAGE=1 (engine only),
#      FOGD_SWARM=1 (also make this engine a single-node swarm manager, see docs/SCALE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${FOGD_NODE_IMAGE:-fogd-node:latest}
BASE_IMAGE=${FOGD_NODE_BASE_IMAGE:-fogd-node-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SEC_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/fogd-dockerd.log}
PYVER=3.11                      # bookworm's python3; wheels are fetched for this ABI
export DEBIAN_FRONTEND=noninteractive DOCKER_BUILDKIT=0
log() { printf '[docker-engine %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
T0=$SECONDS

WORK=$(mktemp -d /tmp/fogd-docker.XXXXXX)
MADE_POLICY=""
cleanup() { rm -rf "$WORK"; if [ -n "$MADE_POLICY" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

# ---------------------------------------------------------------- 1. packages
pkgs=()
command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || pkgs+=(mmdebstrap)
if [ ${#pkgs[@]} -gt 0 ]; then
  # apt must not start dockerd with Debian's default flags
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; MADE_POLICY=1
  fi
  log "apt-get install ${pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! grep -q ' /sys/fs/cgroup' /proc/self/mountinfo; then
  log "no cgroup mounts; running cgroupfs-mount"
  command -v cgroupfs-mount >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends cgroupfs-mount >/dev/null
  cgroupfs-mount
fi

# ---------------------------------------------------------------- 2. dockerd
# --iptables=false: leave the machine's netfilter alone (no published ports, no swarm
# ingress mesh); --bridge=none: no docker0, containers get host networking or a named
# network from fogd. DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: swarm uses local images.
if docker info >/dev/null 2>&1; then
  log "dockerd already running"
else
  log "starting dockerd (log: $DOCKERD_LOG)"
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd --iptables=false --bridge=none \
      --storage-driver=overlay2 >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not become ready"; tail -n 50 "$DOCKERD_LOG" >&2; exit 1; }
fi
log "dockerd ready: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# ---------------------------------------------------------------- 2b. swarm (FOGD_SWARM=1)
# A single-node swarm for the swarm provisioner: this engine is its manager, advertised on
# loopback only, and its host carries both tier labels (fog and cloud nodes may run here).
if [ "${FOGD_SWARM:-}" = 1 ]; then
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    log "docker swarm init --advertise-addr 127.0.0.1"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
  docker node update --label-add fogd.fog=true --label-add fogd.cloud=true "$(docker info --format "{{.Swarm.NodeID}}")" >/dev/null
  log "swarm manager ready; this host is labelled fogd.fog=true fogd.cloud=true"
fi
[ "${FOGD_SKIP_IMAGE:-}" = 1 ] && exit 0

# ---------------------------------------------------------------- 3. base image
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE present"
else
  log "pip: fetching aiohttp + msgspec wheels for CPython $PYVER"
  python3 -m pip install -q --disable-pip-version-check --no-compile --only-binary=:all: \
      --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
      --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
      --target "$WORK/site" -r node_agent/requirements.txt 2> >(grep -v 'is ignored: it is neither' >&2)
  rm -rf "$WORK/site/bin"
  # variant=essential + merged-usr hook: python3 and what dpkg needs, no apt, no perl.
  # .pyc are hash-checked: mmdebstrap clamps mtimes, which would make them look stale.
  log "mmdebstrap: building a bookworm rootfs with python3"
  export FOGD_SITE="$WORK/site"
  mmdebstrap --variant=essential --include=python3 \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='Acquire::Languages "none"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='mkdir -p "$1/usr/local/lib/python3.11/dist-packages" && cp -a "$FOGD_SITE/." "$1/usr/local/lib/python3.11/dist-packages/"' \
      --customize-hook='chroot "$1" python3 -m compileall -q -j0 --invalidation-mode unchecked-hash /usr/local/lib/python3.11/dist-packages >/dev/null' \
      --customize-hook='chroot "$1" python3 -c "import aiohttp, msgspec"' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log' \
      bookworm "$WORK/rootfs.tar" \
      "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SEC_MIRROR bookworm-security main" \
      </dev/null >"$WORK/mmdebstrap.log" 2>&1 \
    || { tail -n 40 "$WORK/mmdebstrap.log" >&2; log "mmdebstrap failed"; exit 1; }
  docker import --change 'ENV PYTHONUNBUFFERED=1' --change 'CMD ["python3"]' \
      "$WORK/rootfs.tar" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
fi

# ---------------------------------------------------------------- 4. node image
log "docker build node_agent/ -> $IMAGE"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" node_agent/ >/dev/null
docker run --rm --init --network none "$IMAGE" python3 -c 'import node_agent.agent, aiohttp, msgspec; print("node image ok")'
log "done in $((SECONDS - T0)) s: $(docker image ls "$IMAGE" --format '{{.Repository}}:{{.Tag}} {{.Size}}')"
