"""Python topology files written with Mininet's Topo API."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testbed.model.topology import HostSpec, LabOptions, NamespaceSpec, PodSpec
from testbed.topology import TopologyError, load_topology

pytest.importorskip("mininet.topo")

DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"


def write(tmp_path: Path, body: str, name: str = "lab.py") -> str:
    path = tmp_path / name
    path.write_text("from mininet.topo import Topo\n\n" + textwrap.dedent(body))
    return str(path)


def error_lines(ref: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(ref)
    return caught.value.problems


def test_mininet_file_with_topos_dict() -> None:
    ref = str(DATA / "mininet_two_hosts.py")
    topology = load_topology(ref)
    assert topology.name == "mininet_two_hosts"
    assert topology.source == ref
    assert topology.hosts == (HostSpec("h1", "172.18.203.21"), HostSpec("h2"))
    assert topology.namespaces == (NamespaceSpec("demo", (("role", "demo"),)),)
    assert topology.options == LabOptions(bgp_hold_time=15)
    assert topology.pods == (
        PodSpec("pod-a", "demo", host="h1"),
        PodSpec("pod-b", "demo", labels=(("app", "b"),), host="h2"),
    )


def test_single_subclass_bare_ip_and_attributes(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Base(Topo):
            name = "from-class"

        class Lab(Base):
            pods = [{"name": "free", "command": "sleep 5"}]

            def build(self, count=3):
                for i in range(1, count + 1):
                    self.addHost(f"node{i}", ip=f"172.18.203.{100 + i}")
                self.addSwitch("s1")
        """,
    )
    topology = load_topology(ref)
    assert topology.name == "from-class"
    assert [(h.name, h.ip) for h in topology.hosts] == [
        ("node1", "172.18.203.101"),
        ("node2", "172.18.203.102"),
        ("node3", "172.18.203.103"),
    ]
    assert topology.pods == (PodSpec("free", "default", command=("sleep", "5")),)


def test_hosts_in_mininet_order(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Lab(Topo):
            def build(self):
                for name in ("h10", "h2", "h1"):
                    self.addHost(name)
        """,
    )
    assert load_topology(ref).host_names() == ["h1", "h2", "h10"]


def test_function_factory_in_topos(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        def make():
            topo = Topo()
            topo.addHost("solo")
            return topo

        topos = {"first": make, "second": Topo}
        """,
    )
    assert load_topology(ref).host_names() == ["solo"]


def test_problems_name_where_the_file_declared_them(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Lab(Topo):
            options = {"route_reflector": 1}

            def build(self):
                self.addHost("h1", ip="172.18.203.1/24", mac="00:00:00:00:00:01")
                pods = [{"name": "a"}, {"name": "B", "host": "h9"}]
                self.addHost("h2", ip="172.18.203.5/16", pods=pods)
        """,
    )
    assert error_lines(ref) == [
        f"{ref}: {line}"
        for line in [
            "options.route_reflector: expected true or false, got an integer 1",
            "hosts[0]: unknown host parameter 'mac' (allowed: ip, pods)",
            "hosts[0].ip: 172.18.203.1 is reserved for the fabric gateway and etcd",
            "hosts[1].ip: prefix /16 does not match the fabric 172.18.203.0/24",
            "hosts[1].pods[1].name: 'B' is not a valid pod name "
            "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
            "hosts[1].pods[1].host: 'h9' is not a host of this topology (hosts: h1, h2)",
        ]
    ]


def test_unknown_pod_field_on_a_host(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Lab(Topo):
            def build(self):
                self.addHost("h1", pods=[{"name": "a", "node": "h1"}])
        """,
    )
    assert error_lines(ref) == [
        f"{ref}: hosts[0].pods[0]: unknown field 'node' "
        "(allowed: name, namespace, labels, host, image, command, ip, ports)"
    ]


def test_syntax_error(tmp_path: Path) -> None:
    ref = write(tmp_path, "class Lab(Topo:\n    pass\n")
    [line] = error_lines(ref)
    assert line.startswith(f"{ref}: cannot import: line 3: SyntaxError: ")


def test_import_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.py"
    path.write_text("import no_such_module_here\n")
    assert error_lines(str(path)) == [
        f"{path}: cannot import: line 1: ModuleNotFoundError: No module named 'no_such_module_here'"
    ]


def test_exception_while_building(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Lab(Topo):
            def build(self):
                self.addHost("h1")
                raise RuntimeError("no more hosts\\ntoday")
        """,
    )
    assert error_lines(ref) == [
        f"{ref}: building the topology failed: line 7: RuntimeError: no more hosts today"
    ]


def test_exit_in_the_file_is_an_error(tmp_path: Path) -> None:
    ref = write(tmp_path, "import sys\nsys.exit(3)\n")
    assert error_lines(ref) == [f"{ref}: cannot import: line 4: SystemExit: 3"]


def test_main_block_does_not_run(tmp_path: Path) -> None:
    ref = write(
        tmp_path,
        """
        class Lab(Topo):
            def build(self):
                self.addHost("h1")

        if __name__ == "__main__":
            raise SystemExit("would start Mininet")
        """,
    )
    assert load_topology(ref).host_names() == ["h1"]


def test_no_topo(tmp_path: Path) -> None:
    ref = write(tmp_path, "x = 1\n")
    assert error_lines(ref) == [
        f"{ref}: defines no subclass of mininet.topo.Topo (and no 'topos' dict)"
    ]


def test_several_topos(tmp_path: Path) -> None:
    ref = write(tmp_path, "class A(Topo):\n    pass\n\nclass B(Topo):\n    pass\n")
    assert error_lines(ref) == [
        f"{ref}: defines several Topo classes (A, B); say which with topos = {{'name': Class}}"
    ]


def test_factory_must_return_a_topo(tmp_path: Path) -> None:
    ref = write(tmp_path, "topos = {'x': lambda: 42}\n")
    assert error_lines(ref) == [f"{ref}: the topology factory returned an integer, not a Topo"]


def test_empty_topo(tmp_path: Path) -> None:
    ref = write(tmp_path, "class Lab(Topo):\n    def build(self):\n        self.addSwitch('s1')\n")
    assert error_lines(ref) == [f"{ref}: hosts: must have at least 1 entry"]
