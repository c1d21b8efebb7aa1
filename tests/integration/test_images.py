"""The images in a real lab: nginx pods serve the lab's page from their own files, the
busybox shell's wget is ours (it has --timeout), and `testbed down` stops every nginx.

One lab (tests/data/topologies/images.yaml) for the module: two nginx pods on two hosts,
an idle busybox pod to fetch from, a busybox pod running `sleep`.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.apps import nginx
from testbed import images
from testbed.netns import processes, sandbox
from testbed.runtime import state
from tests.integration.labs import REPO, lab_netns, running_lab, status_json

pytestmark = pytest.mark.root

TOPOLOGY = str(REPO / "tests" / "data" / "topologies" / "images.yaml")
UNUSED_POD_IP = "10.65.0.50"  # in host1's block, no pod: host1's blackhole drops it silently
MACHINE_NGINX = (Path("/var/log/nginx"), Path("/var/lib/nginx"), Path("/run/nginx.pid"), Path("/etc/nginx"))


def _listing(paths: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    """Every file under the machine's own nginx folders: (size, mtime)."""
    found: dict[str, tuple[int, int]] = {}
    for top in paths:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


@dataclass(frozen=True)
class Lab:
    name: str
    pods: dict[str, dict[str, Any]]  # "ns/name" -> its row in `testbed status -o json`

    def netns(self, pod: str) -> str:
        return str(self.pods[pod]["netns"])

    def ip(self, pod: str) -> str:
        return str(self.pods[pod]["ip"])


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    machine_before = _listing(MACHINE_NGINX)
    with running_lab(TOPOLOGY, "img") as name:
        up = Lab(name, {f"{p['namespace']}/{p['name']}": p for p in status_json(name)["pods"]})
        yield up
        nginx_pids = [pid for key in ("web/nginx-1", "web/nginx-2") for pid in _pids(up.netns(key))]
        assert len(nginx_pids) == 4  # a master and a worker each
    # running_lab has run `testbed down`: no netns left, nor any nginx of the lab.
    assert lab_netns(name) == []
    assert [pid for pid in nginx_pids if processes.is_alive(pid)] == []
    assert not state.folder(name).exists()
    assert _listing(MACHINE_NGINX) == machine_before  # the machine's nginx files untouched


def _pids(netns: str) -> list[int]:
    """The pod's program's processes: those in its netns but its sandbox's pause."""
    return sandbox.container_pids(netns)


def _pid_in_pod(pid: int) -> int:
    """The PID a process has in its pod's PID namespace (the last of its NSpid line)."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:"))
    return int(line.split()[-1])


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _in_pod(lab: Lab, pod: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a busybox pod, as `kubectl exec` runs it (interactive_argv)."""
    argv, env = images.interactive_argv("busybox", command)
    netns_argv = ["ip", "netns", "exec", lab.netns(pod), *argv]
    return subprocess.run(netns_argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=20)


def test_nginx_pods_serve_the_labs_page(lab: Lab) -> None:
    for key in ("web/nginx-1", "web/nginx-2"):
        fetched = _in_pod(lab, "web/access", "wget", "-q", lab.ip(key), "-O", "-")
        assert (fetched.returncode, fetched.stderr) == (0, "")
        assert fetched.stdout == nginx.page()
        assert "<title>Welcome to nginx!</title>" in fetched.stdout


def test_nginx_runs_on_its_pods_own_files(lab: Lab) -> None:
    masters = {}
    for key in ("web/nginx-1", "web/nginx-2"):
        folder = state.folder(lab.name) / "pods" / key.replace("/", ".")
        pids = _pids(lab.netns(key))
        assert {_comm(p) for p in pids} == {"nginx"}
        (master,) = [p for p in pids if Path(f"/proc/{p}/cmdline").read_text().startswith("nginx: master")]
        masters[key] = master
        assert (folder / "nginx.conf").read_text() == nginx.render_config(folder)
        # nginx writes its PID as the pod sees it (its own PID namespace)
        assert int((folder / "nginx.pid").read_text()) == _pid_in_pod(master)
        assert (folder / "logs" / "access.log").exists()
    assert masters["web/nginx-1"] != masters["web/nginx-2"]


def test_busybox_shell_wget_has_timeout(lab: Lab) -> None:
    started = time.monotonic()
    timed_out = _in_pod(lab, "web/access", "sh", "-c", f"wget -q --timeout=1 {UNUSED_POD_IP} -O -")
    elapsed = time.monotonic() - started
    assert (timed_out.returncode, timed_out.stdout, timed_out.stderr) == (1, "", "wget: download timed out\n")
    assert 0.9 <= elapsed < 5, elapsed
    web = lab.ip("web/nginx-1")
    refused = _in_pod(lab, "web/access", "sh", "-c", f"wget -q {web}:81 -O -")
    refused_line = f"wget: can't connect to remote host ({web}): Connection refused\n"
    assert (refused.returncode, refused.stderr) == (1, refused_line)


def test_busybox_command_runs_with_our_path(lab: Lab) -> None:
    (pid,) = _pids(lab.netns("web/sleeper"))
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00600\x00"
    environ = dict(line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_text().split("\0") if line)
    assert environ["PATH"].split(":")[0] == str(images.BUSYBOX_BIN)
    assert os.readlink(f"/proc/{pid}/cwd") == "/"


def test_interactive_shell_shows_a_containers_prompt(lab: Lab) -> None:
    """`kubectl run -ti --image busybox /bin/sh`: `/ # `, no banner, our wget, exit code."""
    argv, env = images.interactive_argv("busybox", ("/bin/sh",))
    session = _PtySession(["ip", "netns", "exec", lab.netns("web/access"), *argv], {**os.environ, **env})
    try:
        first = session.read_until("/ # ")
        assert "BusyBox v" not in first and "built-in shell" not in first
        session.send(f"wget -q --timeout=1 {UNUSED_POD_IP} -O -\n")
        assert "wget: download timed out" in session.read_until("/ # ")
        session.send("cd /tmp\n")
        assert session.read_until("/tmp # ")
        session.send("exit 3\n")
        assert session.wait() == 3
    finally:
        session.close()


class _PtySession:
    """A program on a new pseudo-terminal that is its controlling terminal, as a user's shell."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=controlling_tty
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} after {timeout} s; the terminal shows {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the session ended before {text!r}; the terminal shows {self.seen!r}")
                self.seen += chunk.decode(errors="replace").replace("\r", "")
        upto = self.seen.index(text) + len(text)
        shown, self.seen = self.seen[:upto], self.seen[upto:]
        return shown

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)
