#!/usr/bin/env bash
# Regenerates the golden files of the pure rule renderers (today: the
# service proxy's iptables-restore input, kubeletish/proxy/testdata/*.golden).
# Review the diff before committing: a changed golden file is a changed rule
# set on every node.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./kubeletish/proxy/ -run '^TestGolden$' -count=1 -update
git status --short -- kubeletish/proxy/testdata
