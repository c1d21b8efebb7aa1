"""Pods as sandboxes: securityContext -> setpriv words, the mount plan, the argv builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed import images
from testbed.netns import sandbox, security
from testbed.netns.security import DEFAULT_CAPABILITIES, Security, SecurityError, resolve, setpriv_argv

FOLDER = Path("/run/testbed/lab1/pods/demo.web")
PLAN = sandbox.SandboxPlan(name="lab1: demo/web", netns="lab1.demo.web", hostname="web", folder=FOLDER)


# --- securityContext -----------------------------------------------------------------


def test_no_context_is_root_with_the_container_runtimes_default_capabilities() -> None:
    got = resolve(None, None)
    assert (got.uid, got.gid, got.groups, got.no_new_privs, got.privileged) == (0, 0, (), True, False)
    assert got.capabilities == DEFAULT_CAPABILITIES
    assert {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"}.isdisjoint(got.effective)
    assert {"NET_RAW", "NET_BIND_SERVICE", "CHOWN", "KILL"} <= got.effective


def test_run_as_user_and_group_container_over_pod() -> None:
    got = resolve({"runAsUser": 1000, "runAsGroup": 2000, "supplementalGroups": [3000]}, {"runAsUser": 1001})
    assert (got.uid, got.gid, got.groups) == (1001, 2000, (3000,))
    assert got.effective == frozenset()  # no ambient capabilities: a non-root uid holds none
    assert got.capabilities == DEFAULT_CAPABILITIES


def test_capabilities_add_and_drop_as_containerd_applies_them() -> None:
    assert "NET_ADMIN" in resolve(None, {"capabilities": {"add": ["NET_ADMIN"]}}).effective
    assert "NET_ADMIN" in resolve(None, {"capabilities": {"add": ["cap_net_admin"]}}).effective
    assert "NET_RAW" not in resolve(None, {"capabilities": {"drop": ["NET_RAW"]}}).effective
    only = resolve(None, {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
    assert only.capabilities == {"NET_BIND_SERVICE"}
    every_but = resolve(None, {"capabilities": {"add": ["ALL"], "drop": ["CHOWN"]}})
    assert every_but.capabilities == set(security.ALL_CAPABILITIES) - {"CHOWN"}
    assert resolve(None, {"capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_ADMIN"]}}).capabilities == DEFAULT_CAPABILITIES


def test_privileged_gets_every_capability_and_no_no_new_privs() -> None:
    got = resolve(None, {"privileged": True})
    assert got.capabilities == set(security.ALL_CAPABILITIES)
    assert not got.no_new_privs
    argv = setpriv_argv(got)
    assert not any(a.startswith("--bounding-set") for a in argv) and "--no-new-privs" not in argv


def test_allow_privilege_escalation_true_lifts_no_new_privs() -> None:
    assert not resolve(None, {"allowPrivilegeEscalation": True}).no_new_privs
    assert resolve(None, {"allowPrivilegeEscalation": False}).no_new_privs


@pytest.mark.parametrize(
    ("pod", "container", "message"),
    [
        (None, {"runAsUser": "1000"}, "securityContext.runAsUser: must be an integer"),
        (None, {"runAsUser": -1}, "securityContext.runAsUser: must be an integer"),
        ({"runAsGroup": True}, None, "spec.securityContext.runAsGroup: must be an integer"),
        (None, {"capabilities": {"add": ["NET_FLY"]}}, "securityContext.capabilities.add[0]: unknown capability 'NET_FLY'"),
        (None, {"capabilities": {"add": "NET_ADMIN"}}, "securityContext.capabilities.add: must be a list"),
        (None, {"capabilities": {"keep": []}}, "securityContext.capabilities.keep: unknown field"),
        (None, {"runAsNonRoot": True}, "securityContext.runAsNonRoot: container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, {"runAsUser": 0}, "runAsNonRoot and image will run as root"),
        (None, {"privileged": "yes"}, "securityContext.privileged: must be true or false"),
        (None, {"privileged": True, "allowPrivilegeEscalation": False}, "cannot set allowPrivilegeEscalation to false and privileged to true"),
        (None, {"runAsUsr": 1000}, "securityContext.runAsUsr: unknown field"),
    ],
)
def test_bad_contexts_are_one_line_naming_the_field(pod: dict | None, container: dict | None, message: str) -> None:
    with pytest.raises(SecurityError) as caught:
        resolve(pod, container)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_run_as_non_root_with_a_uid_is_fine() -> None:
    assert resolve({"runAsNonRoot": True}, {"runAsUser": 1000}).uid == 1000


def test_setpriv_words_for_the_default_and_for_a_user() -> None:
    argv = setpriv_argv(Security())
    assert argv[0] == "setpriv" and argv[-1] == "--"
    assert "--reuid=0" not in argv and "--clear-groups" in argv and "--no-new-privs" in argv
    assert "--inh-caps=-all" in argv
    bounding = next(a for a in argv if a.startswith("--bounding-set="))
    words = bounding.split("=", 1)[1].split(",")
    assert words[0] == "-all"
    assert {w[1:].upper() for w in words[1:]} == DEFAULT_CAPABILITIES
    user = setpriv_argv(resolve({"supplementalGroups": [5, 6]}, {"runAsUser": 1000, "runAsGroup": 100}))
    assert "--regid=100" in user and "--reuid=1000" in user and "--groups=5,6" in user
    assert user.index("--regid=100") < user.index("--reuid=1000")


def test_security_of_a_stored_pod() -> None:
    value = {"spec": {"securityContext": {"runAsUser": 7}, "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}}
    got = security.of_pod_record(value)
    assert got.uid == 7 and "NET_ADMIN" in got.capabilities
    assert security.of_pod_record({"spec": {"containers": [{"name": "c"}]}}) == Security()
    with pytest.raises(SecurityError, match=r"spec.containers\[0\].securityContext.runAsUser"):
        security.of_pod_record({"spec": {"containers": [{"securityContext": {"runAsUser": "x"}}]}})


# --- argv ------------------------------------------------------------------------------


def test_container_argv_enters_all_but_pid_and_never_forks() -> None:
    argv = sandbox.container_argv(42, ["nginx", "-g", "x"], Security())
    assert argv[:2] == ["nsenter", "--target=42"]
    assert {"--uts", "--ipc", "--net", "--mount"} <= set(argv[: argv.index("--")])
    assert "--pid" not in argv and "--fork" not in argv and not any(a.startswith("--wd") for a in argv)
    assert argv[argv.index("--") + 1] == "setpriv"
    assert argv[-3:] == ["nginx", "-g", "x"]
    chdir = sandbox.container_argv(42, ["ls"], Security(), cwd="/run/x")
    assert chdir[-4:] == ["env", "-C", "/run/x", "ls"]


def test_exec_argv_also_enters_the_pid_namespace_with_the_containers_rights() -> None:
    argv = sandbox.exec_argv(42, ["sh"], resolve(None, {"runAsUser": 1000}))
    assert "--pid" in argv[: argv.index("--")]
    assert "--reuid=1000" in argv and argv[-1] == "sh"


def test_pause_argv_runs_the_init_in_the_pods_netns_without_site_or_pythonpath() -> None:
    argv = sandbox.pause_argv("lab1.demo.web", PLAN, python="/py")
    assert argv[:5] == ["ip", "netns", "exec", "lab1.demo.web", "/py"]
    assert argv[5:8] == ["-I", "-S", str(sandbox.INIT)]
    assert sandbox.INIT.is_file()


def test_hosts_file_names_the_pod_as_the_kubelet_writes_it() -> None:
    text = sandbox.hosts_file("web", "10.65.0.7")
    assert text.splitlines()[1] == "127.0.0.1\tlocalhost"
    assert text.splitlines()[-1] == "10.65.0.7\tweb"


# --- the mount plan --------------------------------------------------------------------


def _index(steps: list[list[object]], *prefix: object) -> int:
    for i, step in enumerate(steps):
        if step[: len(prefix)] == list(prefix):
            return i
    raise AssertionError(f"no step {prefix} in {steps}")


def test_plan_mounts_proc_first_and_finishes_read_only_but_tmp_and_the_folder() -> None:
    steps = sandbox.setup_plan(PLAN)
    assert steps[0][:4] == ["mount", "proc", "/proc", "proc"]
    assert steps[-1][0] == "readonly_except"
    assert set(steps[-1][1]) == {"/tmp", "/dev/shm", "/dev/pts", str(FOLDER)}
    assert ["hostname", "web"] in steps


def test_plan_stages_the_folder_before_it_hides_the_state_root_then_moves_it_back() -> None:
    steps = sandbox.setup_plan(PLAN)
    staged = _index(steps, "mount", str(FOLDER), f"{sandbox.STAGE}/pod")
    hidden = _index(steps, "hide", "/run/testbed")
    moved = _index(steps, "mount", f"{sandbox.STAGE}/pod", str(FOLDER))
    assert staged < hidden < moved
    assert "move" in steps[moved][4]
    # the folder's bind gets nosuid and nodev (MKNOD is a default capability)
    assert {"nosuid", "nodev"} <= set(steps[staged + 1][4])
    assert _index(steps, "hide", "/run/netns") < moved
    assert _index(steps, "detach_nsfs") < _index(steps, "hide", "/run/netns")


def test_plan_gives_a_dev_of_a_few_nodes_and_private_tmp_and_shm() -> None:
    steps = sandbox.setup_plan(PLAN)
    nodes = {s[2].rsplit("/", 1)[1] for s in steps if s[0] == "mount" and s[4] == ["bind"] and str(s[1]).startswith("/dev/")}
    assert nodes == set(sandbox.DEVICES)
    assert "vda" not in str(steps) and "sda" not in str(steps)
    tmp = steps[_index(steps, "mount", "tmpfs", "/tmp")]
    assert {"nosuid", "nodev"} <= set(tmp[4]) and "mode=1777" in tmp[5]
    assert _index(steps, "mount", f"{sandbox.STAGE}/dev", "/dev") > _index(steps, "mount", "devpts")


def test_plan_shows_read_only_folders_under_the_hidden_root_and_the_folder_on_top() -> None:
    lab = Path("/run/testbed/lab1")
    steps = sandbox.setup_plan(sandbox.SandboxPlan(name="x", netns="n", hostname="dns", folder=FOLDER, read_only=(lab,)))
    staged = _index(steps, "mount", str(lab), f"{sandbox.STAGE}/ro0")
    assert "ro" in steps[staged + 1][4]
    assert _index(steps, "hide", "/run/testbed") < _index(steps, "mount", f"{sandbox.STAGE}/ro0", str(lab)) < _index(
        steps, "mount", f"{sandbox.STAGE}/pod", str(FOLDER)
    )


def test_only_the_images_that_read_the_lab_see_its_folder() -> None:
    assert {name for name, image in images.IMAGES.items() if image.sees_lab} == {"coredns", "star-collect"}


def test_init_plan_names_the_netns_and_gives_the_pause_only_a_path() -> None:
    plan = sandbox.init_plan(PLAN)
    assert plan["netns"] == "lab1.demo.web" and plan["steps"] == sandbox.setup_plan(PLAN)
    assert list(plan["env"]) == ["PATH"]  # type: ignore[arg-type]
    assert plan["pause"][-1] == "pause lab1.demo.web"  # type: ignore[index]


def test_an_unknown_sandbox_method_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sandbox method 'clone': must be one of fork, exec"):
        sandbox.launch_sandbox("lab1", "demo", "web", "lab1.nowhere", "10.65.0.7", tmp_path / "web", method="clone")


def test_a_sandbox_record_is_trusted_only_for_a_live_pause_in_that_netns(tmp_path: Path) -> None:
    record = tmp_path / "sandboxes" / "lab1.demo.web"
    assert sandbox.find("lab1.demo.web", record) is None  # no record: no sandbox, and no scan of every process
    sandbox.write_record(record, os.getpid())  # a live process, but no pause (what a forged record would name)
    assert record.read_text().split()[0] == str(os.getpid())
    assert sandbox.find("lab1.demo.web", record) is None
    record.write_text("not a pid\n")
    assert sandbox.find("lab1.demo.web", record) is None


def test_software_under_tmp_stays_visible_read_only_in_the_pod_s_fresh_tmp() -> None:
    clone, venv = Path("/tmp/ci/clone"), Path("/tmp/ci/clone/.venv")
    assert sandbox.software_under_tmp([clone, venv, Path("/work/main")]) == (clone, venv)
    assert sandbox.software_under_tmp([Path("/work/main"), Path("/usr")]) == ()
    plan = sandbox.SandboxPlan(name="x", netns="n", hostname="web", folder=FOLDER, software=(clone,))
    steps = sandbox.setup_plan(plan)
    held, covered = _index(steps, "hold", str(clone)), _index(steps, "mount", "tmpfs", "/tmp")
    bound = _index(steps, "bind_held", str(clone))
    assert held < covered < bound < _index(steps, "readonly_except")  # taken before /tmp is covered, then put back
    assert steps[bound - 1] == ["mkdir", str(clone), 0o755]
    assert not any(s[0] in ("hold", "bind_held") for s in sandbox.setup_plan(
        sandbox.SandboxPlan(name="x", netns="n", hostname="web", folder=FOLDER, software=())))
