"""A pytest plugin for users' own suites: real labs as fixtures, checks that read like
experiments (issue 7).

Load it with ``pytest -p testbed.pytest_plugin`` (installed, it loads itself through the
``pytest11`` entry point). Tests run as root, like every lab command::

    def test_isolation(testbed_lab):
        lab = testbed_lab("netpol-model")
        lab.apply("tests/data/policies/deny-all-ingress.yaml")
        assert not lab.reachable("y/a", "x/b", 80)
        assert lab.trace("y/a", "x/b:80").verdict_line.startswith("DROPPED at host2")

``testbed_lab`` labs live for one test, ``testbed_module_lab`` labs for the module (a lab
takes seconds to build; share it when the tests clean up after themselves). Each lab gets
a name no other run uses, and teardown fails the test if any of its namespaces remain.

Everything goes through ``testbed.api`` and the trace package in this process: no CLI
subprocess, so a failing helper raises the library's own error with its message.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testbed import api, naming
from testbed.kube import sources
from testbed.matrix import Matrix, PodRef, probe_from

if TYPE_CHECKING:  # scapy is imported only when a trace runs
    from testbed.trace.model import TraceResult

LabFactory = Callable[..., "Lab"]
_serial = itertools.count(1)


def unique_name(prefix: str) -> str:
    """``prefix-<pid>-<n>``: unique among the labs of every process on the machine (pids
    are), and among the labs of this one (n); cut to the lab-name limit."""
    tail = f"-{os.getpid()}-{next(_serial)}"
    return prefix[: naming.MAX_LAB - len(tail)].rstrip("-") + tail


def manifest_documents(manifest: str | Path | Sequence[str | Path], verb: str = "apply") -> list[sources.Document]:
    """The documents of a manifest given as YAML text, or as paths (files, directories:
    read as `kubectl -f PATH...` reads them)."""
    if isinstance(manifest, str) and ("\n" in manifest or not _looks_like_path(manifest)):
        return sources.text_documents(manifest, verb=verb)
    paths = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
    return sources.read_documents([str(p) for p in paths], verb=verb)


def _looks_like_path(text: str) -> bool:
    return Path(text).exists() or text.endswith(sources.FILE_EXTENSIONS)


@dataclass(frozen=True)
class Lab:
    """A running lab and the checks a test makes on it. Every change waits until every
    host's agent enforces it, so the next check sees the new policy."""

    name: str
    topology: str

    def status(self) -> api.LabStatus:
        return api.status(self.name)

    def pod(self, prefix: str) -> str:
        """The ``ns/pod`` whose name starts with ``prefix`` (``stars/frontend`` for the
        ReplicationController's ``stars/frontend-7wwgc``); exactly one must match."""
        keys = [f"{p.namespace}/{p.name}" for p in self.status().pods]
        if prefix in keys:
            return prefix
        found = [k for k in keys if k.startswith(prefix + "-")]
        if len(found) != 1:
            raise api.LabError(f"lab {self.name}: {len(found)} pods match {prefix!r}: {', '.join(found) or 'none'}")
        return found[0]

    def apply(self, manifest: str | Path | Sequence[str | Path], namespace: str | None = None) -> list[str]:
        """`kubectl apply -f` of paths (files, directories) or of YAML text; kubectl's
        lines once enforced. ``namespace``: as `-n` (an object naming another is refused)."""
        return _store(self.name, manifest, namespace, create_only=False)

    def create(self, manifest: str | Path | Sequence[str | Path], namespace: str | None = None) -> list[str]:
        """`kubectl create -f`: as ``apply``, but an object that exists is an error."""
        return _store(self.name, manifest, namespace, create_only=True)

    def delete(self, kind: str, *names: str, namespace: str = "default") -> list[str]:
        """`kubectl delete KIND NAME... -n NS` (no names: `--all`), once enforced."""
        from testbed.kube import edits, removal, waits

        plural = edits.resource(kind)
        scope = namespace if edits.is_namespaced(plural) else None
        with api.datastore(self.name) as store:
            chosen = names or tuple(v["metadata"]["name"] for v in edits.get(store, plural, scope))
            deleted = removal.request_deletion(store, [(plural, scope, n) for n in chosen])
            if deleted.changes:
                waits.settle(store, gone=deleted.pending)
        return [c.line() for c in deleted.changes]

    def reachable(self, src: str, dst: str, port: int, protocol: str = "tcp") -> bool:
        """A real connection (TCP handshake, UDP answer) from ``src`` to ``dst``: pods as
        ``ns/pod``, hosts, addresses, or a Service as ``ns/svc`` or its ClusterIP."""
        from testbed.trace import run

        facts = run.read_facts(self.name)
        source = run.resolve_source(facts, src)
        target = run.resolve_target(facts, f"{dst}:{port}", protocol)
        ref = PodRef(source.name, source.ip, source.netns)
        return probe_from(ref, [PodRef(dst, target.address, "")], port, protocol)[0]

    def matrix(self, port: int, protocol: str = "tcp", namespaces: Sequence[str] = (), all_namespaces: bool = False) -> Matrix:
        """Every pod to every pod (or those of ``namespaces``; kube-system only if named or
        with ``all_namespaces``), measured; ``.cells[i][j]``."""
        return api.matrix(self.name, port, protocol, namespaces, all_namespaces)

    def expected(self, measured: Matrix) -> Matrix:
        """What the policies mean for the same pods (the oracle), to compare with ``matrix``."""
        return api.expected_matrix(self.name, measured)

    def trace(self, src: str, dst: str, protocol: str = "tcp", what_if: bool = False) -> TraceResult:
        """`testbed trace SRC DST[:PORT]`: a TraceResult (``.verdict_line``, ``.hops``,
        ``.differences``, ``.to_json()``); ``what_if``: computed, nothing sent."""
        from testbed.trace import run

        return run.trace(self.name, src, dst, protocol, only_what_if=what_if)


