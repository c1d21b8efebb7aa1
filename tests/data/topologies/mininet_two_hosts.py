"""A Mininet-style topology: two hosts on one switch, with pods declared on the hosts."""

from mininet.topo import Topo


class TwoHostsTopo(Topo):
    namespaces = {"demo": {"labels": {"role": "demo"}}}
    options = {"bgp_hold_time": 15}

    def build(self) -> None:
        switch = self.addSwitch("s1")
        h1 = self.addHost("h1", ip="172.18.203.21/24", pods=[{"name": "pod-a", "namespace": "demo"}])
        h2 = self.addHost("h2", pods=[{"name": "pod-b", "namespace": "demo", "labels": {"app": "b"}}])
        self.addLink(h1, switch)
        self.addLink(h2, switch)


topos = {"twohosts": TwoHostsTopo}
