"""`testbed fail|heal`: break a lab on purpose, and undo it.

Targets: ``host H`` (every process of the host frozen with SIGSTOP and its fabric port
down: its pods stay, unreachable), ``link H`` (the fabric port only), ``agent H felix``
and ``agent H bgp`` (the process killed; the supervisor leaves it dead until `heal`),
``etcd`` (killed; `heal` starts it again on the same data dir, so nothing is lost). Failing
a process that had stopped already just records it, so that `heal` starts it again.

What is failed lives in ``faults.json`` in the lab's state folder, not in etcd: a failed
etcd could not record itself. The supervisor (``runtime/supervisor.py``) reads the same
file, so a process failed on purpose is not restarted behind the user's back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from testbed import naming
from testbed.netns import namespaces, processes
from testbed.runtime import state

FAULTS_FILE = "faults.json"
KINDS = ("host", "link", "agent", "etcd")
AGENTS = ("felix", "bgp")
USAGE = "expected: host HOST | link HOST | agent HOST felix|bgp | etcd"


class FaultError(RuntimeError):
    """A bad target, or a fault that cannot be made or undone (one line)."""


@dataclass(frozen=True)
class Fault:
    kind: str  # host, link, agent, etcd
    host: str | None = None
    agent: str | None = None  # felix or bgp, for kind "agent"
    since: float = 0.0

    @property
    def target(self) -> str:
        """How the user names it: ``agent host1 felix``."""
        return " ".join(p for p in (self.kind, self.host, self.agent) if p)

    def same(self, other: Fault) -> bool:
        return (self.kind, self.host, self.agent) == (other.kind, other.host, other.agent)


def parse_target(words: Sequence[str], hosts: Sequence[str]) -> Fault:
    """The fault ``words`` name (pure); FaultError with one line if they name none."""
    if not words:
        raise FaultError(f"no target ({USAGE})")
    kind, rest = words[0], list(words[1:])
    if kind not in KINDS:
        raise FaultError(f"unknown target {kind!r} ({USAGE})")
    if kind == "etcd":
        if rest:
            raise FaultError(f"etcd takes no arguments, got {' '.join(rest)!r}")
        return Fault("etcd")
    want = 2 if kind == "agent" else 1
    if len(rest) != want:
        raise FaultError(f"{kind} needs {'HOST felix|bgp' if kind == 'agent' else 'HOST'} ({USAGE})")
    host = rest[0]
    if host not in hosts:
        raise FaultError(f"host {host!r} is not a host of this lab (hosts: {', '.join(hosts) or '-'})")
    if kind == "agent":
        if rest[1] not in AGENTS:
            raise FaultError(f"unknown agent {rest[1]!r} (agents: {', '.join(AGENTS)})")
        return Fault("agent", host, rest[1])
    return Fault(kind, host)


def conflict(new: Fault, current: Sequence[Fault]) -> str | None:
    """Why ``new`` cannot be added to ``current`` (pure), or None."""
    for fault in current:
        if fault.same(new):
            return f"{new.target} is already failed (undo it with: testbed heal {new.target})"
        if new.kind != "etcd" and fault.kind == "host" and fault.host == new.host:
            return f"host {new.host} is failed as a whole: heal it first"
        if new.kind == "host" and fault.host == new.host:
            return f"{fault.target} is failed: heal it before failing the whole host"
    return None


def supervised_off(current: Sequence[Fault]) -> set[str]:
    """Process records (``felix host1``, ``bgp host1``) the supervisor must leave alone (pure)."""
    names = set()
    for fault in current:
        if fault.kind == "agent":
            names.add(f"{fault.agent} {fault.host}")
        elif fault.kind == "host":
            names |= {f"felix {fault.host}", f"bgp {fault.host}"}
        elif fault.kind == "etcd":
            names.add("etcd")
    return names


def hosts_of(names: Sequence[str]) -> list[str]:
    """The lab's hosts, from its recorded process names (pure): every host runs a policy
    agent, and etcd may be the thing that is down."""
    return sorted({n.split(" ", 1)[1] for n in names if n.startswith("felix ")})


# -- the record ---------------------------------------------------------------------------
def path(lab: str) -> Path:
    return state.folder(lab) / FAULTS_FILE


def load(lab: str) -> list[Fault]:
    try:
        data = json.loads(path(lab).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [Fault(**f) for f in data.get("faults", [])]


def save(lab: str, faults: Sequence[Fault]) -> None:
    target = path(lab)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"faults": [asdict(f) for f in faults]}, indent=2) + "\n")
    tmp.replace(target)


# -- acting on the lab ----------------------------------------------------------------------
def fail(lab: str, fault: Fault) -> Fault:
    """Make ``fault`` happen and record it; FaultError if it is already there."""
    current = load(lab)
    why = conflict(fault, current)
    if why:
        raise FaultError(why)
    fault = Fault(fault.kind, fault.host, fault.agent, time.time())
    # Recorded first: the supervisor must not restart what we are about to kill.
    save(lab, [*current, fault])
    try:
        _ACTIONS[fault.kind][0](lab, fault)
    except Exception:
        save(lab, current)
        raise
    return fault


def heal(lab: str, fault: Fault) -> Fault:
    """Undo a recorded ``fault``; FaultError if it is not failed."""
    current = load(lab)
    found = next((f for f in current if f.same(fault)), None)
    if found is None:
        failed = ", ".join(f.target for f in current) or "nothing"
        raise FaultError(f"{fault.target} is not failed (failed: {failed})")
    _ACTIONS[found.kind][1](lab, found)
    save(lab, [f for f in current if not f.same(found)])
    return found


def _port(lab: str, host: str, up: bool) -> None:
    argv = ["ip", "-n", naming.fabric_netns(lab), "link", "set", naming.fabric_port(host), "up" if up else "down"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise FaultError(f"{' '.join(argv)}: {done.stderr.strip() or 'failed'}")


def host_pids(lab: str, host: str) -> list[int]:
    """Every process in the host's netns: ExaBGP, its glue, the policy agent."""
    netns = naming.host_netns(lab, host)
    return sorted(namespaces.pids_by_netns([netns]).get(netns, []))


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _fail_host(lab: str, fault: Fault) -> None:
    assert fault.host
    _signal_all(host_pids(lab, fault.host), signal.SIGSTOP)
    _port(lab, fault.host, up=False)


