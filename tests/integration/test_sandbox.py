"""Pods as sandboxes in a real lab: what a command run through `testbed exec` and
`testbed kubectl exec` sees (hostname, processes, files, capabilities), containers started
through the sandbox API (uid, capabilities, exit status, signals), and nothing left after
`down` (no netns, no process, no mount of the lab).

One two-hosts lab for the module (four idle busybox pods: each has a sandbox only).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.netns import etc_files, sandbox, security
from testbed.runtime import state
from tests.integration.labs import REPO, running_lab, status_json, testbed

pytestmark = pytest.mark.root

CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN = 12, 13, 21


def _leftovers(lab: str) -> list[str]:
    """Processes and mounts that still carry the lab's name, anywhere on the machine."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{lab}." in cmdline or f"/{lab}/" in cmdline:
            found.append(f"process {entry}: {cmdline}")
    found += [f"mount: {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines() if lab in line]
    return found


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("two-hosts", "sandbox") as name:
        yield name
    assert _leftovers(name) == []


@pytest.fixture(scope="module")
def ips(lab: str) -> dict[str, str]:
    return {f"{p['namespace']}/{p['name']}": p["ip"] for p in status_json(lab)["pods"]}


def in_pod(lab: str, pod: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`testbed exec NS/POD -- sh -c SCRIPT`, as a user types it."""
    return testbed("exec", "--lab", lab, pod, "--", "sh", "-c", script, check=check)


def kubectl_exec(lab: str, pod: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    namespace, name = pod.split("/")
    return testbed("kubectl", "--lab", lab, "exec", "-n", namespace, name, "--", *argv, check=check)


def _caps(status: str, field: str = "CapEff") -> int:
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1], 16)


def test_hostname_is_the_pods_name(lab: str) -> None:
    assert in_pod(lab, "demo/pod-a", "hostname").stdout.strip() == "pod-a"
    assert kubectl_exec(lab, "demo/pod-c", "hostname").stdout.strip() == "pod-c"
    assert kubectl_exec(lab, "demo/pod-c", "cat", "/etc/hostname").stdout.strip() == "pod-c"


def test_ps_shows_only_the_pods_processes(lab: str) -> None:
    out = kubectl_exec(lab, "demo/pod-a", "ps", "-e", "-o", "pid=,args=").stdout
    rows = [line.split(None, 1) for line in out.strip().splitlines()]
    assert rows[0][0] == "1" and "pause" in rows[0][1], out  # the pause is PID 1
    assert len(rows) <= 4, out  # pause, its sleep, ps itself (and the exec's shell, if any)
    assert not any("etcd" in args or "felix" in args or "exabgp" in args for _, args in rows), out


def test_no_other_namespace_can_be_entered(lab: str) -> None:
    done = in_pod(lab, "demo/pod-a", f"ip netns exec {lab}.demo.pod-b true", check=False)
    assert done.returncode != 0
    assert in_pod(lab, "demo/pod-a", "ls -A /run/netns").stdout.split() == [f"{lab}.demo.pod-a"]  # its own only
    done = in_pod(lab, "demo/pod-a", f"ip netns exec {lab}.demo.pod-a true", check=False)  # no CAP_SYS_ADMIN
    assert done.returncode != 0
    done = in_pod(lab, "demo/pod-a", "nsenter --target 1 --net true", check=False)  # even its own: no SYS_ADMIN
    assert done.returncode != 0


def test_the_lab_state_is_hidden_but_the_pods_own_folder(lab: str) -> None:
    assert in_pod(lab, "demo/pod-a", "ls -A /run/testbed").stdout.split() == [lab]
    assert in_pod(lab, "demo/pod-a", f"ls -A /run/testbed/{lab}").stdout.split() == ["pods"]
    assert in_pod(lab, "demo/pod-a", f"ls -A /run/testbed/{lab}/pods").stdout.split() == ["demo.pod-a"]
    socket = state.folder(lab) / "etcd.sock:2379"
    assert socket.is_socket()  # the machine has it; the pod does not
    assert in_pod(lab, "demo/pod-a", f"test -e '{socket}'", check=False).returncode != 0
    assert in_pod(lab, "demo/pod-a", f"test -e '{state.folder(lab) / state.STATE_FILE}'", check=False).returncode != 0
    # the pod's folder is the machine's, read-write, at the same path
    folder = state.folder(lab) / "pods" / "demo.pod-a"
    in_pod(lab, "demo/pod-a", f"echo from-the-pod > {folder}/note")
    assert (folder / "note").read_text() == "from-the-pod\n"


def test_the_machine_is_read_only_but_tmp_which_is_the_pods_own(lab: str, tmp_path: Path) -> None:
    for path in ("/etc/sandbox-test", "/usr/sandbox-test", "/root/sandbox-test", "/sandbox-test"):
        done = in_pod(lab, "demo/pod-a", f"echo x > {path}", check=False)
        assert done.returncode != 0 and "Read-only file system" in done.stderr, path
        assert not Path(path).exists()
    assert in_pod(lab, "demo/pod-a", "echo x > /tmp/mine && cat /tmp/mine").stdout == "x\n"
    assert not Path("/tmp/mine").exists()
    marker = Path("/tmp") / f"sandbox-marker-{os.getpid()}"
    marker.write_text("machine")
    try:
        assert in_pod(lab, "demo/pod-a", f"test -e {marker}", check=False).returncode != 0
    finally:
        marker.unlink()
    assert in_pod(lab, "demo/pod-b", "test -e /tmp/mine", check=False).returncode != 0  # another pod's /tmp
    assert sorted(in_pod(lab, "demo/pod-a", "ls /dev").stdout.split()) == sorted(
        ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]
    )


def test_resolv_conf_and_hosts_are_the_pods(lab: str, ips: dict[str, str]) -> None:
    hosts = in_pod(lab, "demo/pod-b", "cat /etc/hosts").stdout
    assert f"{ips['demo/pod-b']}\tpod-b" in hosts.splitlines()
    assert "127.0.0.1\tlocalhost" in hosts.splitlines()
    assert "search demo.svc.cluster.local" in in_pod(lab, "demo/pod-b", "cat /etc/resolv.conf").stdout


def test_capabilities_are_a_container_runtimes_default(lab: str, ips: dict[str, str]) -> None:
    status = kubectl_exec(lab, "demo/pod-a", "cat", "/proc/self/status").stdout
    caps = _caps(status)
    assert not caps & (1 << CAP_SYS_ADMIN) and not caps & (1 << CAP_NET_ADMIN)
    assert caps & (1 << CAP_NET_RAW)
    assert "NoNewPrivs:\t1" in status
    done = in_pod(lab, "demo/pod-a", "ip addr add 127.0.0.2/8 dev lo", check=False)
    assert done.returncode != 0 and "not permitted" in done.stderr
    # NET_RAW: ping to a pod on the other host still works
    done = in_pod(lab, "demo/pod-a", f"ping -c 1 -W 3 {ips['demo/pod-c']}")
    assert "1 received" in done.stdout


def _container(lab: str, pod: str, argv: list[str], context: dict | None, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    pause = sandbox.find(f"{lab}.{pod.replace('/', '.')}")
    assert pause is not None
    log = tmp_path / f"{pod.replace('/', '.')}-{time.monotonic_ns()}.log"
    proc = sandbox.start_container(pause, argv, log, security=security.resolve(None, context))
    return proc, log


def test_run_as_user_1000_runs_as_uid_1000(lab: str, tmp_path: Path) -> None:
    proc, log = _container(lab, "demo/pod-b", ["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"], {"runAsUser": 1000}, tmp_path)
    assert proc.wait(10) == 0
    uid, gid, capeff = log.read_text().splitlines()
    assert (uid, gid) == ("1000", "0")
    assert int(capeff.split()[1], 16) == 0
    pause = sandbox.find(f"{lab}.demo.pod-b")
    assert pause is not None
    who = security.resolve({"runAsGroup": 3000}, {"runAsUser": 1000})
    done = subprocess.run(sandbox.exec_argv(pause, ["sh", "-c", "id -u; id -g"], who), capture_output=True, text=True, timeout=10)
    assert done.stdout.split() == ["1000", "3000"]


def test_capabilities_add_net_admin_gives_it(lab: str, tmp_path: Path) -> None:
    script = "grep CapEff /proc/self/status; ip addr add 127.0.0.2/8 dev lo && ip addr del 127.0.0.2/8 dev lo && echo changed"
    proc, log = _container(lab, "demo/pod-d", ["sh", "-c", script], {"capabilities": {"add": ["NET_ADMIN"]}}, tmp_path)
    assert proc.wait(10) == 0, log.read_text()
    capeff, changed = log.read_text().splitlines()
    assert _caps(capeff) & (1 << CAP_NET_ADMIN) and not _caps(capeff) & (1 << CAP_SYS_ADMIN)
    assert changed == "changed"
    proc, log = _container(lab, "demo/pod-d", ["sh", "-c", "ping -c 1 -W 2 127.0.0.1"], {"capabilities": {"drop": ["NET_RAW"]}}, tmp_path)
    assert proc.wait(10) != 0  # NET_RAW dropped: no ping
    proc, log = _container(lab, "demo/pod-d", ["sh", "-c", "grep -E 'CapEff|NoNewPrivs' /proc/self/status"], {"privileged": True}, tmp_path)
    assert proc.wait(10) == 0
    capeff, nnp = log.read_text().splitlines()
    assert _caps(capeff) & (1 << CAP_SYS_ADMIN) and nnp.split()[1] == "0"


def test_a_containers_popen_is_its_program_exit_status_and_signals(lab: str, tmp_path: Path) -> None:
    proc, _ = _container(lab, "demo/pod-c", ["sh", "-c", "exit 7"], None, tmp_path)
    assert proc.wait(10) == 7
    proc, _ = _container(lab, "demo/pod-c", ["sleep", "60"], None, tmp_path)
    time.sleep(0.2)
    assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"  # the PID is the program's
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    # SIGTERM reaches the program itself: its trap runs
    proc, log = _container(lab, "demo/pod-c", ["sh", "-c", "trap 'echo got-TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done"], None, tmp_path)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.terminate(proc, grace=5) == 3
    assert "got-TERM" in log.read_text()
    # a program that ignores SIGTERM is SIGKILLed after the grace period
    proc, log = _container(lab, "demo/pod-c", ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"], None, tmp_path)
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    assert sandbox.terminate(proc, grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 3


def test_two_containers_share_the_pods_namespaces(lab: str, tmp_path: Path) -> None:
    first, _ = _container(lab, "demo/pod-b", ["sh", "-c", "echo shared > /tmp/from-first; sleep 30"], None, tmp_path)
    try:
        deadline = time.monotonic() + 10
        second, log = _container(lab, "demo/pod-b", ["sh", "-c", "until test -e /tmp/from-first; do sleep 0.05; done; hostname; cat /tmp/from-first; ps -e -o args="], None, tmp_path)
        assert second.wait(10) == 0
        lines = log.read_text().splitlines()
        assert lines[:2] == ["pod-b", "shared"]
        assert any(line.startswith("sh -c echo shared") for line in lines), lines  # the other container's process
        assert time.monotonic() < deadline
    finally:
        first.kill()
        first.wait()


def test_kubectl_exec_on_a_pty_runs_in_the_sandbox(lab: str) -> None:
    """`kubectl exec -ti` on a terminal: stdio is the terminal, the command runs in the pod."""
    argv = [sys.executable, "-m", "testbed", "kubectl", "--lab", lab, "exec", "-ti", "-n", "demo", "pod-a", "--",
            "sh", "-c", "test -t 0 && test -t 1 && echo on-a-terminal; hostname; exit 4"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, on the terminal
        os.chdir(REPO)
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    lines = output.decode(errors="replace").replace("\r\n", "\n").splitlines()
    assert lines[-2:] == ["on-a-terminal", "pod-a"], lines
    assert os.waitstatus_to_exitcode(status) == 4


def test_exec_falls_back_to_the_netns_with_one_line_when_the_sandbox_is_gone(lab: str) -> None:
    netns = f"{lab}.demo.pod-d"
    pause = sandbox.find(netns)
    assert pause is not None
    os.kill(pause, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while sandbox.find(netns) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    done = in_pod(lab, "demo/pod-d", "ip -o addr show eth0")
    assert "warning: pod demo/pod-d has no sandbox" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "10.65." in done.stdout
    done = kubectl_exec(lab, "demo/pod-d", "true")
    assert done.stderr.count("\n") == 1 and "no sandbox" in done.stderr


def test_deleting_a_pod_stops_its_sandbox(lab: str) -> None:
    netns = f"{lab}.demo.pod-b"
    pause = sandbox.find(netns)
    assert pause is not None
    testbed("kubectl", "--lab", lab, "delete", "pod", "-n", "demo", "pod-b")
    assert not Path(f"/proc/{pause}").exists() or Path(f"/proc/{pause}/stat").read_text().split()[2] == "Z"
    assert _leftovers_of(netns) == []


def _leftovers_of(netns: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if netns in cmdline:
                found.append(cmdline)
    return found


def _mount_table(pid: int, netns: str) -> list[str]:
    """The pause's mounts: where, options and filesystem, the netns' name and inode left out."""
    rows = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        row = " ".join(fields[4:6]) + " " + " ".join(right.split()[:1] + right.split()[2:])
        rows.append(row.replace(netns, "NETNS"))
    return rows


def test_fork_and_exec_make_the_same_sandbox(lab: str) -> None:
    """The fork method (the default: no new interpreter) does what `ip netns exec` + the
    init program do: same mounts (its /sys, /etc files), environment and view inside."""
    seen = {}
    for method in sandbox.METHODS:
        netns, pod = f"{lab}.method-{method}", f"m-{method}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        try:
            etc_files.write(netns, "resolv.conf", "nameserver 10.66.0.10\n")
            folder = state.folder(lab) / "pods" / f"test.{pod}"
            record = state.folder(lab) / "sandboxes" / netns
            pid = sandbox.launch_sandbox(
                lab, "test", pod, netns, "10.65.250.1", folder, method=method, state_root=state.root(), record=record
            ).wait()
            assert sandbox.find(netns, record) == sandbox.find(netns) == pid  # the record names the pause the scan finds
            inside = subprocess.run(
                ["nsenter", f"--target={pid}", "--uts", "--net", "--mount", "--pid", "--", "sh", "-c",
                 "hostname; cat /etc/resolv.conf /etc/hosts; ls /sys/class/net /run/netns /dev; ps -o args"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            seen[method] = (
                [row.replace(pod, "POD") for row in _mount_table(pid, netns)],
                Path(f"/proc/{pid}/environ").read_bytes(),
                sorted(os.listdir(f"/proc/{pid}/fd")),
                inside.replace(method, "METHOD"),
            )
        finally:
            sandbox.stop(netns, grace=0.5)
            assert sandbox.find(netns, state.folder(lab) / "sandboxes" / netns) is None  # a stale record names nothing
            subprocess.run(["ip", "netns", "del", netns], check=True)
            etc_files.remove(netns)
    assert seen["fork"] == seen["exec"]
    mounts, environ, fds, inside = seen["fork"]
    assert any(m.split()[0] == "/sys" and m.split()[2] == "sysfs" for m in mounts)  # the netns' own /sys
    assert environ.split(b"\0")[0].startswith(b"PATH=") and environ.count(b"\0") == 1
    assert fds == ["0", "1", "2"]
    assert "nameserver 10.66.0.10" in inside and "10.65.250.1\tm-METHOD" in inside
