#!/usr/bin/env bash
# End-to-end: the container images scripts/image builds (debug binaries here, cached), run the way
# a container runtime runs them. For each OCI archive: the index, manifest, config and layer are
# read with jq/sha256sum/tar (not with the code that wrote them) and every digest checked; the
# layer is unpacked into an empty directory and the entrypoint runs chrooted into it, as the
# image's numeric non-root user, with an empty environment plus the image's Env — nothing from
# this machine or the build directory. Where skopeo is installed it reads each archive too.
# - both: names/tags match the chart's defaults and the operator's --relay-image default
#   (version = crate version = appVersion = the Containerfile's VERSION), OCI labels (source,
#   version, licence = Cargo.toml's), a non-root numeric User, no shell and no package manager;
# - relay: an origin takes an ffmpeg publish (test pattern + AAC) and ffprobe plays it over RTMP
#   and HTTP-FLV; an edge in a second chroot pulls it by name (--upstream rtmp://localhost:PORT,
#   resolved through the image's nsswitch.conf and hosts) and ffprobe plays it there; both run
#   as UID 65532;
# - operator: --help, and `crd` prints the Stream CRD identical to crds/stream.yaml.
# Needs root (chroot). Bounded: a cached run takes well under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$(basename "$0")
fail() { echo "FAIL $name: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "SKIP $name: chroot needs root"; exit 0; }
for tool in ffmpeg ffprobe jq curl python3 sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps installs it)"
done

# The archive writer's own tests (layout, digests, owners, reproducibility).
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -q images/test_oci.py || fail "images/test_oci.py failed"
# Images around the debug binaries the other tests built (SURGE_IMAGE_PROFILE=release for the
# shipped ones): a second, optimised build of the workspace would add minutes to a fresh run.
# The packing, the root filesystem and the checks below are the same for both.
scripts/image --profile "${SURGE_IMAGE_PROFILE:-debug}" || fail "scripts/image failed"

target=${CARGO_TARGET_DIR:-target}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
license=$(sed -n '/^\[workspace.package\]/,/^\[/s/^license *= *"\(.*\)"/\1/p' Cargo.toml)

# The names and tags everything else uses agree with what was built.
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/surge/Chart.yaml)
[ "$app_version" = "$version" ] || fail "Chart appVersion $app_version != crate version $version"
grep -q "^ARG VERSION=$version\$" Containerfile || fail "Containerfile's VERSION is not $version"
relay_default=$(grep -ho '"ghcr.io/surge-dev/surge-relay:[^"]*"' operator/src/main.rs | tr -d '"')
[ "$relay_default" = "ghcr.io/surge-dev/surge-relay:$version" ] \
  || fail "operator --relay-image default $relay_default is not the built relay image"
values_relay=$(sed -n '/^relay:/,/^[a-z]/p' charts/surge/values.yaml \
  | sed -n '/image:/,/pullPolicy/p' | sed -n 's/^ *\(repository\|tag\): *"\{0,1\}\([^"]*\)"\{0,1\}$/\2/p' | paste -sd:)
[ "$values_relay" = "ghcr.io/surge-dev/surge-relay:$version" ] \
  || fail "chart relay.image $values_relay is not the built relay image"
values_op=$(sed -n '/^operator:/,/^[a-z]/p' charts/surge/values.yaml \
  | sed -n '/image:/,/pullPolicy/p' | sed -n 's/^ *repository: *//p')
