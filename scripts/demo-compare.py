#!/usr/bin/env python3
"""Side by side: the same demo crowd under several scaling policies (scripts/demo --compare).

Usage: scripts/demo-compare.py OUT POLICY [POLICY ...]

Reads, per policy, what `scripts/demo --out OUT/POLICY` wrote: report.json (surge-load
replay: per wall second the viewers wanted and playing, refusals, and per region the viewers
on each relay) and operator-timeline.jsonl (per second the edges desired/Ready per region and
the relays running), plus demo-stream.yaml (viewersPerEdge) and the trace (demand per region).
Writes OUT/compare.json and OUT/compare.html (a table and overlaid plots over trace time,
inline SVG) and prints the table. Standard library only.

Shortfall, in viewer-seconds of trace time:
- refused: every refusal keeps its viewer away for the locator's Retry-After (2 s of wall
  time, speed x 2 trace seconds) before it asks again;
- overflow: viewers playing from a relay that is not an edge (the tier above, placed there
  because every edge of the region was full): relays at 127.x.T.n with T != 1 (the address
  scheme of surge-operator local: T = 0 origin, 1 edges, 1+L reflector level L).
Cost: relay-seconds, the relays running (draining ones included) times trace seconds.

Edges Ready before the crowd: per region, demand (the trace, scaled as the replay scales it)
is cut into levels of one edge's worth of viewers (viewersPerEdge) above what the region had
Ready at the start; for each level the demand reaches, lead = the trace time demand first
reaches it minus the time Ready capacity (edges Ready x viewersPerEdge) reached it and stayed
(negative: capacity came late, or never). Reported: levels, levels late, the worst and the
median lead, per region and in total.
"""

import csv
import html
import json
import math
import re
import sys
from pathlib import Path

RETRY_AFTER_WALL_S = 2.0
COLORS = {"surge": "#1f77b4", "hpa": "#d62728", "static": "#2ca02c"}
EXTRA_COLORS = ["#9467bd", "#ff7f0e", "#8c564b"]


