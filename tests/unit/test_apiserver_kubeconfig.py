"""The lab's kubeconfig entries: merging, removal, which file, and writing it safely."""

from __future__ import annotations

import base64
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.apiserver import kubeconfig

SERVER = "https://127.0.0.1:6443"
CA, CERT, KEY = b"ca-pem\n", b"cert-pem\n", b"key-pem\n"


def _entry(lab: str = "lab1", server: str = SERVER) -> dict[str, Any]:
    return kubeconfig.standalone(lab, server, CA, CERT, KEY)


def _names(config: dict[str, Any], section: str) -> list[str]:
    return [item["name"] for item in config.get(section) or []]


@pytest.fixture
def other() -> dict[str, Any]:
    """A user's kubeconfig with one cluster of their own and a field we do not know."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
        "users": [{"name": "prod-admin", "user": {"token": "secret"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
        "current-context": "prod",
        "extensions": [{"name": "mine", "extension": {"x": 1}}],
    }


def test_entry_names_follow_kind() -> None:
    assert kubeconfig.entry_name("lab1") == "testbed-lab1"
    entry = _entry()
    assert entry["current-context"] == "testbed-lab1"
    context = {"cluster": "testbed-lab1", "user": "testbed-lab1"}
    assert entry["contexts"] == [{"name": "testbed-lab1", "context": context}]
    cluster = entry["clusters"][0]["cluster"]
    assert cluster["server"] == SERVER
    assert base64.b64decode(cluster["certificate-authority-data"]) == CA
    user = entry["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == CERT
    assert base64.b64decode(user["client-key-data"]) == KEY


def test_merge_keeps_the_others_in_order_and_switches(other: dict[str, Any]) -> None:
    result = kubeconfig.merged(other, "lab1", _entry())
    for section, theirs in (("clusters", "prod"), ("users", "prod-admin"), ("contexts", "prod")):
        assert _names(result, section) == [theirs, "testbed-lab1"]
    assert result["current-context"] == "testbed-lab1"
    assert result["extensions"] == other["extensions"]
    assert other["current-context"] == "prod" and len(other["clusters"]) == 1  # the input is not changed


def test_merge_without_switch_leaves_the_current_context(other: dict[str, Any]) -> None:
    result = kubeconfig.merged(other, "lab1", _entry(), switch=False)
    assert result["current-context"] == "prod"
    assert _names(result, "contexts") == ["prod", "testbed-lab1"]


def test_merge_twice_replaces_in_place(other: dict[str, Any]) -> None:
    once = kubeconfig.merged(other, "lab1", _entry())
    once = kubeconfig.merged(once, "lab2", _entry("lab2"))
    twice = kubeconfig.merged(once, "lab1", _entry(server="https://127.0.0.1:7443"))
    assert _names(twice, "clusters") == ["prod", "testbed-lab1", "testbed-lab2"]
    assert _names(twice, "users") == ["prod-admin", "testbed-lab1", "testbed-lab2"]
    assert twice["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:7443"


def test_merge_into_nothing_is_the_standalone_config() -> None:
    assert kubeconfig.merged(None, "lab1", _entry()) == _entry()
    partial = kubeconfig.merged({"clusters": None}, "lab1", _entry())
    assert partial["apiVersion"] == "v1" and partial["kind"] == "Config"
    assert _names(partial, "clusters") == ["testbed-lab1"]


def test_merge_refuses_an_entry_of_another_lab() -> None:
    with pytest.raises(ValueError, match="no cluster named testbed-lab1"):
        kubeconfig.merged(None, "lab1", _entry("lab2"))


def test_without_removes_all_three_and_clears_only_its_own_context(other: dict[str, Any]) -> None:
    ours = kubeconfig.merged(other, "lab1", _entry())
    removed = kubeconfig.without(ours, "lab1")
    for section in ("clusters", "users", "contexts"):
        assert "testbed-lab1" not in _names(removed, section)
        assert _names(removed, section) == _names(other, section)
    assert removed["current-context"] == ""
    not_current = kubeconfig.without(kubeconfig.merged(other, "lab1", _entry(), switch=False), "lab1")
    assert not_current == other


def test_target_path_follows_kubectl(tmp_path: Path) -> None:
    home = Path("/home/alice")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    present = {b, c}
    env = {"KUBECONFIG": f"{a}::{b}:{c}:{b}"}
    assert kubeconfig.target_path(None, env, home, present.__contains__) == b  # the first that exists
    assert kubeconfig.target_path(None, {"KUBECONFIG": f"{a}:{b}"}, home, lambda p: False) == b  # else the last
    assert kubeconfig.target_path(str(a), env, home, present.__contains__) == a  # --kubeconfig wins
    assert kubeconfig.target_path(None, {}, home) == home / ".kube" / "config"
    assert kubeconfig.target_path("", {"KUBECONFIG": ""}, home) == home / ".kube" / "config"


def test_target_path_skips_a_directory_by_default(tmp_path: Path) -> None:
    folder, config = tmp_path / "folder", tmp_path / "config"
    folder.mkdir()
    config.write_text("")
    assert kubeconfig.target_path(None, {"KUBECONFIG": f"{folder}:{config}"}, tmp_path) == config


def test_invoking_user() -> None:
    me = os.getuid()
    assert kubeconfig.invoking_user({"HOME": "/somewhere"}) == (me, os.getgid(), Path("/somewhere"))
    assert kubeconfig.invoking_user({"HOME": "/x", "SUDO_USER": "root"}, euid=0)[2] == Path("/x")
    entry = pwd.getpwuid(me)
    someone = kubeconfig.invoking_user({"HOME": "/root", "SUDO_USER": entry.pw_name}, euid=0)
    if entry.pw_name != "root":
        assert someone == (entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))
    assert kubeconfig.invoking_user({"HOME": "/x", "SUDO_USER": "alice"}, euid=1000)[2] == Path("/x")  # not root
    with pytest.raises(ValueError, match="SUDO_USER=no-such-user-here: no such user"):
        kubeconfig.invoking_user({"SUDO_USER": "no-such-user-here"}, euid=0)


def test_write_merged_makes_a_0600_file_that_round_trips(tmp_path: Path, other: dict[str, Any]) -> None:
    path = tmp_path / "home" / ".kube" / "config"
    kubeconfig.write_merged(path, "lab1", _entry(), switch=True, owner=None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert yaml.safe_load(path.read_text()) == _entry()
    path.write_text(kubeconfig.render(other))
    path.chmod(0o644)
    kubeconfig.write_merged(path, "lab1", _entry(), switch=False, owner=(os.getuid(), os.getgid()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == kubeconfig.merged(other, "lab1", _entry(), switch=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["config"]  # no lock or temp file left


def test_write_merged_keeps_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-config"
    link = tmp_path / "config"
    link.symlink_to(real)
    kubeconfig.write_merged(link, "lab1", _entry(), switch=True, owner=None)
    assert link.is_symlink()
    assert yaml.safe_load(real.read_text()) == _entry()


def test_a_held_lock_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(kubeconfig.render({"apiVersion": "v1"}))
    lock = kubeconfig.lock_path(path)
    lock.write_text("")
    started = time.monotonic()
    with pytest.raises(kubeconfig.LockHeld) as caught:
        kubeconfig.write_merged(path, "lab1", _entry(), switch=True, owner=None, lock_timeout=0.2)
    assert time.monotonic() - started >= 0.2
    message = str(caught.value)
    assert str(lock) in message and "\n" not in message
    assert lock.exists()  # someone else's: left alone
    assert yaml.safe_load(path.read_text()) == {"apiVersion": "v1"}
    with pytest.raises(kubeconfig.LockHeld):
        kubeconfig.remove_entries(path, "lab1", lock_timeout=0.1)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "clusters: [unclosed\n", "plain words\n"])
def test_a_file_that_is_not_a_kubeconfig_is_refused_and_kept(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{path}: not a kubeconfig \\(") as caught:
        kubeconfig.write_merged(path, "lab1", _entry(), switch=True, owner=None)
    assert "\n" not in str(caught.value)
    assert path.read_text() == text
    assert not kubeconfig.lock_path(path).exists()


def test_remove_entries(tmp_path: Path, other: dict[str, Any]) -> None:
    path = tmp_path / "config"
    assert kubeconfig.remove_entries(path, "lab1") is False  # no file
    assert not path.exists()
    path.write_text(kubeconfig.render(other))
    before = path.read_text()
    assert kubeconfig.remove_entries(path, "lab1") is False  # nothing of the lab
    assert path.read_text() == before
    kubeconfig.write_merged(path, "lab1", _entry(), switch=True, owner=None)
    assert kubeconfig.remove_entries(path, "lab1") is True
    assert yaml.safe_load(path.read_text()) == {**other, "current-context": ""}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_official_client_loads_the_standalone_config() -> None:
    pytest.importorskip("kubernetes", reason="the kubernetes client package is not installed")
    from kubernetes.client import Configuration
    from kubernetes.config.kube_config import KubeConfigLoader

    configuration = Configuration()
    KubeConfigLoader(config_dict=_entry()).load_and_set(configuration)
    assert configuration.host == SERVER
    for name, data in ((configuration.ssl_ca_cert, CA), (configuration.cert_file, CERT), (configuration.key_file, KEY)):
        assert name and Path(name).read_bytes() == data