[ "$values_op" = ghcr.io/surge-dev/surge-operator ] || fail "chart operator.image.repository is $values_op"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# unpack IMAGE DIR: verify the archive and unpack its layers into DIR/rootfs; DIR/config.json.
unpack() {
  local image=$1 dir=$2
  local archive="$target/images/$image-$version.oci.tar"
  [ -f "$archive" ] || fail "$archive missing"
  mkdir -p "$dir/oci" "$dir/rootfs"
  tar -xf "$archive" -C "$dir/oci"
  [ "$(jq -r .imageLayoutVersion "$dir/oci/oci-layout")" = 1.0.0 ] || fail "$image: bad oci-layout"
  local ref
  ref=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$dir/oci/index.json")
  [ "$ref" = "ghcr.io/surge-dev/$image:$version" ] || fail "$image: archive names $ref"
  blob() { # DIGEST -> path, after checking the content hashes to it
    local path="$dir/oci/blobs/${1/://}"
    [ "sha256:$(sha256sum "$path" | cut -d' ' -f1)" = "$1" ] || fail "$image: blob $1 does not match its digest"
    echo "$path"
  }
  local manifest config
  manifest=$(blob "$(jq -r '.manifests[0].digest' "$dir/oci/index.json")")
  config=$(blob "$(jq -r .config.digest "$manifest")")
  cp "$config" "$dir/config.json"
  local i=0
  for digest in $(jq -r '.layers[].digest' "$manifest"); do
    local layer diff_id
    layer=$(blob "$digest")
    diff_id=$(jq -r ".rootfs.diff_ids[$i]" "$config")
    [ "sha256:$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1)" = "$diff_id" ] \
      || fail "$image: layer $i does not match its diff_id"
    tar -xzpf "$layer" --same-owner --numeric-owner -C "$dir/rootfs"
    i=$((i + 1))
  done
  [ "$i" -ge 1 ] || fail "$image: no layers"
  [ "$(jq '.manifests | length' "$dir/oci/index.json")" = 1 ] || fail "$image: not one manifest"
  # A second reader where one is installed (not required): skopeo copies it as OCI and as
  # docker's format (manifest.json), checking every digest on the way.
  if command -v skopeo >/dev/null; then
    skopeo copy -q "oci-archive:$archive" "oci:$dir/skopeo:$version" \
      && skopeo copy -q "docker-archive:$archive" "oci:$dir/skopeo-docker:$version" \
      || fail "$image: skopeo cannot read $archive"
  fi
}