def _heal_host(lab: str, fault: Fault) -> None:
    assert fault.host
    _port(lab, fault.host, up=True)
    _signal_all(host_pids(lab, fault.host), signal.SIGCONT)


def _fail_link(lab: str, fault: Fault) -> None:
    assert fault.host
    _port(lab, fault.host, up=False)


def _heal_link(lab: str, fault: Fault) -> None:
    assert fault.host
    _port(lab, fault.host, up=True)


def _recorded(lab: str, name: str) -> list[state.ProcessRecord]:
    recorded = state.load(lab)
    return [p for p in (recorded.processes if recorded else []) if p.name == name]


def _fail_agent(lab: str, fault: Fault) -> None:
    assert fault.host and fault.agent
    if fault.agent == "felix":
        pids = [p.pid for p in _recorded(lab, f"felix {fault.host}") if processes.is_ours(p.pid, p.start_time)]
    else:
        # ExaBGP and its glue: frozen together, then killed, so neither cleans up after the
        # other (a dead speaker's routes stay in its kernel, as a crashed BIRD's do).
        felix = {p.pid for p in _recorded(lab, f"felix {fault.host}")}
        pids = [pid for pid in host_pids(lab, fault.host) if pid not in felix]
        _signal_all(pids, signal.SIGSTOP)
    processes.kill(pids)  # none when it had stopped already: recorded as failed all the same


def _restart(lab: str, name: str) -> None:
    from testbed.runtime import supervisor

    try:
        supervisor.restart(lab, name)
    except (RuntimeError, OSError) as exc:
        raise FaultError(str(exc).splitlines()[0]) from exc


def _heal_agent(lab: str, fault: Fault) -> None:
    assert fault.host and fault.agent
    _restart(lab, f"{fault.agent} {fault.host}")


def _fail_etcd(lab: str, fault: Fault) -> None:
    pids = [p.pid for p in _recorded(lab, "etcd") if processes.is_ours(p.pid, p.start_time)]
    processes.kill(pids)


def _heal_etcd(lab: str, fault: Fault) -> None:
    _restart(lab, "etcd")


_ACTIONS = {
    "host": (_fail_host, _heal_host),
    "link": (_fail_link, _heal_link),
    "agent": (_fail_agent, _heal_agent),
    "etcd": (_fail_etcd, _heal_etcd),
}
