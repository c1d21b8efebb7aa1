#!/usr/bin/env bash
# Packet traces on the NetworkPolicy conformance model (issue 7): bring up netpol-model
# (namespaces x, y, z; pods a, b, c on host1, host2, host3), isolate x/a so that only
# namespace y reaches it, then trace an allowed and a denied path hop by hop, and show
# that the what-if (computed, nothing sent) predicts the same walk. The lab goes down on
# exit, whatever happens.
#   sudo scripts/demos/trace-netpol.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TESTBED=${TESTBED:-testbed}
LAB=${LAB:-demo-netpol-$$}

run() { echo "\$ $*" | sed "s| --lab $LAB||; s|$REPO/||; s|^\\\$ $TESTBED|\$ sudo testbed|"; "$@"; }
trap '"$TESTBED" down "$LAB" >/dev/null 2>&1 || true' EXIT

"$TESTBED" up netpol-model --name "$LAB" >/dev/null 2>&1
echo "# lab $LAB: netpol-model is up (x/a on host1, x/b on host2, y/b on host2, z/c on host3)"
run "$TESTBED" kubectl --lab "$LAB" apply -f "$REPO/tests/data/policies/deny-all-ingress.yaml"
run "$TESTBED" kubectl --lab "$LAB" apply -f "$REPO/tests/data/policies/allow-from-namespace-y.yaml"
run "$TESTBED" trace --lab "$LAB" y/b x/a:80          # allowed: y may reach x/a
run "$TESTBED" trace --lab "$LAB" z/c x/a:80          # denied: z may not
run "$TESTBED" trace --lab "$LAB" z/c x/a:80 --what-if
