"""Entry point the Pulumi engine runs for the policy pack; serves until the engine stops it."""

from pulumi_policy import PolicyPack

from policies.pack import ENFORCEMENT, PACK_NAME, build_policies

PolicyPack(
    name=PACK_NAME,
    enforcement_level=ENFORCEMENT,
    policies=build_policies(),
    description="modelfleet: security baseline and GPU cost guardrails for serving stacks.",
)
