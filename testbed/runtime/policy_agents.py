"""The Felix-like policy agent in every host netns, and waiting until a change is enforced.

Each agent records in etcd (`/testbed/felix/<host>`) the etcd revision it enforces; a
change written at revision R is enforced everywhere once every host reports >= R.
"""

from __future__ import annotations

import sys
import time

from testbed import addressing, naming
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.netns import processes
from testbed.runtime import state

ENFORCE_TIMEOUT = 10.0


def agent_argv(lab: str, host: str) -> list[str]:
    etcd = f"{addressing.FABRIC_GATEWAY}:{addressing.ETCD_CLIENT_PORT}"
    return [sys.executable, "-m", "agents.felix.agent", "--lab", lab, "--host", host, "--etcd", etcd]


def start_agent(lab: str, host: str, lab_state: state.LabState) -> int:
    """Spawn and record host ``host``'s agent (at `up`, and when the supervisor restarts it).

    In the machine's mount namespace (``machine_mounts``): its kubelet creates pod netns,
    which must be visible to every process, not only inside a private mount namespace."""
    netns = naming.host_netns(lab, host)
    log = state.folder(lab) / "logs" / f"felix-{host}.log"
    proc = processes.spawn(netns, agent_argv(lab, host), log, machine_mounts=True)
    state.record_process(lab_state, f"felix {host}", netns, proc.pid)
    return proc.pid


def barrier(store: Datastore) -> int:
    """Write the key every agent watches; its revision follows every earlier write."""
    store.put(keys.BARRIER, {"updated": time.time()})
    return store.last_write_revision


def lagging(store: Datastore, hosts: list[str], revision: int) -> list[str]:
    """Hosts whose agent has not yet enforced ``revision`` (one read, whatever the hosts)."""
    statuses = store.list(keys.FELIX_STATUS)
    late = []
    for host in hosts:
        reported = statuses.get(keys.felix_status(host)) or {}
        if int(reported.get("revision", 0)) < revision:
            late.append(host)
    return late


def wait_enforced(store: Datastore, hosts: list[str], revision: int, timeout: float = ENFORCE_TIMEOUT) -> float:
    """Until every host's agent enforces ``revision``; seconds waited. TimeoutError names the late."""
    started = time.monotonic()
    while True:
        late = lagging(store, hosts, revision)
        if not late:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"policy not enforced within {timeout:g} s on {', '.join(late)} "
                f"(revision {revision}; see logs/felix-<host>.log in the lab's state folder)"
            )
        time.sleep(0.01)


def wait_enforced_everywhere(store: Datastore, revision: int | None = None, timeout: float = ENFORCE_TIMEOUT) -> float:
    """``wait_enforced`` on every host the lab records, up to ``revision`` (None: a fresh
    barrier, which follows every earlier write); seconds waited."""
    hosts = [records.node_summary(v).name for v in store.list(keys.NODES).values()]
    return wait_enforced(store, hosts, barrier(store) if revision is None else revision, timeout)