def load_run(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    timeline = [
        json.loads(line)
        for line in (run_dir / "operator-timeline.jsonl").read_text().splitlines()
        if line.strip()
    ]
    stream = (run_dir / "demo-stream.yaml").read_text()
    m = re.search(r"viewersPerEdge:\s*(\d+)", stream)
    per_edge = int(m.group(1)) if m else 2000
    cluster_file = run_dir / "cluster"
    cluster = cluster_file.read_text().strip() if cluster_file.is_file() else "local"
    return {"report": report, "timeline": timeline, "viewers_per_edge": per_edge,
            "cluster": cluster}


EDGE_PORTS = ("1935", "8080")


def is_edge(relay_key: str, cluster: str = "local") -> bool:
    """local: `http://127.210.1.3:8080` -> the third octet is the tier; 1 = edges. kwok:
    viewers reach relays at their node's host ports, the edges' are the relay ports (the tier
    above is exposed on the ports plus one or two)."""
    m = re.match(r"^[a-z]+://127\.\d+\.(\d+)\.\d+:(\d+)$", relay_key)
    if m is None:
        return True
    if cluster == "kwok":
        return m.group(2) in EDGE_PORTS
    return m.group(1) == "1"


def demand_per_region(trace: Path, scale: float) -> dict:
    """Viewers per region at each trace time (the trace's steps), scaled as the replay does."""
    out: dict = {}
    with trace.open() as f:
        rows = (line for line in f if not line.startswith("#"))
        for row in csv.DictReader(rows):
            if row.get("region") in (None, "*"):
                continue
            t = float(row["t_s"])
            out.setdefault(row["region"], []).append((t, float(row["viewers"]) * scale))
    for series in out.values():
        series.sort()
    return out


def demand_at(series: list, t: float) -> float:
    """The step function `series` [(t, viewers)] at t."""
    v = 0.0
    for (ts, vs) in series:
        if ts > t:
            break
        v = vs
    return v


def ready_leads(demand: list, cap_t: list, ready: list, per_edge: int) -> list:
    """Lead (s) of Ready capacity over demand for each edge's worth of demand reached; see the
    module doc. `cap_t`/`ready`: the operator timeline's trace times and Ready capacity."""
    if not demand or not cap_t or per_edge <= 0:
        return []
    start = ready[0]
    top = max(v for (_, v) in demand)
    leads = []
    k = int(start // per_edge) + 1
    while k * per_edge <= top:
        level = k * per_edge
        k += 1
        t_d = next((t for (t, v) in demand if v >= level), None)
        if t_d is None or t_d > cap_t[-1]:
            break
        i = max((j for j, t in enumerate(cap_t) if t <= t_d), default=0)
        if ready[i] >= level:
            while i > 0 and ready[i - 1] >= level:
                i -= 1
            leads.append(t_d - cap_t[i])
        else:
            later = next((j for j in range(i, len(cap_t)) if ready[j] >= level), None)
            # Never Ready within the run: late by the rest of the run at least.
            t_c = cap_t[later] if later is not None else cap_t[-1]
            leads.append(t_d - t_c if later is not None else min(t_d - t_c, -1.0))
    return leads


def lead_summary(leads: list) -> dict:
    if not leads:
        return {"levels": 0, "late": 0, "worst_s": None, "median_s": None}
    ordered = sorted(leads)
    return {
        "levels": len(leads),
        "late": sum(1 for x in leads if x < 0),
        "worst_s": round(ordered[0], 1),
        "median_s": round(ordered[len(ordered) // 2], 1),
    }


def summarise(name: str, run: dict, demand: dict | None = None) -> dict:
    r, tl = run["report"], run["timeline"]
    d = r["details"]
    speed = float(d.get("speed", 1))
    points = r.get("timeline", [])
    wall_end = float(d.get("wall_seconds") or (points[-1]["t_s"] if points else 0))

    # Shortfall per second from the replay's timeline.
    series = {"t": [], "refused_waiting": [], "overflow_viewers": []}
    refused_at = []  # (wall t, cumulative refusals)
    overflow_vs = 0.0
    overflow_by_region: dict = {}
    prev_t = 0.0
    for p in points:
        t = float(p["t_s"])
        dt = max(t - prev_t, 0.0)
        prev_t = t
        refused_at.append((t, int(p.get("refused", 0))))
        # Refusals within the last Retry-After: viewers waiting to ask again.
        window = [c for (w, c) in refused_at if w >= t - RETRY_AFTER_WALL_S]
        base = next(
            (c for (w, c) in reversed(refused_at) if w < t - RETRY_AFTER_WALL_S), 0
        )
        waiting = (window[-1] if window else 0) - base
        over_now = 0
        for region, pl in (p.get("placement") or {}).items():
            n = sum(v for k, v in (pl.get("relays") or {}).items() if not is_edge(k, run.get("cluster", "local")))
            over_now += n
            overflow_by_region[region] = overflow_by_region.get(region, 0.0) + n * dt * speed
        overflow_vs += over_now * dt * speed
        series["t"].append(round(float(p.get("trace_t_s", t * speed)), 1))
        series["refused_waiting"].append(waiting)
        series["overflow_viewers"].append(over_now)
    refusals = int(d.get("refused", 0))
    refused_vs = refusals * RETRY_AFTER_WALL_S * speed

    # Capacity and cost from the operator's timeline, over the replay.
    cap = {"t": [], "edges_ready": [], "edges_desired": [], "regions": {}}
    relay_s = 0.0
    edge_s = 0.0
    prev = None
    for s in tl:
        t = float(s.get("t", 0))
        if t > wall_end + 1:
            break
        dt = 0.0 if prev is None else max(t - prev, 0.0)
        prev = t
        regions = s.get("regions") or {}
        relay_s += float(s.get("relays", 0)) * dt * speed
        edge_s += sum(v.get("edges_desired", 0) for v in regions.values()) * dt * speed
        cap["t"].append(round(float(s.get("trace_s", t * speed)), 1))
        cap["edges_ready"].append(sum(v.get("edges_ready", 0) for v in regions.values()))
        cap["edges_desired"].append(sum(v.get("edges_desired", 0) for v in regions.values()))
        for name_r, v in regions.items():
            reg = cap["regions"].setdefault(name_r, {"ready_capacity": [], "edges_ready": []})
            reg["ready_capacity"].append(v.get("edges_ready", 0) * run["viewers_per_edge"])
            reg["edges_ready"].append(v.get("edges_ready", 0))
        # A region missing in a sample keeps the series aligned.
        for name_r, reg in cap["regions"].items():
            if name_r not in regions:
                reg["ready_capacity"].append(0)
                reg["edges_ready"].append(0)

    leads_all = []
    lead_by_region = {}
    for region, reg in cap["regions"].items():
        leads = ready_leads((demand or {}).get(region, []), cap["t"], reg["ready_capacity"],
                            run["viewers_per_edge"])
        leads_all += leads
        lead_by_region[region] = lead_summary(leads)
    lead = lead_summary(leads_all)

    by_region = {}
    for region, b in (d.get("by_region") or {}).items():
        by_region[region] = {
            "peak_viewers": b.get("viewers_peak"),
            "refused": b.get("refused", 0),
            "overflow_placements": b.get("overflow", 0),
            "refused_viewer_seconds": b.get("refused", 0) * RETRY_AFTER_WALL_S * speed,
            "overflow_viewer_seconds": round(overflow_by_region.get(region, 0.0)),
            "peak_edges_ready": max(cap["regions"].get(region, {}).get("edges_ready", [0]) or [0]),
            "ready_lead": lead_by_region.get(region),
        }
    return {
        "policy": name,
        "peak_viewers": r.get("viewers_peak"),
        "viewer_sessions": r.get("viewer_sessions"),
        "refused": refusals,
        "overflow_placements": int(d.get("overflow", 0)),
        "refused_viewer_seconds": round(refused_vs),
        "overflow_viewer_seconds": round(overflow_vs),
        "shortfall_viewer_seconds": round(refused_vs + overflow_vs),
        "relay_seconds": round(relay_s),
        "edge_seconds": round(edge_s),
        "peak_edges_ready": max(cap["edges_ready"] or [0]),
        "lead_levels": lead["levels"],
        "lead_levels_late": lead["late"],
        "lead_worst_s": lead["worst_s"],
        "lead_median_s": lead["median_s"],
        "startup_p99_ms": (r.get("startup_ms") or {}).get("p99"),
        "lag_p99_ms": (r.get("lag_ms") or {}).get("p99"),
        "errors": r.get("errors"),
        "disconnects": d.get("disconnects"),
        "speed": speed,
        "wall_seconds": wall_end,
        "by_region": by_region,
        "series": {"replay": series, "capacity": cap},
    }


# ---- SVG plots -------------------------------------------------------------------------------

W, H, ML, MR, MT, MB = 760, 220, 56, 12, 22, 30


def color(policy: str, i: int) -> str:
    return COLORS.get(policy, EXTRA_COLORS[i % len(EXTRA_COLORS)])


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def plot(title: str, lines: list, x_max: float) -> str:
    """lines: (label, color, dashed, [(x, y)]); step lines over trace seconds."""
    y_max = nice_max(max((y for _, _, _, pts in lines for _, y in pts), default=1))
    x_max = x_max or 1
    sx = lambda x: ML + (W - ML - MR) * x / x_max  # noqa: E731
    sy = lambda y: H - MB - (H - MT - MB) * y / y_max  # noqa: E731
    out = [f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg">']
    out.append(f'<text x="{ML}" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>')
    for i in range(5):
        y = y_max * i / 4
        out.append(
            f'<line x1="{ML}" x2="{W - MR}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>'
            f'<text x="{ML - 4}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end">{y:g}</text>'
        )
    step = nice_max(x_max / 6)
    x = 0.0
    while x <= x_max + 1e-9:
        out.append(
            f'<text x="{sx(x):.1f}" y="{H - MB + 14}" font-size="10" text-anchor="middle">{x:g}</text>'
        )
        x += step
    out.append(
        f'<text x="{W - MR}" y="{H - 2}" font-size="10" text-anchor="end">trace seconds</text>'
    )
    lx = ML + 8
    for label, col, dashed, pts in lines:
        if not pts:
            continue
        d = f"M{sx(pts[0][0]):.1f},{sy(pts[0][1]):.1f}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            d += f" L{sx(x1):.1f},{sy(y0):.1f} L{sx(x1):.1f},{sy(y1):.1f}"
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        out.append(f'<path d="{d}" fill="none" stroke="{col}" stroke-width="1.5"{dash}/>')
        out.append(
            f'<line x1="{lx}" x2="{lx + 16}" y1="{MT + 6}" y2="{MT + 6}" stroke="{col}" stroke-width="2"{dash}/>'
            f'<text x="{lx + 20}" y="{MT + 10}" font-size="11">{html.escape(label)}</text>'
        )
        lx += 28 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


ROWS = [
    ("peak viewers", "peak_viewers"),
    ("refusals", "refused"),
    ("refused viewer-s", "refused_viewer_seconds"),
    ("overflow viewer-s", "overflow_viewer_seconds"),
    ("shortfall viewer-s", "shortfall_viewer_seconds"),
    ("relay-seconds", "relay_seconds"),
    ("edge-seconds", "edge_seconds"),
    ("peak edges Ready", "peak_edges_ready"),
    ("edge levels reached", "lead_levels"),
    ("levels Ready late", "lead_levels_late"),
    ("worst lead s", "lead_worst_s"),
    ("median lead s", "lead_median_s"),
    ("startup p99 ms", "startup_p99_ms"),
    ("lag p99 ms", "lag_p99_ms"),
    ("errors", "errors"),
]


def table_text(runs: list) -> str:
    head = f"  {'':20}" + "".join(f"{r['policy']:>14}" for r in runs)
    lines = [head]
    for label, key in ROWS:
        lines.append(f"  {label:20}" + "".join(f"{fmt(r.get(key)):>14}" for r in runs))
    return "\n".join(lines)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def page(runs: list, demand: dict, settings: dict) -> str:
    x_max = max(
        (max(r["series"]["replay"]["t"] or [0]) for r in runs), default=0
    )
    parts = [
        "<!doctype html><meta charset=utf-8><title>Surge demo: policies compared</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:820px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}</style>",
        "<h1>The same crowd, policy against policy</h1>",
        f"<p>{html.escape(settings['trace'])}: up to {settings['viewers']} real viewers at "
        f"{settings['speed']}x, {settings['viewers_per_edge']} viewers per edge, through each "
        "region's locator; surge-operator local with each policy in turn. Shortfall = "
        "viewer-seconds refused (each refusal: the 2 s Retry-After, in trace time) plus "
        "viewer-seconds served by overflow (from a relay above the edges).</p>",
        "<table><tr><th></th>" + "".join(f"<th>{html.escape(r['policy'])}</th>" for r in runs) + "</tr>",
    ]
    for label, key in ROWS:
        parts.append(
            f"<tr><td>{html.escape(label)}</td>"
            + "".join(f"<td>{fmt(r.get(key))}</td>" for r in runs)
            + "</tr>"
        )
    parts.append("</table>")
    regions = sorted({reg for r in runs for reg in r["series"]["capacity"]["regions"]})
    for reg in regions:
        lines = [("demand", "#555", True, demand.get(reg, []))]
        for i, r in enumerate(runs):
            c = r["series"]["capacity"]
            ys = c["regions"].get(reg, {}).get("ready_capacity", [])
            lines.append((f"{r['policy']} Ready capacity", color(r["policy"], i), False, list(zip(c["t"], ys))))
        parts.append(plot(f"{reg}: demand vs Ready capacity (viewers)", lines, x_max))
    lines = []
    for i, r in enumerate(runs):
        c = r["series"]["capacity"]
        lines.append((f"{r['policy']} Ready", color(r["policy"], i), False, list(zip(c["t"], c["edges_ready"]))))
        lines.append((f"{r['policy']} desired", color(r["policy"], i), True, list(zip(c["t"], c["edges_desired"]))))
    parts.append(plot("edges, all regions", lines, x_max))
    lines = []
    for i, r in enumerate(runs):
        s = r["series"]["replay"]
        ys = [a + b for a, b in zip(s["refused_waiting"], s["overflow_viewers"])]
        lines.append((f"{r['policy']} refused + overflow", color(r["policy"], i), False, list(zip(s["t"], ys))))
    parts.append(plot("viewers refused (waiting to retry) or on overflow, per second", lines, x_max))
    return "\n".join(parts) + "\n"


def main(argv: list) -> int:
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2
    out = Path(argv[1])
    loaded = []
    for policy in argv[2:]:
        run_dir = out / policy
        try:
            loaded.append((policy, load_run(run_dir)))
        except (OSError, ValueError) as e:
            print(f"demo-compare: {run_dir}: {e}", file=sys.stderr)
            return 1
    first = loaded[0][1]
    d = first["report"]["details"]
    trace = Path(d.get("trace", ""))
    demand = demand_per_region(trace, float(d.get("scale", 1))) if trace.is_file() else {}
    runs = [summarise(policy, run, demand) for (policy, run) in loaded]
    settings = {
        "trace": str(trace),
        "viewers": max((r["peak_viewers"] or 0) for r in runs),
        "speed": runs[0]["speed"],
        "viewers_per_edge": first["viewers_per_edge"],
    }
    (out / "compare.json").write_text(
        json.dumps({"settings": settings, "policies": [r["policy"] for r in runs],
                    "runs": {r["policy"]: r for r in runs}}, indent=1) + "\n"
    )
    (out / "compare.html").write_text(page(runs, demand, settings))
    print(table_text(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
