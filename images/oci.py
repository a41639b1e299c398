#!/usr/bin/env python3
"""Writes a one-layer OCI image archive from a root filesystem directory (stdlib only).

scripts/image assembles the root filesystem (binary, the shared libraries ldd names, a few
files glibc reads); this packs it without pulling any base image. The archive is an OCI image
layout in a tar (oci-layout, index.json, blobs/sha256/...), plus the manifest.json that
`docker load` reads, so podman, buildah, skopeo and docker all load the same file.

The output is reproducible: entries sorted, owners root unless listed in --owner, mtimes and
the gzip header fixed to --created, so the same inputs give the same digests.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time

LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(root: str, mtime: int, owners: dict) -> bytes:
    """The uncompressed layer: every path under root, sorted, with fixed mtimes.

    owners maps a path inside the image ("/tmp") to (uid, gid); everything else is 0:0 so a
    non-root user cannot change what the image ships."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in dirnames + sorted(filenames):
                paths.append(os.path.join(dirpath, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, root)):
            rel = os.path.relpath(path, root)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = mtime
            info.uid, info.gid = owners.get("/" + rel, (0, 0))
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data: bytes, mtime: int) -> bytes:
    out = io.BytesIO()
    # mtime in the gzip header fixed too, so the compressed digest is reproducible.
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=mtime) as gz:
        gz.write(data)
    return out.getvalue()


def image_config(args, diff_id: str, created: str) -> dict:
    config = {
        "User": args.user,
        "Entrypoint": args.entrypoint,
        "Env": args.env,
        "WorkingDir": "/",
        "Labels": dict(kv.split("=", 1) for kv in args.label),
    }
    if args.port:
        config["ExposedPorts"] = {p: {} for p in args.port}
    return {
        "created": created,
        "architecture": args.arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "scripts/image"}],
    }


def descriptor(media: str, data: bytes, **extra) -> dict:
    return {"mediaType": media, "digest": sha256(data), "size": len(data), **extra}


def build(args) -> None:
    mtime = args.created
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    owners = {}
    for spec in args.owner:
        path, ids = spec.split("=", 1)
        uid, gid = ids.split(":")
        owners[path] = (int(uid), int(gid))

    raw = layer_tar(args.rootfs, mtime, owners)
    layer = gzip_bytes(raw, mtime)
    config = json.dumps(image_config(args, sha256(raw), created), sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": descriptor(CONFIG_MEDIA, config),
            "layers": [descriptor(LAYER_MEDIA, layer)],
            "annotations": {"org.opencontainers.image.created": created},
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA,
            "manifests": [
                descriptor(
                    MANIFEST_MEDIA,
                    manifest,
                    annotations={
                        # The full reference: podman/skopeo name the image after it, and
                        # containerd's `ctr import` reads io.containerd.image.name.
                        "org.opencontainers.image.ref.name": args.ref,
                        "io.containerd.image.name": args.ref,
                    },
                    platform={"architecture": args.arch, "os": "linux"},
                )
            ],
        },
        sort_keys=True,
    ).encode()

    def blob(data: bytes) -> str:
        return "blobs/sha256/" + sha256(data).split(":", 1)[1]

    # docker load's format: it names the image after RepoTags.
    docker_manifest = json.dumps(
        [{"Config": blob(config), "RepoTags": [args.ref], "Layers": [blob(layer)]}]
    ).encode()

    entries = [
        ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
        ("index.json", index),
        ("manifest.json", docker_manifest),
        (blob(config), config),
        (blob(manifest), manifest),
        (blob(layer), layer),
    ]
    tmp = args.output + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.output)  # a reader never sees half an archive
    print(
        json.dumps(
            {
                "ref": args.ref,
                "manifest": sha256(manifest),
                "config": sha256(config),
                "layer_bytes": len(layer),
                "uncompressed_bytes": len(raw),
            }
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rootfs", required=True, help="directory that becomes the image's /")
    p.add_argument("--output", required=True, help="OCI archive to write (a .tar)")
    p.add_argument("--ref", required=True, help="image reference, e.g. REGISTRY/NAME:TAG")
    p.add_argument("--entrypoint", required=True, action="append", help="repeat per argv word")
    p.add_argument("--user", required=True, help="UID:GID the entrypoint runs as")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--label", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--port", action="append", default=[], help="exposed port, e.g. 1935/tcp")
    p.add_argument("--owner", action="append", default=[], help="/PATH=UID:GID in the layer")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--created", type=int, default=0, help="Unix time for mtimes and created")
    args = p.parse_args(argv)
    for kv in args.label + args.env:
        if "=" not in kv:
            p.error(f"expected NAME=VALUE, got {kv!r}")
    if not stat.S_ISDIR(os.stat(args.rootfs).st_mode):
        p.error(f"{args.rootfs} is not a directory")
    build(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