def _store(lab: str, manifest: str | Path | Sequence[str | Path], namespace: str | None, create_only: bool) -> list[str]:
    from testbed.kube import objects, waits

    documents = manifest_documents(manifest, "create" if create_only else "apply")
    parsed = objects.parse_documents(documents, namespace or "default", enforce_namespace=namespace is not None)
    with api.datastore(lab) as store:
        changes = objects.store_objects(
            store, lab, parsed, create_only=create_only, sources=[d.source for d in documents]
        )
        waits.settle(store, [c.key for c in changes])
    return [c.line() for c in changes]


@contextmanager
def lab_up(topology: str, prefix: str | None = None, **options: object) -> Iterator[Lab]:
    """A lab up for the block, down after it (even on failure); then none of its
    namespaces may remain. ``options`` go to ``testbed.api.up`` (``hosts``, ...)."""
    name = unique_name(prefix or Path(topology).stem)
    options.setdefault("ui_port", None)  # never take a port on localhost behind the user's back
    options.setdefault("kubeconfig", False)  # nor write the user's kubeconfig
    try:
        api.up(topology, name=name, **options)  # type: ignore[arg-type]
        yield Lab(name, topology)
    finally:
        api.down(name)
        left = sorted(n for n in _netns() if n.startswith(naming.netns_prefix(name)))
        if left:
            raise AssertionError(f"lab {name}: namespaces left behind: {', '.join(left)}")


def _netns() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


@contextmanager
def _factory() -> Iterator[LabFactory]:
    """Labs made through the factory go down in reverse order when the block ends."""
    with ExitStack() as stack:
        yield lambda topology, prefix=None, **options: stack.enter_context(lab_up(topology, prefix, **options))


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("testbed labs need root (namespaces, iptables)")


@pytest.fixture
def testbed_lab() -> Iterator[LabFactory]:
    """``testbed_lab(topology, prefix=None, **up_options) -> Lab``; down after the test."""
    _need_root()
    with _factory() as make:
        yield make


@pytest.fixture(scope="module")
def testbed_module_lab() -> Iterator[LabFactory]:
    """As ``testbed_lab``, but the labs live until the module's last test."""
    _need_root()
    with _factory() as make:
        yield make
