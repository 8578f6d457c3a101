"""One stack's section of the pull-request comment: plan, monthly cost change, policy verdict,
and the `pulumi preview` summary.

Usage: python scripts/ci_preview_comment.py --stack STACK --out-dir DIR
Reads from DIR (written by scripts/ci-plan-report.sh and the workflow): plan-head.json,
plan-base.json (absent for a new stack), check.json, preview.txt (may be absent when the preview
did not run) and preview-outcome.txt; writes DIR/comment.md.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

# GitHub rejects comments above 65,536 characters; several stacks share one comment.
PREVIEW_LIMIT = 12_000
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _load(path: Path) -> Any:
    if not path.is_file() or not path.read_text(encoding="utf-8").strip():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def usd(x: float) -> str:
    return f"${x:,.2f}"


def signed_usd(x: float) -> str:
    return ("+" if x > 0 else "-" if x < 0 else "±") + usd(abs(x))


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def plan_table(head: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    base_models = {m["name"]: m for m in (base or {}).get("models", [])}
    lines = [
        "| model | instance | TP | replicas | capacity | fits | $/month | change |",
        "|---|---|---:|---|---|---|---:|---:|",
    ]
    for m in head.get("models", []):
        old = base_models.get(m["name"])
        change = "new" if old is None else signed_usd(m["monthly_usd"] - old["monthly_usd"])
        lines.append(
            f"| {_md(m['name'])} | {_md(m['instance_type'])} | {m['tensor_parallel']} | "
            f"{m['replicas_min']}-{m['replicas_max']} | {_md(m['capacity'])} | "
            f"{'yes' if m.get('fits', True) else '**no**'} | {usd(m['monthly_usd'])} | {change} |"
        )
    head_names = {m["name"] for m in head.get("models", [])}
    for name, old in base_models.items():
        if name not in head_names:
            lines.append(
                f"| ~~{_md(name)}~~ | {_md(old['instance_type'])} | | | | | removed | "
                f"{signed_usd(-old['monthly_usd'])} |"
            )
    shared = sum(head.get("shared_monthly_usd", {}).values())
    shared_row = "| shared: EFS, ALB, NAT, endpoints, monitoring, keys | | | | | |"
    lines.append(f"{shared_row} {usd(shared)} | |")
    return lines


def cost_line(head: dict[str, Any], base: dict[str, Any] | None) -> str:
    total = float(head["monthly_usd"])
    if base is None:
        return f"**Monthly cost: {usd(total)}** (new stack, nothing to compare with on the base)"
    before = float(base["monthly_usd"])
    delta = total - before
    pct = f" ({delta / before:+.1%})" if before else ""
    return f"**Monthly cost: {usd(total)}**, was {usd(before)}: **{signed_usd(delta)}**{pct}"


def verdict_lines(check: dict[str, Any] | None) -> list[str]:
    if check is None:
        return ["**Policy verdict:** :warning: `modelfleet check` did not produce a verdict."]
    if check.get("passed"):
        lines = [
            f"**Policy verdict:** :white_check_mark: passed, {check['rules']} rules on "
            f"{check['resources']} resources (offline, program under mocks)"
        ]
    else:
        lines = [
            f"**Policy verdict:** :x: {len(check['violations'])} violation(s) "
            f"({check['rules']} rules on {check['resources']} resources)",
            "",
            "| policy | resource | message |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_md(v['policy'])} | {_md(v['urn_name'])} | {_md(v['message'])} |"
            for v in check["violations"]
        ]
    unchecked = check.get("unchecked") or []
    if unchecked:
        lines.append(f"\n{len(unchecked)} check(s) skipped on values unknown before deployment.")
    return lines


def kubernetes_lines(head: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    """platform: eks: the serving slice's objects per model, with what this change adds or
    drops (a new pre-warm Job is a new source revision); `modelfleet render` writes them."""
    objs = head.get("kubernetes_objects")
    if not objs:
        return []
    before = (base or {}).get("kubernetes_objects") or {}
    lines = [
        f"**Kubernetes objects** ({sum(len(v) for v in objs.values())}; "
        f"`modelfleet render {_md(head.get('stack', 'STACK'))} --out DIR` writes them for "
        "`kubectl diff`)",
        "",
        "| scope | objects | change |",
        "|---|---|---|",
    ]
    for scope, names in objs.items():
        old = set(before.get(scope, []))
        added = [n for n in names if n not in old] if base is not None else []
        dropped = sorted(old - set(names))
        change = ", ".join([*(f"+{n}" for n in added), *(f"-{n}" for n in dropped)])
        lines.append(f"| {_md(scope)} | {_md(', '.join(names))} | {_md(change)} |")
    return lines


def preview_block(preview: str | None, outcome: str) -> list[str]:
    if preview is None or not preview.strip():
        why = {"skipped": "skipped", "failure": "failed before producing output"}.get(
            outcome, "produced no output"
        )
        return [f"**pulumi preview** ({outcome or 'not run'}): {why}."]
    text = ANSI.sub("", preview).strip()
    summary = resource_summary(text)
    if len(text) > PREVIEW_LIMIT:
        text = "…(truncated; the full output is in the job log)\n" + text[-PREVIEW_LIMIT:]
    icon = ":white_check_mark:" if outcome == "success" else ":x:"
    head = f"**pulumi preview** {icon} {outcome}"
    if summary:
        head += ": " + ", ".join(summary)
    fence = "````"  # longer than any ``` inside the output
    details = ["<details><summary>preview output</summary>", "", fence, text, fence, "</details>"]
    return [head, "", *details]


def resource_summary(text: str) -> list[str]:
    """The counts under pulumi's `Resources:` heading, e.g. ['+ 3 to create', '12 unchanged']."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Resources:":
            out = []
            for follow in lines[i + 1 :]:
                if not follow.strip() or not follow.startswith((" ", "\t")):
                    break
                out.append(follow.strip())
            return out
    return []


def render(stack: str, out_dir: Path) -> str:
    head = _load(out_dir / "plan-head.json")
    base = _load(out_dir / "plan-base.json")
    check = _load(out_dir / "check.json")
    preview_path = out_dir / "preview.txt"
    preview = preview_path.read_text(encoding="utf-8") if preview_path.is_file() else None
    outcome_path = out_dir / "preview-outcome.txt"
    outcome = outcome_path.read_text(encoding="utf-8").strip() if outcome_path.is_file() else ""
    lines = [f"### Stack `{stack}`", ""]
    if head is None:
        lines.append(":x: `modelfleet plan` failed on this branch; see the job log.")
    else:
        lines.append(
            f"{_md(head.get('environment'))} · team {_md(head.get('team'))} · "
            f"{_md(head.get('region'))} · {'HTTPS' if head.get('https') else 'HTTP (ephemeral)'}"
        )
        lines += ["", cost_line(head, base), "", *plan_table(head, base)]
        k8s = kubernetes_lines(head, base)
        if k8s:
            lines += ["", *k8s]
    lines += ["", *verdict_lines(check), "", *preview_block(preview, outcome), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    (args.out_dir / "comment.md").write_text(render(args.stack, args.out_dir), encoding="utf-8")


if __name__ == "__main__":
    main()
