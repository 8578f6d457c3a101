"""`modelfleet check STACK`: the policy pack applied offline to what the program declares.

This joins the two halves that must not know each other: components/harness.py runs the Pulumi
program under mocks, policies/offline.py judges the recorded inputs. It lives here because
`modelfleet/` never imports pulumi, components or policies, and `policies/` never imports
components (`make lint` checks both with import-linter). The CLI reaches `run_check` through the
`modelfleet.checks` entry point that pyproject.toml declares.
"""

from __future__ import annotations

from pathlib import Path

from components.harness import run_program
from policies.offline import Verdict, load_config, run_rules


def run_check(stack_file: Path) -> Verdict:
    """Run the program for `stack_file` under Pulumi mocks, then every rule on its inputs.

    Run as an update (preview=False), so that every input the mocks can resolve is known and
    checked; anything still unknown is reported as unchecked, never as passed.
    """
    recorded = run_program(Path(stack_file), preview=False)
    return run_rules([(rec.type, rec.name, dict(rec.inputs)) for rec in recorded], load_config())
