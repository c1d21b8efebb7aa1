"""A container's securityContext -> who its program runs as: uid, gid, capabilities, no_new_privs.

Pure. ``resolve(pod_context, container_context)`` checks the two manifest dicts (the pod's
``spec.securityContext`` and the container's ``securityContext``) the way the API server
and the kubelet do, and returns a ``Security``; ``setpriv_argv`` turns it into the
``setpriv`` words that come before the program.

What a container gets, as containerd and Docker give it by default:

- uid 0, gid 0, no supplementary groups; ``runAsUser``, ``runAsGroup`` (container over
  pod) and the pod's ``supplementalGroups`` change that; ``runAsNonRoot: true`` with
  uid 0 is refused, as the kubelet refuses to start such a container;
- the capability bounding set ``DEFAULT_CAPABILITIES`` (no SYS_ADMIN, NET_ADMIN,
  SYS_PTRACE...; NET_RAW is there, so ping works), then ``capabilities.add`` and
  ``.drop`` as containerd applies them: ``add: [ALL]`` first, then ``drop: [ALL]``,
  then each named add, then each named drop (``drop: [ALL]`` + ``add: [NET_BIND_SERVICE]``
  keeps that one). Names are given with or without ``CAP_``, in any case;
- uid 0 holds the whole bounding set as effective capabilities; any other uid holds none
  (its bounding set still limits what a setuid or file-capability program may gain), as in
  Kubernetes, which sets no ambient capabilities;
- no_new_privs on, so setuid and file capabilities grant nothing. (Kubernetes sets it
  only for ``allowPrivilegeEscalation: false``; here it is on unless the container says
  ``allowPrivilegeEscalation: true`` or is privileged.)
- ``privileged: true``: every capability, no no_new_privs.

Other fields Kubernetes defines (seccompProfile, seLinuxOptions, readOnlyRootFilesystem:
the pod's filesystem is read-only anyway...) are accepted and have no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SETPRIV = "setpriv"

# Kernel order (linux/capability.h): bit n is ALL_CAPABILITIES[n].
ALL_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
# containerd's and Docker's default set (oci/spec.go, defaultUnixCaps).
DEFAULT_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})  # fmt: skip
MAX_ID = 2147483647

POD_FIELDS = (
    "runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "supplementalGroupsPolicy",
    "fsGroup", "fsGroupChangePolicy", "seLinuxOptions", "seccompProfile", "appArmorProfile",
    "sysctls", "windowsOptions", "seLinuxChangePolicy",
)  # fmt: skip
CONTAINER_FIELDS = (
    "runAsUser", "runAsGroup", "runAsNonRoot", "capabilities", "privileged", "allowPrivilegeEscalation",
    "readOnlyRootFilesystem", "procMount", "seLinuxOptions", "seccompProfile", "appArmorProfile",
    "windowsOptions",
)  # fmt: skip


class SecurityError(ValueError):
    """A securityContext that cannot be run: one line naming the field."""


@dataclass(frozen=True)
class Security:
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES  # the bounding set
    no_new_privs: bool = True
    privileged: bool = False

    @property
    def effective(self) -> frozenset[str]:
        """The capabilities the program holds (what /proc/PID/status shows as CapEff)."""
        return self.capabilities if self.uid == 0 else frozenset()


DEFAULT = Security()


def capability_name(raw: object, where: str) -> str:
    """``net_admin``, ``CAP_NET_ADMIN`` -> ``NET_ADMIN``; ``ALL`` stays ``ALL``."""
    if not isinstance(raw, str):
        raise SecurityError(f"{where}: must be a string, not {raw!r}")
    name = raw.upper()
    name = name[4:] if name.startswith("CAP_") else name
    if name != "ALL" and name not in ALL_CAPABILITIES:
        raise SecurityError(f"{where}: unknown capability {raw!r}")
    return name


def _mapping(value: object, where: str, fields: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SecurityError(f"{where}: must be a mapping, not {value!r}")
    for key in value:
        if key not in fields:
            raise SecurityError(f"{where}.{key}: unknown field (known: {', '.join(fields)})")
    return value


def _id(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise SecurityError(f"{where}: must be an integer in 0..{MAX_ID}, not {value!r}")
    return value


def _flag(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise SecurityError(f"{where}: must be true or false, not {value!r}")


def _names(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SecurityError(f"{where}: must be a list of capability names, not {value!r}")
    return [capability_name(item, f"{where}[{i}]") for i, item in enumerate(value)]


def capabilities(add: list[str], drop: list[str]) -> frozenset[str]:
    """The default set changed as containerd does: add ALL, drop ALL, adds, drops."""
    caps = set(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        caps = set(ALL_CAPABILITIES)
    if "ALL" in drop:
        caps = set()
    caps |= {c for c in add if c != "ALL"}
    caps -= {c for c in drop if c != "ALL"}
    return frozenset(caps)


def resolve(
    pod: Mapping[str, Any] | None = None, container: Mapping[str, Any] | None = None, *, where: str = "securityContext"
) -> Security:
    """The pod's and the container's securityContext (dicts as in a manifest) -> Security.

    ``where`` names the container's context in messages (``spec.containers[0].securityContext``).
    """
    pod_ctx = _mapping(pod, "spec.securityContext", POD_FIELDS)
    ctx = _mapping(container, where, CONTAINER_FIELDS)
    uid = _id(ctx.get("runAsUser"), f"{where}.runAsUser")
    if uid is None:
        uid = _id(pod_ctx.get("runAsUser"), "spec.securityContext.runAsUser")
    gid = _id(ctx.get("runAsGroup"), f"{where}.runAsGroup")
    if gid is None:
        gid = _id(pod_ctx.get("runAsGroup"), "spec.securityContext.runAsGroup")
    groups_raw = pod_ctx.get("supplementalGroups") or []
    if not isinstance(groups_raw, list):
        raise SecurityError(f"spec.securityContext.supplementalGroups: must be a list, not {groups_raw!r}")
    groups = tuple(_id(g, f"spec.securityContext.supplementalGroups[{i}]") or 0 for i, g in enumerate(groups_raw))
    non_root = _flag(ctx.get("runAsNonRoot"), f"{where}.runAsNonRoot")
    if non_root is None:
        non_root = _flag(pod_ctx.get("runAsNonRoot"), "spec.securityContext.runAsNonRoot")
    if non_root and not uid:
        raise SecurityError(f"{where}.runAsNonRoot: container has runAsNonRoot and image will run as root")
    privileged = bool(_flag(ctx.get("privileged"), f"{where}.privileged"))
    escalation = _flag(ctx.get("allowPrivilegeEscalation"), f"{where}.allowPrivilegeEscalation")
    caps_ctx = _mapping(ctx.get("capabilities"), f"{where}.capabilities", ("add", "drop"))
    add = _names(caps_ctx.get("add"), f"{where}.capabilities.add")
    drop = _names(caps_ctx.get("drop"), f"{where}.capabilities.drop")
    if escalation is False and privileged:
        raise SecurityError(f"{where}.allowPrivilegeEscalation: cannot set allowPrivilegeEscalation to false and privileged to true")
    if escalation is False and "SYS_ADMIN" in add:
        raise SecurityError(f"{where}.allowPrivilegeEscalation: cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN")
    return Security(
        uid=uid or 0,
        gid=gid or 0,
        groups=groups,
        capabilities=frozenset(ALL_CAPABILITIES) if privileged else capabilities(add, drop),
        no_new_privs=not privileged and escalation is not True,
        privileged=privileged,
    )


def of_pod_record(value: Mapping[str, Any], container: int = 0) -> Security:
    """The Security of a stored Pod's container (its spec and the container's contexts)."""
    spec = value.get("spec") or {}
    containers = spec.get("containers") or [{}]
    return resolve(
        spec.get("securityContext"),
        containers[container].get("securityContext"),
        where=f"spec.containers[{container}].securityContext",
    )


def _cap_list(caps: frozenset[str]) -> str:
    return ",".join(["-all", *(f"+{c.lower()}" for c in ALL_CAPABILITIES if c in caps)])


def setpriv_argv(security: Security) -> list[str]:
    """``setpriv ...`` that leaves the next program with exactly ``security``.

    The inheritable (and so ambient) set is emptied and the bounding set cut to
    ``capabilities``: execve then gives a uid-0 program the bounding set as permitted and
    effective capabilities, any other uid nothing. A privileged container keeps every
    capability and gets no no_new_privs.
    """
    argv = [SETPRIV]
    if security.uid != 0 or security.gid != 0 or security.groups:
        argv += [f"--regid={security.gid}", f"--reuid={security.uid}"]
    argv += [f"--groups={','.join(map(str, security.groups))}"] if security.groups else ["--clear-groups"]
    if not security.privileged:
        argv += [f"--inh-caps={_cap_list(frozenset())}", f"--bounding-set={_cap_list(security.capabilities)}"]
    if security.no_new_privs:
        argv.append("--no-new-privs")
    return [*argv, "--"]
