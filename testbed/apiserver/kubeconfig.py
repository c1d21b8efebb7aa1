"""The lab's entries in the user's kubeconfig, so that plain ``kubectl`` reaches the lab's API server.

Done the way kind does it (kubernetes-sigs/kind, pkg/cluster/internal/kubeconfig), which
follows kubectl's own rules (client-go tools/clientcmd):

- The cluster, the user and the context are all named ``testbed-<lab>`` (kind: ``kind-<name>``).
- The file written is ``--kubeconfig`` when given; else, of the files ``$KUBECONFIG`` lists
  (':'-separated, empty and repeated entries dropped), the first that exists, or the last
  when none does; else ``~/.kube/config`` (kind's paths.go, ``pathForMerge``).
- Entries of the same name are replaced where they stand, all others kept in their order,
  new ones appended; ``current-context`` becomes the lab's unless told not to switch
  (merge.go). ``apiVersion`` and ``kind`` are filled in when missing, for clients that need
  them (kind issue #1242, the JavaScript client).
- Removal drops the three entries and clears ``current-context`` (to "") if it named the
  lab's context (remove.go).
- Writers take ``<path>.lock``, created with O_EXCL, as client-go and kind do (lock.go),
  retrying for a few seconds; the file is written 0600, atomically (a temp file in the same
  folder, then ``os.replace``), so kubectl never reads half a file.

Under ``sudo`` the file belongs to the user who ran sudo: it goes into their home and is
owned by them (``invoking_user``), as if they had run ``kind`` themselves.
"""

from __future__ import annotations

import base64
import copy
import os
import pwd
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from testbed.apiserver.bundle import write_private

ENV_KUBECONFIG = "KUBECONFIG"
DEFAULT_RELATIVE = Path(".kube") / "config"
SECTIONS = ("clusters", "users", "contexts")
HEADER = ("apiVersion", "kind", "preferences")  # a new file's first keys, from the entry
REQUIRED = ("apiVersion", "kind")  # added to an existing file that lacks them
CURRENT = "current-context"
FILE_MODE = 0o600
FOLDER_MODE = 0o755  # ~/.kube, as kubectl and kind make it
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT = 5.0  # seconds; a writer holds the lock for milliseconds
LOCK_POLL = 0.1  # seconds between attempts, as kind's lock.go

Config = dict[str, Any]


class LockHeld(RuntimeError):
    """Another writer (or a crashed one) holds the kubeconfig's lock file."""


