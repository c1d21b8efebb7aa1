"""The lab's controller manager process: started by `up`, restarted by the supervisor.

One process per lab, in the lab's fabric netns (beside etcd, which it reaches over the
fabric like the agents do), recorded as ``controller-manager`` in the lab's state.
"""

from __future__ import annotations

import sys

from testbed import addressing, naming
from testbed.netns import processes
from testbed.runtime import state

NAME = "controller-manager"


def manager_argv(lab: str) -> list[str]:
    """Its options (the pod eviction timeout) come from the lab's record in etcd, so that a
    restart by the supervisor needs nothing but the lab's name."""
    etcd = f"{addressing.FABRIC_GATEWAY}:{addressing.ETCD_CLIENT_PORT}"
    return [sys.executable, "-m", "testbed.controllers.manager", "--lab", lab, "--etcd", etcd]


def start_manager(lab: str, lab_state: state.LabState) -> int:
    """Spawn and record the lab's controller manager; its PID."""
    netns = naming.fabric_netns(lab)
    log = state.folder(lab) / "logs" / f"{NAME}.log"
    proc = processes.spawn(netns, manager_argv(lab), log)
    state.record_process(lab_state, NAME, netns, proc.pid)
    return proc.pid
