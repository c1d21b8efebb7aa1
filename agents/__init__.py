"""What runs inside a host netns: felix (render + apply), bgp (ExaBGP glue), apps."""
