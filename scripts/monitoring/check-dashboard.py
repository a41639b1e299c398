#!/usr/bin/env python3
"""Checks a Grafana dashboard's structure, as Grafana would need it, without Grafana.

Usage: check-dashboard.py DASHBOARD.json [--exprs OUT.json] [--rules OUT.yaml]
                          [--rate-interval 15s]

Checks: a `datasource` variable of type datasource for Prometheus, which every panel, target
and query variable uses (so the dashboard imports into any Grafana with any Prometheus);
unique panel ids; every panel inside the 24-column grid and no two overlapping; every
non-row panel has targets, each with a unique refId and a PromQL expression that uses only
defined variables (or Grafana's $__ ones) and has balanced brackets and quotes; annotations
the same. Exit 1 with one line per problem.

--exprs writes every expression (panels, annotations, variables' label_values selectors)
with the variables replaced for a query: multi-value ones by `.*`, $__rate_interval and
$__interval by --rate-interval, as [{"panel": title, "refId": id, "expr": PromQL}, ...];
--rules writes them as a Prometheus rule file (one recording rule each) for
`promtool check rules`, which parses every expression.
"""
import argparse
import json
import re
import sys

BUILTIN = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
VAR = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def variables_of(expr):
    return {a or b or c for a, b, c in VAR.findall(expr)}


def balanced(expr):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack, quote = [], None
    for ch in expr:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and quote is None


def label_values_selector(query):
    """The series selector of a label_values(selector, label) variable query."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
    return m.group(1) if m else None


def check(dashboard):
    problems, exprs = [], []
    templating = dashboard.get("templating", {}).get("list", [])
    names = {v.get("name") for v in templating}
    ds = [v for v in templating if v.get("type") == "datasource"]
    if not any(v.get("query") == "prometheus" and v.get("name") == "datasource" for v in ds):
        problems.append("no datasource variable named datasource of type prometheus")
    ds_ref = "${datasource}"

    def uses_datasource(obj, where):
        d = obj.get("datasource")
        if not isinstance(d, dict) or d.get("uid") != ds_ref or d.get("type") != "prometheus":
            problems.append(f"{where}: datasource is {d!r}, not the ${{datasource}} variable")

    def check_expr(expr, where):
        if not isinstance(expr, str) or not expr.strip():
            problems.append(f"{where}: empty expression")
            return
        undefined = variables_of(expr) - names - BUILTIN
        if undefined:
            problems.append(f"{where}: undefined variables {sorted(undefined)}")
        if not balanced(expr):
            problems.append(f"{where}: unbalanced brackets or quotes in {expr!r}")

    for v in templating:
        if v.get("type") == "query":
            where = f"variable {v.get('name')}"
            uses_datasource(v, where)
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            sel = label_values_selector(q or "")
            if sel is None:
                problems.append(f"{where}: query {q!r} is not label_values(selector, label)")
            else:
                check_expr(sel, where)
                exprs.append({"panel": where, "refId": "-", "expr": sel})

    ids, boxes = set(), []
    for p in panels_of(dashboard):
        title = p.get("title") or "(untitled)"
        pid = p.get("id")
        if not isinstance(pid, int):
            problems.append(f"panel {title!r}: id {pid!r} is not a whole number")
        elif pid in ids:
            problems.append(f"panel {title!r}: id {pid} is used twice")
        ids.add(pid)
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy"):
            problems.append(f"panel {title!r}: gridPos {g!r} lacks h, w, x or y")
            continue
        if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"panel {title!r}: outside the 24-column grid {g!r}")
        for other, og in boxes:
            if (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"]
                    and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]):
                problems.append(f"panel {title!r} overlaps {other!r}")
        boxes.append((title, g))
        if p.get("type") == "row":
            continue
        uses_datasource(p, f"panel {title!r}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"panel {title!r}: refIds {refs} not unique")
        for t in targets:
            where = f"panel {title!r} {t.get('refId')}"
            uses_datasource(t, where)
            check_expr(t.get("expr"), where)
            exprs.append({"panel": title, "refId": t.get("refId"), "expr": t.get("expr", "")})
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        where = f"annotation {a.get('name')!r}"
        uses_datasource(a, where)
        check_expr(a.get("expr"), where)
        exprs.append({"panel": where, "refId": "-", "expr": a.get("expr", "")})
    for key in ("uid", "title"):
        if not dashboard.get(key):
            problems.append(f"the dashboard has no {key}")
    return problems, exprs


def substitute(expr, rate_interval):
    def one(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in ("__rate_interval", "__interval", "__range"):
            return rate_interval
        return ".*"
    return VAR.sub(one, expr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dashboard")
    ap.add_argument("--exprs", help="write the expressions, variables replaced, as JSON")
    ap.add_argument("--rules", help="write them as a rule file for promtool check rules")
    ap.add_argument("--rate-interval", default="1m")
    args = ap.parse_args()
    try:
        with open(args.dashboard) as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"check-dashboard: {args.dashboard}: {e}")
    problems, exprs = check(dashboard)
    for p in problems:
        print(f"check-dashboard: {args.dashboard}: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    for e in exprs:
        e["expr"] = substitute(e["expr"], args.rate_interval)
    if args.exprs:
        with open(args.exprs, "w") as f:
            json.dump(exprs, f, indent=1)
    if args.rules:
        with open(args.rules, "w") as f:
            rules = [{"record": f"dashboard:expr{i}", "expr": e["expr"]} for i, e in enumerate(exprs)]
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)
    print(f"check-dashboard: {args.dashboard}: {len(exprs)} expressions in "
          f"{sum(1 for _ in panels_of(dashboard))} panels, structure ok")


if __name__ == "__main__":
    main()
