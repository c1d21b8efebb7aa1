#!/usr/bin/env bash
# Packet traces on the stars demo (the network policy lab's Task 2, issue 7): bring up
# stars, apply the lab's default-deny and trace client -> frontend (dropped, named back to
# the policy); apply allow-ui, backend-policy and frontend-policy and trace it again
# (allowed, SYN-ACK followed back), then trace the frontend Service by name (the DNAT to
# its endpoint). The lab goes down on exit, whatever happens.
#   sudo scripts/demos/trace-stars.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TESTBED=${TESTBED:-testbed}
LAB=${LAB:-demo-stars-$$}
STEPS="$REPO/topologies/stars"

run() { echo "\$ $*" | sed "s| --lab $LAB||; s|$REPO/||; s|$STEPS/|topologies/stars/|; s|^\\\$ $TESTBED|\$ sudo testbed|"; "$@"; }
pod() { "$TESTBED" kubectl --lab "$LAB" get pods -n "$1" -o name | sed -n "s|^pod/\\($2-.*\\)|$1/\\1|p" | head -n 1; }
trap '"$TESTBED" down "$LAB" >/dev/null 2>&1 || true' EXIT

"$TESTBED" up stars --name "$LAB" >/dev/null 2>&1
CLIENT=$(pod client client)
FRONTEND=$(pod stars frontend)
echo "# lab $LAB: stars is up; the client is $CLIENT, the frontend $FRONTEND"
run "$TESTBED" kubectl --lab "$LAB" create -n stars -f "$STEPS/02-default-deny.yaml"
run "$TESTBED" trace --lab "$LAB" "$CLIENT" "$FRONTEND:80"
run "$TESTBED" kubectl --lab "$LAB" create -f "$STEPS/03-allow-ui.yaml"
run "$TESTBED" kubectl --lab "$LAB" create -f "$STEPS/04-backend-policy.yaml"
run "$TESTBED" kubectl --lab "$LAB" create -f "$STEPS/05-frontend-policy.yaml"
run "$TESTBED" trace --lab "$LAB" "$CLIENT" "$FRONTEND:80"
run "$TESTBED" trace --lab "$LAB" "$CLIENT" stars/frontend:80
