"""Writes the rule groups of the PrometheusRule objects in a `helm template` render as a
Prometheus rule file, for `promtool check rules` and `promtool test rules`.

    python extract_rules.py RENDER.yaml OUT.yaml [--summary-only]

--summary-only keeps only the `summary` annotation of each alert (the unit tests in
hookbridge_rules_test.yaml compare it; the long descriptions are checked by `promtool check rules`
and tests/deploy). Fails when the render holds no PrometheusRule.
"""

from __future__ import annotations

import sys

import yaml


def rule_groups(render_text: str) -> list[dict]:
    groups = []
    for doc in yaml.safe_load_all(render_text):
        if doc and doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
    return groups


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as f:
        groups = rule_groups(f.read())
    if not groups:
        print(f"{args[0]}: no PrometheusRule", file=sys.stderr)
        return 1
    if "--summary-only" in argv:
        for group in groups:
            for rule in group["rules"]:
                if "annotations" in rule:
                    rule["annotations"] = {k: v for k, v in rule["annotations"].items() if k == "summary"}
    with open(args[1], "w") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False, width=1000)
    print(f"{args[1]}: {len(groups)} group(s), {sum(len(g['rules']) for g in groups)} rule(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
