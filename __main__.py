"""modelfleet: `pulumi up -s <stack>` builds the serving slice that `modelfleet plan` shows."""

import pulumi

from components.fleet import Fleet, FleetArgs
from components.stack_config import aws_session_settings, load_stack_config
from modelfleet.config import ConfigError
from modelfleet.plan import build_plan

try:
    plan = build_plan(load_stack_config())
except ConfigError as exc:
    # RunError prints the message alone: the key path and the fix, no Python traceback.
    raise pulumi.RunError(str(exc)) from None

fleet = Fleet(plan.config.prefix, FleetArgs(plan, aws_session_settings()))

pulumi.export("endpoints", fleet.endpoints)
pulumi.export("dashboard_url", fleet.dashboard_url)
pulumi.export("alarm_topic_arn", fleet.alarm_topic_arn)
pulumi.export("fetcher_task_definitions", fleet.fetcher_task_definitions)
pulumi.export("monthly_usd", round(plan.monthly_usd, 2))
