"""archway's image run as a Bitbucket pipe, with bitbucket-pipes-toolkit's PipeTestCase.

Run by `scripts/pipe-test` (which installs the toolkit into .tools/pipe-venv and makes the
"clone" directory this runs in); `tests/e2e_image.rs` runs that script.

PipeTestCase runs the pipe as Bitbucket does: the working directory (the clone) mounted at the
same path and used as the container's working directory, the Pipelines variables
(BITBUCKET_BUILD_NUMBER, BITBUCKET_BRANCH and BITBUCKET_COMMIT from the clone's git repository,
…) plus the pipe's variables, no command (so the image's default CMD runs). Two changes:

* `setUpClass`: the toolkit's builds `./Dockerfile` with the Docker SDK (the classic builder,
  which pulls the base images from public registries, and the Dockerfile in the working
  directory is the user's, not the pipe's). Here the pipe's image is prebuilt
  (`scripts/build-image`) and pulled from the lab registry: `ARCHWAY_PIPE_IMAGE`.
* `run_pipe`: what a pipe also gets from Bitbucket and the toolkit does not give — the Docker
  daemon (here the lab's socket), the pipe's storage directories under the clone's
  `.bitbucket/` (as Bitbucket lays them out), `BITBUCKET_CLONE_DIR` — with the host network, so
  `127.0.0.1:5000` is the lab registry; the exit code, which `run_container` drops; and stderr
  apart from stdout (see `run_pipe`).

Environment: ARCHWAY_PIPE_IMAGE (archway's image), ARCHWAY_PIPE_REPO (repository to push to,
`127.0.0.1:5000/…`, must not exist yet), ARCHWAY_LAB_BASE (the busybox base image).
"""

import hashlib
import json
import os
import re
import unittest
import urllib.error
import urllib.request
import uuid

import docker
from bitbucket_pipes_toolkit.test import PipeTestCase

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def registry_get(name, path):
    """GET http://HOST/v2/REPO/PATH: (status, headers, body)."""
    host, repo = name.split("/", 1)
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{path}", headers={"Accept": ACCEPT})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def tag_digest(name, tag):
    status, headers, body = registry_get(name, f"manifests/{tag}")
    if status == 404:
        return None
    assert status == 200, (status, body)
    return "sha256:" + hashlib.sha256(body).hexdigest()


class ArchwayPipeTest(PipeTestCase):
    @classmethod
    def setUpClass(cls):
        # Not the toolkit's: it would `docker build .` (pulling bases from Docker Hub).
        cls.image_tag = os.environ["ARCHWAY_PIPE_IMAGE"]
        cls.docker_client = docker.from_env()
        cls.docker_client.images.pull(cls.image_tag)
        cls.repo = os.environ["ARCHWAY_PIPE_REPO"]
        cls.base = os.environ["ARCHWAY_LAB_BASE"]

    def run_pipe(self, variables):
        """Runs the pipe; (exit code, log lines without colours, shared storage dir)."""
        clone = os.getcwd()
        generated = os.path.join(clone, ".bitbucket/pipelines/generated/pipeline/pipes")
        shared = os.path.join(generated, "shared-" + uuid.uuid4().hex[:8])
        storage = os.path.join(generated, "archway-" + uuid.uuid4().hex[:8])
        os.makedirs(shared)
        os.makedirs(storage)
        env = {
            "BITBUCKET_CLONE_DIR": clone,
            "BITBUCKET_PIPE_STORAGE_DIR": storage,
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR": shared,
            "BITBUCKET_REPO_SLUG": "widget",
        }
        env.update(variables)
        container = self.run_and_get_container(
            environment=env,
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
            network_mode="host",
        )
        try:
            code = container.wait(timeout=1200)["StatusCode"]
            logs = container.logs().decode()
            # The log lines are on stderr; stdout holds only the published reference. Docker
            # keeps the two streams apart, so in the merged log (Bitbucket's, and `logs()`) the
            # reference, written just before the `✔`, may come after it: the last line is read
            # from stderr.
            errors = container.logs(stdout=False, stderr=True).decode()
        finally:
            container.remove(force=True)
        lines = [ANSI.sub("", l) for l in errors.rstrip().splitlines()]
        return code, lines, shared, logs

    def pipe_variables(self, repo, **extra):
        v = {
            "IMAGE": repo,
            "PUSH": "true",
            "PLATFORMS": "linux/amd64,linux/arm64",
            # A list variable, as Bitbucket passes `BUILD_ARGS: [..., ...]` to a pipe.
            "BUILD_ARGS_COUNT": "2",
            "BUILD_ARGS_0": f"BASE={self.base}",
            "BUILD_ARGS_1": f"NONCE={uuid.uuid4().hex}",
        }
        v.update(extra)
        return v

    def test_pipe_builds_pushes_and_ends_with_a_tick(self):
        repo = self.repo
        code, lines, shared, logs = self.run_pipe(self.pipe_variables(repo))
        self.assertEqual(code, 0, logs)
        self.assertIn("✔", lines[-1], logs)
        self.assertTrue(lines[-1].startswith("✔"), logs)
        # The branch PipeTestCase took from the clone's git repository: `main`, the default.
        digest = tag_digest(repo, "main")
        self.assertIsNotNone(digest, f"{repo}:main was not pushed\n{logs}")
        # metadata-action's rules: the default branch gets `edge`, never `latest` (that is the
        # highest stable release's).
        self.assertEqual(tag_digest(repo, "edge"), digest)
        self.assertIsNone(tag_digest(repo, "latest"), logs)
        with open(os.path.join(shared, "archway-result.json")) as f:
            result = json.load(f)
        self.assertEqual(result["digest"], digest, result)
        status, _, body = registry_get(repo, f"manifests/{digest}")
        self.assertEqual(status, 200)
        platforms = sorted(
            f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in json.loads(body)["manifests"]
            if m.get("platform", {}).get("os") == "linux"
        )
        self.assertEqual(platforms, ["linux/amd64", "linux/arm64"], body)
        plan = "\n".join(lines)
        self.assertRegex(plan, r"linux/arm64\s+emulated", logs)

    def assert_refused(self, variables, variable):
        repo = f"{self.repo}-bad-{uuid.uuid4().hex[:6]}"
        code, lines, shared, logs = self.run_pipe(self.pipe_variables(repo, **variables))
        self.assertNotEqual(code, 0, logs)
        self.assertEqual(code, 2, logs)
        # The error once: its first line marked `✖`, then its causes, a blank line, the hint.
        crosses = [l for l in lines if l.startswith("✖")]
        self.assertEqual(len(crosses), 1, logs)
        self.assertIn(variable, crosses[0], logs)
        self.assertTrue(lines[-1].startswith("hint: "), logs)
        self.assertEqual(lines[-2], "", logs)
        self.assertFalse(os.path.exists(os.path.join(shared, "archway-result.json")))
        status, _, body = registry_get(repo, "tags/list")
        self.assertEqual(status, 404, f"something was pushed to {repo}: {body}")

    def test_bad_push_variable_is_refused_with_a_cross(self):
        self.assert_refused({"PUSH": "maybe"}, "PUSH")

    def test_bad_platform_is_refused_with_a_cross(self):
        self.assert_refused({"PLATFORMS": "linux/sparc"}, "PLATFORMS")


if __name__ == "__main__":
    unittest.main(verbosity=2)
