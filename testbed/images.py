"""The built-in "images": what a pod runs when its topology or manifest names an image.

No container images: an image is a program of the machine started in the pod's sandbox
(``testbed.netns.sandbox``: its own namespaces, the machine's filesystem read-only), with
the pod's own folder in the lab's state dir for whatever files it needs (a container
would have its own filesystem). Everything here is pure: an image turns (pod, command) into a Program
(argv, environment, files to write first), and the runtime starts it.

- ``nginx``: real nginx on port 80 serving upstream's "Welcome to nginx!" page, its
  config, pid file, temp files and logs in the pod's folder (agents/apps/nginx).
- ``busybox``: no program of its own (the pod's netns alone, as busybox pods idle);
  a command, ``kubectl exec`` or ``kubectl run -ti`` gets Debian's busybox sh with a
  wget that has --timeout first on PATH (agents/apps/busybox-bin).
- ``agnhost``: answers on TCP and UDP 80 and 81, as the upstream NetworkPolicy tests expect.
- ``star-probe``, ``star-collect``: the stars demo's probe and management UI
  (agents/apps/star_probe.py, star_collect.py); the image's own binaries ``probe`` and
  ``collect`` are ours, so the lab's manifests run verbatim.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agents.apps import nginx

APPS = Path(nginx.__file__).resolve().parent.parent  # agents/apps
BUSYBOX_BIN = APPS / "busybox-bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORKDIR = "/"  # where a container's processes start


@dataclass(frozen=True)
class PodContext:
    """Who the program is for, and the pod's own folder (/run/testbed/<lab>/pods/<ns>.<pod>)."""

    lab: str
    namespace: str
    pod: str
    folder: Path


