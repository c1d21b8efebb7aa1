#!/usr/bin/env bash
# `testbed kubectl apply` with several -f, a directory, --dry-run and -n (issue 12): bring
# up netpol-model, apply a file and a folder in one command, preview a change with
# --dry-run=server (nothing stored), and have a contradicting -n refused. The lab goes
# down on exit, whatever happens.
#   sudo scripts/demos/kubectl-files.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TESTBED=${TESTBED:-testbed}
LAB=${LAB:-demo-files-$$}
WORK=$(mktemp -d)

run() { echo "\$ $*" | sed "s| --lab $LAB||; s|$REPO/||; s|^\\\$ $TESTBED|\$ sudo testbed|"; "$@" 2>&1 || echo "(exit $?)"; }
trap '"$TESTBED" down "$LAB" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

"$TESTBED" up netpol-model --name "$LAB" >/dev/null 2>&1
cd "$WORK"
mkdir policies
cp "$REPO/tests/data/policies/allow-from-namespace-y.yaml" "$REPO/tests/data/policies/pod-and-namespace-one-peer.yaml" policies/
echo "notes, not a manifest" > policies/README.md
cp "$REPO/tests/data/policies/deny-all-ingress.yaml" .
echo "# lab $LAB: netpol-model is up; policies/ holds $(ls policies | tr '\n' ' ')"
run "$TESTBED" kubectl --lab "$LAB" apply -f deny-all-ingress.yaml -f policies/
run "$TESTBED" kubectl --lab "$LAB" apply -f policies/ -f "$REPO/tests/data/policies/deny-all-plus-allow-all.yaml" --dry-run=server
run "$TESTBED" kubectl --lab "$LAB" get netpol -A
run "$TESTBED" kubectl --lab "$LAB" apply -n y -f deny-all-ingress.yaml
run "$TESTBED" kubectl --lab "$LAB" apply -f policies/ -f missing.yaml