def entry_name(lab: str) -> str:
    """The name of the lab's cluster, user and context."""
    return f"testbed-{lab}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def standalone(lab: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> Config:
    """A complete kubeconfig for the lab alone: its API server at server, as the admin of the certificate."""
    name = entry_name(lab)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [
            {"name": name, "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        CURRENT: name,
    }


def _named(item: object, name: str) -> bool:
    return isinstance(item, Mapping) and item.get("name") == name


def _items(config: Mapping[str, Any], section: str) -> list[Any]:
    items = config.get(section)
    return list(items) if isinstance(items, list) else []


def merged(existing: Mapping[str, Any] | None, lab: str, entry: Mapping[str, Any], switch: bool = True) -> Config:
    """existing with the lab's cluster, user and context from entry (its standalone config) put in.

    Same-named entries are replaced in place, the others kept in order, new ones appended;
    ``current-context`` becomes the lab's when switch is true. ``apiVersion`` and ``kind``
    come from entry when existing lacks them, and ``preferences`` too when existing is empty.
    """
    name = entry_name(lab)
    existing = existing or {}
    wanted = HEADER if not existing else REQUIRED  # a new file gets the whole header, as kind's
    header = {key: entry[key] for key in wanted if key in entry and key not in existing}
    result: Config = copy.deepcopy({**header, **existing})
    for section in SECTIONS:
        ours = [item for item in _items(entry, section) if _named(item, name)]
        if not ours:
            raise ValueError(f"kubeconfig entry for lab {lab}: no {section[:-1]} named {name}")
        new = copy.deepcopy(ours[0])
        items = _items(result, section)
        if any(_named(item, name) for item in items):
            result[section] = [new if _named(item, name) else item for item in items]
        else:
            result[section] = [*items, new]
    if switch:
        result[CURRENT] = name
    return result


def without(existing: Mapping[str, Any], lab: str) -> Config:
    """existing less the lab's cluster, user and context; ``current-context`` cleared if it was the lab's."""
    name = entry_name(lab)
    result: Config = copy.deepcopy(dict(existing))
    for section in SECTIONS:
        if section in result and isinstance(result[section], list):
            result[section] = [item for item in result[section] if not _named(item, name)]
    if result.get(CURRENT) == name:
        result[CURRENT] = ""
    return result


def render(config: Mapping[str, Any]) -> str:
    """The kubeconfig as YAML, keys in their order."""
    return yaml.safe_dump(dict(config), default_flow_style=False, sort_keys=False)


def target_path(
    explicit: str | None,
    environ: Mapping[str, str],
    home: Path,
    exists: Callable[[Path], bool] = Path.is_file,
) -> Path:
    """The kubeconfig file to write, by kubectl's rules (see the module docstring).

    ``exists`` is ``Path.is_file`` by default: kind's fileExists is false for a directory.
    """
    if explicit:
        return Path(explicit)
    listed: list[Path] = []
    for part in environ.get(ENV_KUBECONFIG, "").split(os.pathsep):
        if part and Path(part) not in listed:
            listed.append(Path(part))
    if not listed:
        return home / DEFAULT_RELATIVE
    return next((path for path in listed if exists(path)), listed[-1])


def invoking_user(environ: Mapping[str, str], euid: int | None = None) -> tuple[int, int, Path]:
    """(uid, gid, home) of the user who ran us: ``$SUDO_USER`` when root under sudo, else ourselves.

    euid defaults to ``os.geteuid()``; home is ``$HOME`` for ourselves (kubectl's rule),
    the passwd entry's for the sudo user (sudo resets ``$HOME`` to root's).
    """
    euid = os.geteuid() if euid is None else euid
    sudo_user = environ.get("SUDO_USER", "")
    if euid == 0 and sudo_user and sudo_user != "root":
        try:
            entry = pwd.getpwnam(sudo_user)
        except KeyError:
            raise ValueError(f"SUDO_USER={sudo_user}: no such user") from None
        return entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
    uid = os.getuid()
    home = environ.get("HOME") or pwd.getpwuid(uid).pw_dir
    return uid, os.getgid(), Path(home)


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


def _lock(path: Path, timeout: float) -> Path:
    lock = lock_path(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            return lock
        except FileExistsError:
            if time.monotonic() >= deadline:
                message = f"{lock}: held for over {timeout:g}s; remove it if no kubectl or testbed is writing"
                raise LockHeld(message) from None
            time.sleep(LOCK_POLL)


def _make_folders(folder: Path, owner: tuple[int, int] | None) -> None:
    """Make folder and any missing parents, 0755, owned by owner when given (only those made here)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for made in reversed(missing):
        made.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(made, FOLDER_MODE)
        if owner is not None:
            os.chown(made, *owner)


def _read(path: Path) -> Config | None:
    """The kubeconfig at path, None if there is none (missing or empty); ValueError if it is not one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: not a kubeconfig (YAML error{where}: {problem})") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a kubeconfig (a YAML {type(data).__name__}, not a mapping)")
    return data


def _write(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    """Replace path's file (a symlink's target) with text, mode 0600, owned by owner, atomically."""
    write_private(path, text.encode(), owner)


def _owner_of(path: Path) -> tuple[int, int] | None:
    """The file's owner if it is not ourselves (so a rewrite keeps it), else None."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    ours = (os.geteuid(), os.getegid())
    return None if (info.st_uid, info.st_gid) == ours else (info.st_uid, info.st_gid)


def write_merged(
    path: Path,
    lab: str,
    entry: Mapping[str, Any],
    *,
    switch: bool,
    owner: tuple[int, int] | None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> None:
    """Merge the lab's entry (its standalone config) into the kubeconfig at path, under its lock.

    The file is written 0600 and owned by owner when given (else it keeps its owner); a
    folder made for it (``~/.kube``) is 0755 and owned by owner too.
    """
    _make_folders(path.parent, owner)
    lock = _lock(path, lock_timeout)
    try:
        config = merged(_read(path), lab, entry, switch=switch)
        _write(path, render(config), owner if owner is not None else _owner_of(path))
    finally:
        lock.unlink(missing_ok=True)


def remove_entries(path: Path, lab: str, *, lock_timeout: float = LOCK_TIMEOUT) -> bool:
    """Remove the lab's entries from the kubeconfig at path; False if it had none (the file is then untouched)."""
    if not path.exists():
        return False
    lock = _lock(path, lock_timeout)
    try:
        config = _read(path)
        if config is None:
            return False
        remaining = without(config, lab)
        if remaining == config:
            return False
        _write(path, render(remaining), _owner_of(path))
        return True
    finally:
        lock.unlink(missing_ok=True)