@dataclass(frozen=True)
class Program:
    """What runs in a pod: argv, the files and folders it needs first, its environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None  # None: the caller's environment
    files: tuple[tuple[Path, str], ...] = ()  # (path, text), written before the start
    folders: tuple[Path, ...] = ()  # made before the files
    cwd: str = WORKDIR


@dataclass(frozen=True)
class Image:
    name: str
    description: str
    default: Callable[[PodContext], Program | None]  # no command given; None = nothing runs
    command: Callable[[PodContext, tuple[str, ...]], Program]  # the pod's own command
    shell: tuple[str, ...] = ("sh",)  # what `kubectl exec`/`run -ti` runs with no command
    env: Mapping[str, str] = field(default_factory=dict)  # interactive and command environment
    interactive: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda command: command
    # The lab's state folder (its etcd socket) read-only in the pod's sandbox: for the
    # cluster's own components that read the lab's etcd, as kube-dns reads the API server.
    sees_lab: bool = False


class UnknownImage(ValueError):
    pass


def container_env(path: str = SYSTEM_PATH) -> dict[str, str]:
    """A container's environment: not the caller's (no sudo or testbed variables)."""
    return {"PATH": path, "HOME": "/root"}


# --- nginx -------------------------------------------------------------------


def nginx_program(context: PodContext, extra: tuple[str, ...] = ()) -> Program:
    folder = context.folder
    return Program(
        argv=nginx.argv(folder, *extra),
        files=(
            (nginx.config_path(folder), nginx.render_config(folder, nginx.PORT)),
            (folder / "html" / "index.html", nginx.page()),
        ),
        folders=nginx.folders(folder),
    )


def _nginx_command(context: PodContext, command: tuple[str, ...]) -> Program:
    """`nginx ...` (the image's own CMD is `nginx -g 'daemon off;'`) runs on the pod's
    files, never on /etc/nginx; anything else runs as given."""
    if _basename(command[0]) != "nginx":
        return Program(argv=command)
    extra = command[1:]
    if extra[:2] == ("-g", "daemon off;"):  # already in the pod's config
        extra = extra[2:]
    return nginx_program(context, extra)


# --- busybox -----------------------------------------------------------------

BUSYBOX_ENV = container_env(f"{BUSYBOX_BIN}:{SYSTEM_PATH}")
_BUSYBOX_OWN = {"sh": "sh", "ash": "sh", "wget": "wget"}  # applets we replace: ours from busybox-bin


def busybox_argv(command: tuple[str, ...]) -> tuple[str, ...]:
    """`/bin/sh`, `sh -c ...`, `wget ...`, `busybox wget ...` -> ours; the rest as given."""
    if not command:
        return (str(BUSYBOX_BIN / "sh"),)
    first, rest = _basename(command[0]), command[1:]
    if first == "busybox" and rest and _basename(rest[0]) in _BUSYBOX_OWN:
        first, rest = _basename(rest[0]), rest[1:]
    own = _BUSYBOX_OWN.get(first)
    if own is None or ("/" in command[0] and not _in_system_bin(command[0])):
        return command
    return (str(BUSYBOX_BIN / own), *rest)


def _busybox_command(_context: PodContext, command: tuple[str, ...]) -> Program:
    return Program(argv=busybox_argv(command), env=BUSYBOX_ENV)


# --- agnhost -----------------------------------------------------------------


def _agnhost(context: PodContext) -> Program:
    name = f"{context.namespace}/{context.pod}"
    return Program(argv=(sys.executable, "-m", "agents.apps.serve", "--tcp", "80,81", "--udp", "80,81", "--name", name))


AGNHOST_DEFAULT_PORT = 9376  # serve-hostname's --port default [kubernetes test/images/agnhost/serve-hostname]


def _flags(args: tuple[str, ...]) -> dict[str, str]:
    """Go-style flags (``--a``, ``--a=v``, ``--a v``) and the positional words under "" (pure)."""
    found: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-"):
            name, eq, value = word.lstrip("-").partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("-") and name in ("port", "timeout",
                                                                                            "protocol"):  # fmt: skip
                value, i = args[i + 1], i + 1
            found[name] = value if eq or value else "true"
        else:
            positional.append(word)
        i += 1
    found[""] = " ".join(positional)
    return found


def agnhost_argv(command: tuple[str, ...]) -> tuple[str, ...]:
    """An agnhost command line as the lab runs it (pure): ``serve-hostname`` (``--tcp``,
    ``--udp``, ``--port``, ``--http=false``) is ``agents.apps.serve`` answering with the
    hostname (the pod's name); ``connect HOST:PORT [--protocol=tcp|udp] [--timeout=1s]`` is
    ``agents.apps.connect``, exiting 0 when it connected and 1 when not, as agnhost does;
    anything else runs as given. The upstream NetworkPolicy e2e suite uses exactly these
    two [kubernetes test/e2e/network/netpol/kubemanager.go, probe.go]. The image's
    entrypoint ``/agnhost`` may be given or not."""
    words = command[1:] if command and _basename(command[0]) == "agnhost" else command
    if not words:
        raise UnknownImage("agnhost: no subcommand (this lab runs serve-hostname and connect)")
    sub, args = words[0], words[1:]
    flags = _flags(args)
    if sub == "serve-hostname":
        if flags.get("sctp", "false") != "false":
            raise UnknownImage("agnhost serve-hostname --sctp: this machine's kernel has no SCTP sockets")
        if flags.get("http", "true") != "false":
            raise UnknownImage("agnhost serve-hostname: only --http=false (with --tcp or --udp) is emulated")
        port = flags.get("port", str(AGNHOST_DEFAULT_PORT))
        argv = [sys.executable, "-m", "agents.apps.serve"]
        for protocol in ("tcp", "udp"):
            if flags.get(protocol, "false") != "false":
                argv += [f"--{protocol}", port]
        return tuple(argv)
    if sub == "connect":
        host, _, port = flags[""].rpartition(":")
        timeout = flags.get("timeout", "1s").rstrip("s") or "1"
        return (sys.executable, "-m", "agents.apps.connect", host.strip("[]"), port,
                "--protocol", flags.get("protocol", "tcp"), "--timeout", timeout)  # fmt: skip
    return command


def _agnhost_command(_context: PodContext, command: tuple[str, ...]) -> Program:
    return Program(argv=agnhost_argv(command), env=container_env())


def _coredns(context: PodContext) -> Program:
    """The lab's cluster DNS, reading Services from the lab's etcd over its unix socket."""
    from testbed.runtime import etcd_server, state  # noqa: PLC0415 - only this image needs them

    socket = etcd_server.socket_path(state.folder(context.lab))
    return Program(argv=(sys.executable, "-m", "agents.apps.dns", "--lab", context.lab, "--etcd-socket", str(socket)))


# --- the stars demo (calico/star-probe, calico/star-collect) ----------------------------

STAR_PROBE = "agents.apps.star_probe"
STAR_COLLECT = "agents.apps.star_collect"


def _star_program(own: str, module: str, command: tuple[str, ...], extra: tuple[str, ...] = ()) -> Program:
    """`<own> ARGS...` (the image's binary, any path) -> our module with ARGS; the rest as given."""
    if not command or _basename(command[0]) != own:
        return Program(argv=command)
    return Program(argv=(sys.executable, "-m", module, *command[1:], *extra))


def _star_probe_command(_context: PodContext, command: tuple[str, ...]) -> Program:
    return _star_program("probe", STAR_PROBE, command)


def _star_probe(context: PodContext) -> Program:
    """No command: a probe of nothing on port 9000 (the manifests always give one)."""
    return _star_probe_command(context, ("probe",))


def _star_collect_lab_flags(context: PodContext) -> tuple[str, ...]:
    """The lab's etcd, read-only, for why an edge is faint (as kube-dns reads Services)."""
    from testbed.runtime import etcd_server, state  # noqa: PLC0415 - only this image needs them

    socket = etcd_server.socket_path(state.folder(context.lab))
    return ("--lab", context.lab, "--etcd-socket", str(socket), "--pod", f"{context.namespace}/{context.pod}")


def _star_collect_command(context: PodContext, command: tuple[str, ...]) -> Program:
    return _star_program("collect", STAR_COLLECT, command, _star_collect_lab_flags(context))


def _star_collect(context: PodContext) -> Program:
    """No command (the lab's management-ui): the UI on 9001 polling the demo's C, F and B."""
    return _star_collect_command(context, ("collect",))


def _as_given(_context: PodContext, command: tuple[str, ...]) -> Program:
    return Program(argv=command)


def _nothing(_context: PodContext) -> Program | None:
    return None


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _in_system_bin(word: str) -> bool:
    return word.rsplit("/", 1)[0] in ("/bin", "/usr/bin", "/sbin", "/usr/sbin")


IMAGES = {
    image.name: image
    for image in (
        Image(
            "nginx",
            "nginx serving the 'Welcome to nginx!' page on port 80",
            lambda context: nginx_program(context),
            _nginx_command,
            env=container_env(),
        ),
        Image(
            "busybox",
            "no program (the pod's netns alone); sh and a wget with --timeout for commands and shells",
            _nothing,
            _busybox_command,
            env=BUSYBOX_ENV,
            interactive=busybox_argv,
        ),
        Image(
            "coredns",
            "the cluster DNS: <svc>.<ns>.svc.cluster.local from the lab's Services (UDP and TCP 53)",
            _coredns,
            _as_given,
            env=container_env(),
            sees_lab=True,
        ),
        Image(
            "agnhost",
            "answers on TCP and UDP ports 80 and 81 with <namespace>/<pod>; agnhost serve-hostname and connect",
            _agnhost,
            _agnhost_command,
            env=container_env(),
            interactive=agnhost_argv,
        ),
        Image(
            "star-probe",
            "the stars demo's probe: `probe [--http-port=9000] --urls=...`, GET /status",
            _star_probe,
            _star_probe_command,
            env=container_env(),
        ),
        Image(
            "star-collect",
            "the stars demo's management UI on port 9001 (graph, /graph.json, reasons from the oracle)",
            _star_collect,
            _star_collect_command,
            env=container_env(),
            sees_lab=True,
        ),
    )
}


def base_name(image: str) -> str:
    """`docker.io/library/busybox:1.36` -> `busybox`."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def lookup(image: str) -> Image:
    found = IMAGES.get(base_name(image))
    if found is None:
        raise UnknownImage(f"unknown image {image!r} (known: {', '.join(sorted(IMAGES))})")
    return found


def program_for(image: str, command: tuple[str, ...], context: PodContext) -> Program | None:
    """What runs in the pod: its own command, else the image's default (None: nothing)."""
    found = lookup(image)
    return found.command(context, command) if command else found.default(context)


def interactive_argv(image: str, command: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """argv and environment for `kubectl run -ti` / `kubectl exec` in a pod.

    Run it in the foreground inside the pod's sandbox (``testbed.netns.sandbox.exec_argv``),
    with the caller's terminal, the environment laid over the caller's (PATH and HOME
    are the image's; TERM stays the caller's, whose terminal it is). The argv starts
    in / as a container's processes do. No command: the image's shell (busybox:
    `/ # `, and `wget` is ours).
    """
    found = lookup(image)
    argv = found.interactive(command or found.shell)
    return ("env", "-C", WORKDIR, *argv), dict(found.env)
