"""Regenerate the fixtures here: what kubectl really sends, and what it would have sent as JSON.

    .venv/bin/python tests/data/protobuf/capture.py [--kubectl PATH]

For each command in ``COMMANDS`` this runs kubectl against a plain-HTTP stub on 127.0.0.1 (minimal
discovery, no auth) that records each POST body: ``<name>.pb`` is that body (kubectl's typed clients send
``application/vnd.kubernetes.protobuf``), ``<name>.json`` the same command's ``--dry-run=client -o json``
(the object as kubectl's JSON encoder writes it), which ``decode(<name>.pb)`` must equal; for ``auth can-i``,
which has no dry run, the JSON is written by hand. A command whose body is not protobuf is an error: the
lists hold only those that are (``run``, ``expose`` and ``scale`` send JSON).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_KUBECTL = HERE.parents[2] / ".venv" / "bin" / "kubectl"

# name -> kubectl arguments (kubectl's --dry-run/-o flags go before any "--")
COMMANDS: dict[str, list[str]] = {
    "deployment": ["create", "deployment", "web", "--image=nginx", "--replicas=2", "--port=80", "-n", "demo"],
    "deployment-multi": ["create", "deployment", "multi", "--image=nginx", "--image=busybox"],
    "namespace": ["create", "namespace", "x"],
    "configmap": ["create", "configmap", "c", "--from-literal=a=1", "--from-literal=b=2"],
    "configmap-binary": ["create", "configmap", "bin", "--from-file={tmp}/bin.dat"],
    "secret": ["create", "secret", "generic", "s", "--from-literal=p=q"],
    "secret-docker-registry": ["create", "secret", "docker-registry", "reg", "--docker-server=r.io",
                               "--docker-username=u", "--docker-password=p"],
    "service-clusterip": ["create", "service", "clusterip", "s", "--tcp=80:8080"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=5678:8080", "--node-port=30080"],
    "service-externalname": ["create", "service", "externalname", "en", "--external-name=example.com"],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "job": ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    "job-from-cronjob": ["create", "job", "j2", "--from=cronjob/cj"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "echo", "hi"],
    "role": ["create", "role", "r", "--verb=get,list", "--resource=pods"],
    "rolebinding": ["create", "rolebinding", "rb", "--role=r", "--user=alice", "--serviceaccount=default:sa"],
    "clusterrole": ["create", "clusterrole", "cr", "--verb=get", "--resource=nodes", "--non-resource-url=/healthz"],
    "clusterrolebinding": ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--group=devs"],
    "resourcequota": ["create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2"],
}  # fmt: skip
# name -> (kubectl arguments, the stub's answer): commands with no --dry-run, whose <name>.json is written by
# hand (and left alone here); `auth can-i` needs an answer it can read
REVIEWS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "selfsubjectaccessreview": (["auth", "can-i", "get", "pods", "-n", "demo"], {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "status": {"allowed": True}}),
    "selfsubjectaccessreview-nonresource": (["auth", "can-i", "get", "/healthz"], {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "status": {"allowed": True}}),
    "selfsubjectrulesreview": (["auth", "can-i", "--list", "-n", "demo"], {
        "kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "status": {"incomplete": False}}),
}  # fmt: skip

BINARY_FILE = b"hello\x00\xff\xfebin"  # not UTF-8: kubectl puts it in binaryData
# what `create job --from=cronjob/cj` reads first (answered as JSON)
CRONJOB = {
    "kind": "CronJob", "apiVersion": "batch/v1",
    "metadata": {"name": "cj", "namespace": "default", "uid": "u2", "resourceVersion": "7"},
    "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {}, "spec": {"template": {
        "metadata": {}, "spec": {"containers": [{"name": "cj", "image": "busybox", "command": ["echo", "hi"]}],
                                 "restartPolicy": "OnFailure"}}}}},
}  # fmt: skip
RESOURCES = {  # group/version -> (plural, kind, namespaced): enough discovery for the commands above
    "v1": [("namespaces", "Namespace", False), ("nodes", "Node", False), ("pods", "Pod", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
}


class _Stub(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []
    reply: Any = None  # the object a POST answers with: the command's own dry-run output

    def _send(self, code: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                       "preferredVersion": {"groupVersion": gv, "version": "v1"}} for gv in RESOURCES if "/" in gv]
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        if group_version in RESOURCES:
            resources = [{"name": p, "singularName": k.lower(), "namespaced": n, "kind": k, "verbs": ["create", "get"]}
                         for p, k, n in RESOURCES[group_version]]
            return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                                    "resources": resources})
        if path == "/apis/batch/v1/namespaces/default/cronjobs/cj":
            return self._send(200, CRONJOB)
        return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.bodies.append((self.headers.get("Content-Type") or "", body))
        self._send(201, self.reply)


def _kubectl(kubectl: str, kubeconfig: Path, args: list[str], dry_run: bool) -> bytes:
    if dry_run:
        cut = args.index("--") if "--" in args else len(args)
        args = [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]]
    done = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", *args], capture_output=True, timeout=60, check=False)
    if done.returncode:
        sys.exit(f"kubectl {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default=str(DEFAULT_KUBECTL))
    options = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp, "kubeconfig")
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "u", "namespace": "default"}}],
        }))  # fmt: skip
        Path(tmp, "bin.dat").write_bytes(BINARY_FILE)
        runs = [(name, args, None) for name, args in COMMANDS.items()]
        runs += [(name, args, reply) for name, (args, reply) in REVIEWS.items()]
        for name, template, reply in runs:
            args = [a.replace("{tmp}", tmp) for a in template]
            expected = json.loads(_kubectl(options.kubectl, kubeconfig, args, dry_run=True)) if reply is None else None
            _Stub.bodies.clear()
            _Stub.reply = reply or expected
            _kubectl(options.kubectl, kubeconfig, args, dry_run=False)
            if len(_Stub.bodies) != 1 or _Stub.bodies[0][0] != "application/vnd.kubernetes.protobuf":
                sys.exit(f"{name}: expected one protobuf body, got {[t for t, _ in _Stub.bodies]}")
            (HERE / f"{name}.pb").write_bytes(_Stub.bodies[0][1])
            if expected is not None:
                (HERE / f"{name}.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
            print(f"{name}: {len(_Stub.bodies[0][1])} bytes")
    server.shutdown()


if __name__ == "__main__":
    main()
