#!/usr/bin/env bash
# The soak's short form: three minutes of viewer churn (three cycles of 0 -> 300 -> 0 viewers,
# RTMP and HTTP-FLV) at an edge pulling from an origin, on debug builds. Fails when open
# descriptors do not come back to the same count at every empty stretch, when the edge's
# memory keeps growing past the first cycle, or when a pull leaks (the origin still serving
# the edge with nobody watching, or two pulls at once). The 30-minute run:
# `scripts/bench/soak.sh --duration 30m` (docs/RELIABILITY.md, "Soak").
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d /tmp/surge-e2e-soak.XXXXXX)
if PROFILE=debug scripts/bench/soak.sh --duration 3m --out "$out"; then
  echo "soak: passed (details in $out/summary.txt)"
  rm -rf "$out"
else
  echo "soak: FAILED; samples, troughs and logs kept in $out" >&2
  tail -n 5 "$out/edge.log" "$out/origin.log" "$out/replay.out" >&2 || true
  exit 1
fi
