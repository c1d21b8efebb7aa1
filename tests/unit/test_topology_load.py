"""load_topology: built-ins, files of every kind, syntax errors, the scale generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.model.topology import HostSpec, LabOptions, NamespaceSpec, PodSpec
from testbed.topology import TopologyError, builtin_topologies, load_topology, scale_topology

DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"


def error_lines(ref: str, **sizes: int) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(ref, **sizes)
    return caught.value.problems


def test_builtin_names() -> None:
    names = builtin_topologies()
    assert {"two-hosts", "scale"} <= set(names)
    assert names == sorted(names)
    assert "topology.schema" not in names


def test_two_hosts() -> None:
    topology = load_topology("two-hosts")
    assert topology.name == "two-hosts"
    assert topology.source == "built-in two-hosts"
    assert topology.hosts == (HostSpec("host1"), HostSpec("host2"))
    assert topology.namespaces == (NamespaceSpec("demo", (("role", "demo"),)),)
    assert topology.options == LabOptions()
    placed = [(p.name, p.namespace, p.host, p.label_dict) for p in topology.pods]
    assert placed == [
        ("pod-a", "demo", "host1", {"app": "a"}),
        ("pod-b", "demo", "host1", {"app": "b"}),
        ("pod-c", "demo", "host2", {"app": "c"}),
        ("pod-d", "demo", "host2", {"app": "d"}),
    ]
    assert all(p.ip is None and p.image == "busybox" and p.command == () for p in topology.pods)


def test_every_builtin_loads() -> None:
    for name in builtin_topologies():
        assert load_topology(name).hosts


def test_unknown_name_lists_builtins() -> None:
    known = ", ".join(builtin_topologies())
    assert error_lines("stars-typo") == [
        f"stars-typo: not a built-in topology nor a .yaml/.yml/.json/.py file (built-in: {known})"
    ]


def test_missing_file() -> None:
    assert error_lines("nowhere/lab.yaml") == ["nowhere/lab.yaml: no such file"]
    assert error_lines("nowhere/lab.py") == ["nowhere/lab.py: no such file"]


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("hosts = []\n")
    assert error_lines(str(path)) == [
        f"{path}: unsupported file type '.toml' (supported: .yaml, .yml, .json, .py)"
    ]


def test_yaml_file_name_defaults_to_stem(tmp_path: Path) -> None:
    path = tmp_path / "my-lab.yml"
    path.write_text("hosts: [a, b]\npods:\n  - {name: p, host: b, command: [sleep, infinity]}\n")
    topology = load_topology(str(path))
    assert topology.name == "my-lab"
    assert topology.source == str(path)
    assert topology.pods == (PodSpec("p", "default", host="b", command=("sleep", "infinity")),)


def test_json_file() -> None:
    topology = load_topology(str(DATA / "pinned.json"))
    assert topology.name == "pinned"
    assert topology.options == LabOptions(route_reflector=True, bgp_hold_time=30)
    assert [(h.name, h.ip) for h in topology.hosts] == [
        ("node-126", "172.18.203.126"),
        ("node-129", "172.18.203.129"),
        ("node-x", None),
    ]
    assert [ns.name for ns in topology.namespaces] == ["client", "stars"]
    client, frontend = topology.pods
    assert client.command == ("probe", "--urls", "http://frontend.stars:80/status")
    assert client.ip == "10.65.3.7" and client.host is None
    assert frontend.command == ("nginx", "-g", "daemon off;") and frontend.image == "nginx"


def test_several_problems_in_one_file() -> None:
    label = str(DATA / "many-problems.yaml")
    rule = "lowercase letters, digits and '-', starting and ending with a letter or digit"
    assert error_lines(label) == [
        f"{label}: {line}"
        for line in [
            "options.route_reflector: expected true or false, got a string 'yes'",
            "options.bgp_hold_time: 2 is less than the minimum 3",
            "hosts[1].name: duplicate host name 'host1'",
            "hosts[1].ip: 172.18.203.1 is reserved for the fabric gateway and etcd",
            "hosts[2]: unknown field 'addr' (allowed: name, ip)",
            f"hosts[2].name: 'Host_3' is not a valid host name ({rule})",
            "namespaces.demo.labels: label key 'bad key!': name 'bad key!' must be at most 63 "
            "characters of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit",
            "pods[0].host: 'host9' is not a host of this topology (hosts: host1, Host_3)",
            "pods[1].name: duplicate pod demo/pod-a",
            "pods[1].ip: 10.66.0.1 is outside the pod pool 10.65.0.0/16",
        ]
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "hosts:\n  - host1\n  name: x\n",
            "line 3, column 3: expected <block end>, but found '?' "
            "(while parsing a block collection)",
        ),
        (
            "hosts: [host1\n",
            "line 2, column 1: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence)",
        ),
        ("hosts: [a]\nhosts: [b]\n", "line 2, column 1: duplicate key 'hosts' (first at line 1)"),
        ("hosts: [a]\nname: x: y\n", "line 2, column 8: mapping values are not allowed here"),
    ],
)
def test_yaml_syntax_errors(tmp_path: Path, text: str, line: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert error_lines(str(path)) == [f"{path}: {line}"]


def test_json_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"hosts": ["a",]}')
    assert error_lines(str(path)) == [f"{path}: line 1, column 16: Expecting value"]


def test_empty_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert error_lines(str(path)) == [
        f"{path}: (top level): the topology is empty; it needs at least 'hosts'"
    ]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "hosts: [h]\n"
        "pods:\n"
        "  - &base {name: a, namespace: demo, labels: {app: x}}\n"
        "  - {<<: *base, name: b}\n"
    )
    assert [(p.name, p.namespace) for p in load_topology(str(path)).pods] == [
        ("a", "demo"),
        ("b", "demo"),
    ]


# --- scale ---------------------------------------------------------------------------


def test_scale_defaults() -> None:
    topology = load_topology("scale")
    assert topology.name == "scale" and topology.source == "built-in scale"
    assert topology.host_names() == ["host1", "host2"]
    assert [p.name for p in topology.pods] == [
        "pod-host1-1",
        "pod-host1-2",
        "pod-host2-1",
        "pod-host2-2",
    ]


def test_scale_sizes() -> None:
    topology = load_topology("scale", hosts=3, pods_per_host=2)
    assert topology.host_names() == ["host1", "host2", "host3"]
    assert len(topology.pods) == 6
    assert all(p.namespace == "scale" and p.label_dict == {"app": "scale"} for p in topology.pods)
    assert [p.host for p in topology.pods] == ["host1", "host1", "host2", "host2", "host3", "host3"]
    assert topology.pods[-1].name == "pod-host3-2"
    assert topology.namespaces == (NamespaceSpec("scale"),)


def test_scale_no_pods() -> None:
    assert load_topology("scale", hosts=1, pods_per_host=0).pods == ()


def test_scale_largest() -> None:
    topology = scale_topology(200, 320)
    assert len(topology.hosts) == 200 and len(topology.pods) == 64000


@pytest.mark.parametrize(
    ("hosts", "pods", "line"),
    [
        (0, 2, "--hosts: 0 is out of range (1 to 200)"),
        (201, 2, "--hosts: 201 is out of range (1 to 200)"),
        (2, -1, "--pods-per-host: -1 is out of range (0 to 1000)"),
        (2, 1001, "--pods-per-host: 1001 is out of range (0 to 1000)"),
        (
            200,
            1000,
            "--pods-per-host: 200 hosts with 1000 pods each need 3200 /26 blocks; "
            "the pool 10.65.0.0/16 has 1024",
        ),
    ],
)
def test_scale_bounds(hosts: int, pods: int, line: str) -> None:
    assert error_lines("scale", hosts=hosts, pods_per_host=pods) == [f"built-in scale: {line}"]


def test_scale_both_bounds_reported() -> None:
    assert len(error_lines("scale", hosts=0, pods_per_host=5000)) == 2


def test_sizes_only_for_scale() -> None:
    assert error_lines("two-hosts", hosts=3) == [
        "two-hosts: --hosts and --pods-per-host apply only to the scale topology"
    ]
    assert error_lines(str(DATA / "pinned.json"), pods_per_host=1) == [
        f"{DATA / 'pinned.json'}: --hosts and --pods-per-host apply only to the scale topology"
    ]
