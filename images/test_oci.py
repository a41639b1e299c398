"""Tests of images/oci.py: the archive is a valid OCI layout, digests match, output is
reproducible. Run: python3 -m unittest images/test_oci.py (scripts/e2e/60-images.sh does)."""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci  # noqa: E402


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciArchiveTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "rootfs")
        os.makedirs(os.path.join(self.root, "usr/local/bin"))
        os.makedirs(os.path.join(self.root, "tmp"))
        os.makedirs(os.path.join(self.root, "home/nonroot"))
        with open(os.path.join(self.root, "usr/local/bin/app"), "wb") as f:
            f.write(b"\x7fELF not really")
        os.chmod(os.path.join(self.root, "usr/local/bin/app"), 0o755)
        os.symlink("usr/local/bin", os.path.join(self.root, "bin-link"))

    def tearDown(self):
        self.tmp.cleanup()

    def build(self, out: str) -> dict:
        with redirect_stdout(io.StringIO()):
            oci.main(
                [
                    "--rootfs", self.root, "--output", out, "--ref", "example.org/app:1.2.3",
                    "--entrypoint", "/usr/local/bin/app", "--user", "65532:65532",
                    "--env", "PATH=/usr/local/bin", "--label", "org.opencontainers.image.version=1.2.3",
                    "--port", "8080/tcp", "--owner", "/home/nonroot=65532:65532",
                    "--created", "1700000000",
                ]
            )
        with tarfile.open(out) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    def test_layout_and_digests(self):
        files = self.build(os.path.join(self.tmp.name, "a.tar"))
        self.assertEqual(json.loads(files["oci-layout"]), {"imageLayoutVersion": "1.0.0"})
        index = json.loads(files["index.json"])
        (entry,) = index["manifests"]
        self.assertEqual(
            entry["annotations"]["org.opencontainers.image.ref.name"], "example.org/app:1.2.3"
        )

        def blob(desc):
            data = files["blobs/sha256/" + desc["digest"].split(":")[1]]
            self.assertEqual(digest(data), desc["digest"])
            self.assertEqual(len(data), desc["size"])
            return data

        manifest = json.loads(blob(entry))
        config = json.loads(blob(manifest["config"]))
        (layer_desc,) = manifest["layers"]
        raw = gzip.decompress(blob(layer_desc))
        self.assertEqual(config["rootfs"]["diff_ids"], [digest(raw)])
        self.assertEqual(config["config"]["User"], "65532:65532")
        self.assertEqual(config["config"]["Entrypoint"], ["/usr/local/bin/app"])
        self.assertEqual(config["config"]["ExposedPorts"], {"8080/tcp": {}})
        self.assertEqual(config["created"], "2023-11-14T22:13:20Z")

        with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
            members = {m.name: m for m in layer.getmembers()}
        self.assertEqual(members["usr/local/bin/app"].mode & 0o777, 0o755)
        self.assertEqual((members["usr/local/bin/app"].uid, members["usr/local/bin/app"].gid), (0, 0))
        self.assertEqual((members["home/nonroot"].uid, members["home/nonroot"].gid), (65532, 65532))
        self.assertTrue(members["bin-link"].issym())
        self.assertEqual({m.mtime for m in members.values()}, {1700000000})

        (docker,) = json.loads(files["manifest.json"])
        self.assertEqual(docker["RepoTags"], ["example.org/app:1.2.3"])
        self.assertIn(docker["Config"], files)

    def test_reproducible(self):
        a = os.path.join(self.tmp.name, "a.tar")
        b = os.path.join(self.tmp.name, "b.tar")
        self.build(a)
        os.utime(os.path.join(self.root, "usr/local/bin/app"), (1, 1))  # mtimes do not matter
        self.build(b)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())


if __name__ == "__main__":
    unittest.main()
