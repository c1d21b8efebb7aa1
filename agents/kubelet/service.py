"""The kubelet inside a host agent's process: two threads (the pod loop and the heartbeat),
each with its own etcd client (a client's ``last_write_revision`` is then its thread's).
Stopping it leaves the containers running, as stopping a kubelet does; the next start
adopts them.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from agents.kubelet import local
from agents.kubelet.cni import CniNetwork
from agents.kubelet.containers import ProcessRuntime
from agents.kubelet.kubelet import Kubelet
from agents.kubelet.node import Heartbeat
from agents.kubelet.prober import ThreadProber
from testbed.datastore.etcd import EtcdDatastore
from testbed.runtime import state

LOG = logging.getLogger("agents.kubelet")
JOIN_SECONDS = 5.0


@dataclass
class Service:
    stop_event: threading.Event
    threads: tuple[threading.Thread, ...]
    stores: tuple[EtcdDatastore, ...]

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(JOIN_SECONDS)
        for store in self.stores:
            store.close()


def same_mounts_as_init() -> bool:
    """Is this process in PID 1's mount namespace (where the CLI sees the netns it makes)?"""
    try:
        return os.stat("/proc/self/ns/mnt").st_ino == os.stat("/proc/1/ns/mnt").st_ino
    except OSError:
        return True  # cannot tell: say nothing


def start(lab: str, host: str, etcd_host: str, etcd_port: int) -> Service:
    if not same_mounts_as_init():
        LOG.warning("this process has a mount namespace of its own: pod netns it creates are invisible "
                    "elsewhere (start it with nsenter --net, not ip netns exec)")  # fmt: skip
    pods = EtcdDatastore.over_tcp(etcd_host, etcd_port)
    beats = EtcdDatastore.over_tcp(etcd_host, etcd_port)
    file = local.path(state.folder(lab), host)
    kubelet = Kubelet(pods, lab, host, ProcessRuntime(lab), CniNetwork(lab, pods, host), file=file)
    kubelet.prober = ThreadProber(kubelet.on_probe)
    stop = threading.Event()
    threads = (
        threading.Thread(target=kubelet.run, args=(stop,), name="kubelet", daemon=True),
        threading.Thread(target=Heartbeat(beats, host).run, args=(stop,), name="kubelet-heartbeat", daemon=True),
    )
    for thread in threads:
        thread.start()
    LOG.info("started for host %s (state in %s)", host, file)
    return Service(stop, threads, (pods, beats))
