"""Per-netns files under /etc/netns/<netns>/, which `ip netns exec` bind-mounts over /etc.

This is how a pod gets its own resolv.conf, hosts and hostname: its sandbox's pause is
started through `ip netns exec <lab>.<ns>.<pod>`, which bind-mounts each file of
/etc/netns/<that name>/ over the same file of /etc in a private mount namespace (nothing
is mounted machine-wide); the pod's programs join that mount namespace
(testbed.netns.sandbox writes hostname and hosts, build_pod resolv.conf).
The folders carry the lab's netns names, so teardown removes exactly the lab's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ETC_NETNS = Path("/etc/netns")


def resolv_conf(namespace: str, nameserver: str, domain: str = "cluster.local") -> str:
    """A pod's resolv.conf as the kubelet writes it (ClusterFirst DNS policy)."""
    return (
        f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
        f"nameserver {nameserver}\n"
        "options ndots:5\n"
    )


def write(netns: str, name: str, text: str, root: Path = ETC_NETNS) -> Path:
    folder = root / netns
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def remove(netns: str, root: Path = ETC_NETNS) -> None:
    shutil.rmtree(root / netns, ignore_errors=True)


def remove_with_prefix(prefix: str, root: Path = ETC_NETNS) -> list[str]:
    """Remove the folders of every netns named ``prefix...`` (a lab's ``<lab>.``)."""
    if not root.is_dir():
        return []
    removed = [p.name for p in root.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    for name in removed:
        shutil.rmtree(root / name, ignore_errors=True)
    return removed