# check_image IMAGE DIR: labels, user, entrypoint, and nothing it does not need.
check_image() {
  local image=$1 dir=$2
  local c="$dir/config.json" root="$dir/rootfs"
  for kv in "source=https://github.com/surge-dev/surge" "version=$version" "licenses=$license" \
    "title=$image"; do
    [ "$(jq -r ".config.Labels[\"org.opencontainers.image.${kv%%=*}\"]" "$c")" = "${kv#*=}" ] \
      || fail "$image: label org.opencontainers.image.${kv%%=*} is not ${kv#*=}"
  done
  [[ "$(jq -r .config.User "$c")" =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || fail "$image: User is not a numeric non-root UID:GID"
  [ "$(jq -c .config.Entrypoint "$c")" = "[\"/usr/local/bin/$image\"]" ] || fail "$image: entrypoint is $(jq -c .config.Entrypoint "$c")"
  [ -x "$root/usr/local/bin/$image" ] || fail "$image: entrypoint binary missing"
  for f in bin/sh usr/bin/sh bin/bash bin/busybox usr/bin/apt usr/bin/apt-get usr/bin/dpkg sbin/apk \
    usr/bin/env; do
    [ ! -e "$root/$f" ] && [ ! -L "$root/$f" ] || fail "$image: /$f is in the image"
  done
  local n
  n=$(find "$root" -type f -perm -u+x | wc -l)
  # The binary, the loader, libc, libm, libgcc_s: shared objects are the only other executables.
  [ "$(find "$root" -type f -perm -u+x ! -name '*.so*' | wc -l)" = 1 ] \
    || fail "$image: executables besides the entrypoint: $(find "$root" -type f -perm -u+x ! -name '*.so*')"
  echo "$name: $image: $(du -h "$target/images/$image-$version.oci.tar" | cut -f1) archive," \
    "$(du -sh "$root" | cut -f1) unpacked, $n executable files, user $(jq -r .config.User "$c")"
}

# image_cmd DIR: sets cmd to the entrypoint, chrooted into DIR/rootfs, as the image's user,
# with the image's Env only. A plain command (no function or subshell around it), so $! of
# `"${cmd[@]}" ... &` is the process itself: env and chroot exec into it.
image_cmd() {
  local dir=$1 user
  local env=() entry=()
  user=$(jq -r .config.User "$dir/config.json")
  mapfile -t env < <(jq -r '.config.Env[]' "$dir/config.json")
  mapfile -t entry < <(jq -r '.config.Entrypoint[]' "$dir/config.json")
  cmd=(env -i "${env[@]}" "$(command -v chroot)" --userspec="$user" "$dir/rootfs" "${entry[@]}")
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
show_logs() {
  for f in "$work"/*.log; do echo "--- $f (tail)" >&2; tail -15 "$f" >&2; done
}
probe() { # URL -> "video,audio" codecs of what a player receives
  timeout 20 ffprobe -v error -rw_timeout 10000000 -show_entries stream=codec_type -of csv=p=0 "$1" \
    | sort | paste -sd, 
}

# --- operator
unpack surge-operator "$work/op"
check_image surge-operator "$work/op"
image_cmd "$work/op"
"${cmd[@]}" --help >"$work/op-help.txt" 2>&1 || { cat "$work/op-help.txt" >&2; fail "operator --help failed in its image"; }
grep -q "Usage: surge-operator" "$work/op-help.txt" || fail "operator --help printed no usage"
"${cmd[@]}" crd >"$work/crd.yaml" 2>"$work/crd.err" || { cat "$work/crd.err" >&2; fail "operator crd failed in its image"; }
diff -q "$work/crd.yaml" crds/stream.yaml >/dev/null || fail "the image's CRD differs from crds/stream.yaml"
echo "$name: operator image: --help and crd (= crds/stream.yaml) ok"

# --- relay
unpack surge-relay "$work/relay"
check_image surge-relay "$work/relay"
# A second unpacked copy for the edge, as a second container would have.
unpack surge-relay "$work/edge"
o_rtmp=$(free_port); o_http=$(free_port); e_rtmp=$(free_port); e_http=$(free_port)
image_cmd "$work/relay"
"${cmd[@]}" --rtmp-listen "127.0.0.1:$o_rtmp" --http-listen "127.0.0.1:$o_http" \
  --shutdown-grace 1s >"$work/origin.log" 2>&1 &
origin=$!
pids+=("$origin")
{ wait_port "$o_rtmp" && wait_port "$o_http"; } || { show_logs; fail "the relay in its image did not listen"; }
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$origin/status")
[ "$uid" = "$(jq -r .config.User "$work/relay/config.json" | cut -d: -f1)" ] || fail "the relay runs as UID $uid"

ffmpeg -hide_banner -nostdin -loglevel error -re \
  -f lavfi -i "testsrc2=size=320x180:rate=25" -f lavfi -i sine=frequency=440 \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -c:a aac -t 60 \
  -f flv "rtmp://127.0.0.1:$o_rtmp/live/img" >"$work/ffmpeg.log" 2>&1 &
pids+=($!)
ready=0
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$o_http/api/v1/streams" \
    | jq -e '.streams[] | select(.app == "live" and .name == "img" and .gop_cache_ms > 0)' >/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { show_logs; fail "the publish never reached the relay in its image"; }
[ "$(probe "rtmp://127.0.0.1:$o_rtmp/live/img")" = "audio,video" ] || { show_logs; fail "RTMP play from the relay image failed"; }
[ "$(probe "http://127.0.0.1:$o_http/live/img.flv")" = "audio,video" ] || { show_logs; fail "HTTP-FLV play from the relay image failed"; }
echo "$name: relay image (UID $uid): publish, RTMP and HTTP-FLV play ok"

image_cmd "$work/edge"
"${cmd[@]}" --tier edge --rtmp-listen "127.0.0.1:$e_rtmp" --http-listen "127.0.0.1:$e_http" \
  --upstream "rtmp://localhost:$o_rtmp/live" --shutdown-grace 1s >"$work/edge.log" 2>&1 &
pids+=($!)
{ wait_port "$e_rtmp" && wait_port "$e_http"; } || { show_logs; fail "the edge in its image did not listen"; }
[ "$(probe "http://127.0.0.1:$e_http/live/img.flv")" = "audio,video" ] \
  || { show_logs; fail "the edge in its image did not pull from rtmp://localhost (name resolution in the image)"; }
echo "$name: relay image as an edge: pulled by name from rtmp://localhost:$o_rtmp/live, HTTP-FLV play ok"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
echo "PASS $name"
