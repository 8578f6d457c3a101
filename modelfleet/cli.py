"""`modelfleet`: plan, validate, price and check a stack offline, without an AWS account.

Every command reads the same StackConfig and FleetPlan that the Pulumi program deploys. Bad
input exits 2 with one message naming the stack file and key; nothing prints a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelfleet import coldstart, cost, sizing
from modelfleet.catalog import GPUS, INSTANCE_TYPES
from modelfleet.coldstart import ColdStartPlan
from modelfleet.config import ConfigError, Platform, StackConfig, load_stack_file, resolve_stack
from modelfleet.plan import FleetPlan, ModelPlan, build_plan

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Plan, size, price and check modelfleet stacks offline.",
)
out = Console()
err = Console(stderr=True)

EXIT_BAD_INPUT = 2

StacksDir = Annotated[Path, typer.Option("--stacks-dir", help="where stack files live")]
Json = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]


def _fail(message: str) -> typer.Exit:
    # Messages quote the user's input: escaped, so "[/x]" in a value is text, not Rich markup
    # (which would swallow "[a-z]" in a pattern, or raise on a stray closing tag).
    err.print(f"[bold red]error[/]: {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _load(stack: str, stacks_dir: Path) -> tuple[StackConfig, FleetPlan]:
    path = resolve_stack(stack, stacks_dir)
    try:
        config = load_stack_file(path)
        return config, build_plan(config, origin=str(path))
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


@app.command()
def plan(
    stack: Annotated[str, typer.Argument(help="stack name in stacks/ or a stack file path")],
    json_out: Json = False,
    stacks_dir: StacksDir = Path("stacks"),
) -> None:
    """Sizing, tensor parallel, throughput, cold start, resources and monthly cost."""
    config, p = _load(stack, stacks_dir)
    if json_out:
        print(json.dumps(p.to_dict(), indent=2))
        return
    resources = p.resources
    c = config
    out.print(
        f"[bold]{escape(c.stack)}[/] · team [bold]{c.team}[/] · {c.environment.value} · "
        f"{c.region} · "
        f"{'HTTPS' if p.https else 'HTTP (ephemeral)'}" + (" · ephemeral" if c.ephemeral else "")
    )
    for m in p.models:
        _model_table(m)
    if p.scheduled_actions:
        out.print(
            f"Schedule ({c.schedule.timezone if c.schedule else ''}): running "
            f"{p.running_fraction:.0%} of the time · "
            + " · ".join(f"{a.action} {a.schedule}" for a in p.models[0].scheduled_actions)
        )
    _deployment_table(p)
    for note in p.notes:
        out.print(f"[yellow]note: {note}[/]")
    if p.eks is not None:
        _eks_table(p)
    _cost_table(p)
    if p.eks is not None:
        _kubernetes_table(p)
    r = Table(title=f"Resources pulumi up creates ({len(resources)})", title_justify="left")
    r.add_column("type")
    r.add_column("count", justify="right")
    counts: dict[str, int] = {}
    for res in resources:
        counts[res.type] = counts.get(res.type, 0) + 1
    for rtype, n in sorted(counts.items()):
        r.add_row(rtype, str(n))
    out.print(r)
    out.print(f"[bold]Monthly cost: {_usd(p.monthly_usd)}[/] (a month is 730 h)")
    out.print(
        "[dim]Estimates assume: "
        + "; ".join(f"{a.name} {a.value}" for a in (*sizing.ASSUMPTIONS, *coldstart.ASSUMPTIONS))
        + " (modelfleet/sizing.py and coldstart.py give the reasons).[/]",
        highlight=False,
    )


def _kubernetes_table(p: FleetPlan) -> None:
    from modelfleet.kube.render import object_summary

    t = Table(
        title="Kubernetes objects per model (modelfleet render STACK --out DIR writes them)",
        title_justify="left",
    )
    t.add_column("scope")
    t.add_column("objects")
    for scope, names in object_summary(p).items():
        t.add_row(scope, ", ".join(names))
    out.print(t)


def _model_table(m: ModelPlan) -> None:
    hc = m.vllm_health_check
    t = Table(title=f"Model {m.name}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    rows = [
        ("source", escape(m.source)),
        ("instance", f"{m.instance_type}: {m.gpus_per_instance} x {m.gpu}"),
        ("dtype / maxModelLen", f"{m.dtype} (KV {m.kv_cache_dtype}) / {m.max_model_len:,}"),
        (
            "tensor parallel",
            f"{m.tensor_parallel} ({m.tasks_per_instance} replica(s) per instance)",
        ),
        (
            "memory per GPU",
            f"need {m.need_per_gpu_gib:.1f} GiB <= budget "
            f"{m.budget_per_gpu_gib:.1f} GiB: {'fits' if m.fits else 'DOES NOT FIT'}",
        ),
        (
            "weights",
            f"{m.weights_gib:.1f} GiB on GPU as {m.dtype}; checkpoint {m.checkpoint} "
            f"{m.checkpoint_gib:.1f} GiB fetched and read at start",
        ),
        (
            "KV cache",
            f"{m.kv_cache_gib:.1f} GiB per replica = {m.kv_cache_tokens:,} tokens "
            f"({m.kv_per_sequence_gib:.2f} GiB per full sequence)",
        ),
        ("max-num-seqs", str(m.max_num_seqs)),
        (
            "decode tokens/s",
            f"{m.single_stream_tokens_per_s:.0f} single stream, "
            f"{m.batched_tokens_per_s:,.0f} at batch {m.batch}",
        ),
        (
            "cold start",
            f"{_duration(m.cold_start_s)} from the capacity request with zero running instances"
            f" (first start {_duration(m.first_start_s)}, on a running instance "
            f"{_duration(m.task_start_s)})",
        ),
        (
            "health check",
            f"start {hc.start_period}s + {hc.retries} x {hc.interval}s; "
            f"service grace {m.grace_period_s}s",
        ),
        (
            "task",
            f"{m.task_cpu} CPU units, {m.task_memory_mib:,} MiB, /dev/shm "
            f"{m.shared_memory_mib} MiB",
        ),
        ("replicas", f"{m.replicas_min}-{m.replicas_max}, {m.capacity}"),
        ("service", f"{escape(m.service_name)}, listener rule priority {m.listener_priority}"),
        ("pre-warm timeout", _duration(m.prewarm_timeout_s)),
        ("$ per 1M output tokens", f"{_usd(m.cost.usd_per_million_tokens)} at 50 % busy"),
        ("monthly", f"{_usd(m.cost.monthly_usd)} (at max replicas {_usd(m.cost.monthly_max_usd)})"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    if m.cold_start is not None:
        _cold_start_rows(t, m.cold_start, woken=m.replicas_min == 0)
    for note in m.notes:
        t.add_row("note", f"[yellow]{note}[/]")
    out.print(t)


def _cold_start_rows(t: Table, cs: ColdStartPlan, woken: bool) -> None:
    """Each phase of both starts with its figure's source, and the request-triggered path."""
    for path in (cs.warm, cs.first):
        label = "warm start" if path.kind == "warm" else "first start"
        for ph in path.phases:
            t.add_row(
                f"  {label}: {ph.phase}",
                f"{_duration(ph.seconds)} - {escape(ph.how)} [dim]({escape(ph.source)})[/]",
            )
    tr = cs.trigger
    t.add_row(
        "  woken by a request",
        f"{_duration(tr.total_s)}: trigger {tr.metric_period_s}s metric + "
        f"{tr.alarm_window_s}s alarm window, then the warm start [dim]({escape(tr.source)})[/]"
        + ("" if woken else " (applies with replicas.min 0)"),
    )


def _eks_table(p: FleetPlan) -> None:
    e = p.eks
    assert e is not None
    t = Table(title=f"EKS cluster {e.cluster_name}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    endpoint = "private" + (
        f" + public from {', '.join(e.public_access_cidrs)}" if e.public_access_cidrs else " only"
    )
    t.add_row(
        "Kubernetes",
        f"{e.kubernetes_version}: {e.support.value.lower()} support (standard ends "
        f"{e.end_of_standard.isoformat()}), upgrade policy {e.support_type.value}",
    )
    t.add_row("API endpoint", endpoint)
    t.add_row("system nodes", f"{e.system_node_count} x {e.system_instance_type}")
    for pool in e.node_pools.values():
        t.add_row(
            f"NodePool {pool.name}",
            f"{pool.instance_type} {pool.capacity_type}, weight {pool.weight}, "
            f"nvidia.com/gpu <= {pool.gpu_limit}, models {', '.join(pool.models)}; "
            f"empty nodes go after 5m, expiry grace {pool.termination_grace_period}",
        )
    ic = e.image_cache
    if ic is None:
        t.add_row("image cache", "off (eks.imageCache.enabled false): SOCI parallel pull per node")
    else:
        init = (
            f"initialized at {ic.rate_mibps} MiB/s ({ic.initialization_s:.0f} s for all of it)"
            if ic.rate_mibps is not None
            else f"fast snapshot restore ({ic.fsr_credits:g} volume credits per AZ-hour)"
        )
        t.add_row(
            "image cache",
            f"data volume {ic.volume_gib} GiB from a snapshot of {ic.snapshot_data_gb:g} GB, "
            f"{init}; built on a {ic.builder_instance_type} from {ic.ami_parameter}",
        )
    t.add_row(
        "add-ons", ", ".join(f"{n} {a.version or '(EKS default)'}" for n, a in e.addons.items())
    )
    t.add_row("charts", ", ".join(f"{r.chart.name} {r.chart.version}" for r in e.releases.values()))
    t.add_row(
        "identities",
        ", ".join(f"{i.namespace}/{i.service_account}" for i in e.identities.values()),
    )
    out.print(t)


def _deployment_table(p: FleetPlan) -> None:
    """What the plan decided beyond the models: subnets, drain, GPU groups, secrets."""
    t = Table(title="Deployment", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    if p.subnets is not None:
        t.add_row("VPC", p.subnets.vpc)
        t.add_row("public subnets", ", ".join(p.subnets.public))
        t.add_row(
            "private subnets",
            f"{', '.join(p.subnets.private)} (each must hold "
            f"{p.subnets.private_addresses_needed} addresses)",
        )
    else:
        t.add_row("VPC", f"existing {p.config.network.vpc_id}")
    d = p.drain
    eks = p.config.platform is Platform.EKS
    t.add_row(
        "drain",
        (
            f"deregistration delay {d.deregistration_delay_s}s · preStop {d.pod_pre_stop_s}s · "
            f"sidecar drain {d.pod_sidecar_drain_s}s · terminationGracePeriodSeconds "
            f"{d.pod_termination_grace_s}s"
        )
        if eks
        else (
            f"deregistration delay {d.deregistration_delay_s}s · sidecar drain "
            f"{d.sidecar_drain_s}s · stopTimeout {d.stop_timeout_s}s"
        ),
    )
    # ECS capacity: an ASG and capacity provider per group; EKS shows its NodePools below.
    for g in [] if eks else p.capacity.values():
        wp = g.warm_pool
        pool = (
            f"; warm pool up to {wp.max_group_prepared_capacity} prepared (stopped, "
            f"{_usd(wp.stopped_volume_monthly_usd)}/month of volumes)"
            if wp
            else "; no warm pool"
        )
        t.add_row(
            f"GPU group {g.key}",
            f"{', '.join(g.models)}: ASG 0-{g.max_size}, scaling step <= "
            f"{g.max_scaling_step}{pool}",
        )
    # Groups kept for one more `pulumi up` while the services move (keepCapacityProviders).
    for k in p.kept_capacity.values():
        t.add_row(
            f"GPU group {k.key}",
            "kept for this pulumi up (keepCapacityProviders): left as it is, its provider "
            f"attached; the services move to {', '.join(k.moved_to) or 'other groups'}; "
            "remove it from the key on the next run",
        )
    e = p.engine_image
    t.add_row(
        "engine image",
        escape(
            f"{e.cache_repository} (ECR pull-through cache of Docker Hub, "
            f"{'@' + e.digest if e.digest else 'digest resolved at pulumi up'})"
            if e.mode == "pull-through"
            else f"{e.reference} (as given)"
        ),
    )
    t.add_row(
        "secrets",
        ", ".join(
            [f"{s.config_key} -> {s.container} {s.env}" for s in p.secrets]
            + (
                [f"modelfleet:images.dockerHubCredentials -> {e.secret_name} (ECR)"]
                if e.mode == "pull-through"
                else []
            )
        )
        or "none",
    )
    out.print(t)


def _cost_table(p: FleetPlan) -> None:
    t = Table(title="Monthly cost (us-east-1 list prices)", title_justify="left")
    t.add_column("item")
    t.add_column("detail")
    t.add_column("$/month", justify="right")
    for m in p.models:
        t.add_row(
            f"GPU {m.name}",
            f"{m.cost.instances_min} x {m.instance_type} {m.capacity} at "
            f"{_usd(m.cost.on_demand_hourly)}/h on-demand, {p.running_fraction:.0%} of 730 h "
            f"(max {m.cost.instances_max}: {_usd(m.cost.monthly_max_usd)})",
            _usd(m.cost.monthly_usd),
        )
    s = p.shared_cost
    for name, detail, value in (
        ("EFS", "weights storage + Elastic reads at starts", s.efs_usd),
        ("ALB", "hours + 1 LCU", s.alb_usd),
        ("NAT", f"{p.config.nat_gateway_count} gateway(s) + image pulls", s.nat_usd),
        ("VPC endpoints", f"{len(p.interface_endpoints)} interface endpoints", s.endpoints_usd),
        ("CloudWatch", "alarms, dashboard, custom metrics", s.monitoring_usd),
        ("KMS + Secrets Manager", "keys and secrets", s.keys_and_secrets_usd),
        ("warm pools", "stopped GPU hosts' root volumes (gp3)", s.warm_pools_usd),
        ("engine image cache", "ECR storage of the pulled-through image", s.engine_cache_usd),
    ):
        t.add_row(name, detail, _usd(value))
    if p.eks is not None:
        e = p.eks
        for name, detail, value in (
            (
                "EKS control plane",
                f"Kubernetes {e.kubernetes_version}, {e.support.value.lower()} support rate",
                e.cost.control_plane_usd,
            ),
            (
                "EKS system nodes",
                f"{e.system_node_count} x {e.system_instance_type} on-demand (controllers)",
                e.cost.system_nodes_usd,
            ),
            ("Karpenter interruption queue", "SQS requests", e.cost.interruption_queue_usd),
            (
                "Container Insights",
                "per-node observations + control-plane logs",
                e.cost.container_insights_usd,
            ),
            (
                "GPU image cache",
                "snapshot storage"
                + (
                    " + fast snapshot restore per AZ"
                    if e.image_cache and e.image_cache.fsr_monthly_usd
                    else ""
                )
                if e.image_cache
                else "off",
                e.cost.image_cache_usd,
            ),
        ):
            t.add_row(name, detail, _usd(value))
    t.add_row("[bold]total[/]", "", f"[bold]{_usd(p.monthly_usd)}[/]")
    out.print(t)


@app.command()
def render(
    stack: Annotated[str, typer.Argument(help="stack name in stacks/ or a stack file path")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write the YAML files to")],
    stacks_dir: StacksDir = Path("stacks"),
) -> None:
    """platform: eks: write the Kubernetes objects `pulumi up` applies, one YAML file per kind
    and model, secrets redacted, for review and `kubectl diff -f DIR`."""
    from modelfleet.kube.render import render_files

    config, p = _load(stack, stacks_dir)
    if p.eks is None:
        raise _fail(
            f"{config.stack}: platform is {config.platform.value}; render writes the Kubernetes "
            "objects of platform: eks stacks"
        )
    files = render_files(p)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out_dir / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"--out {out_dir}: cannot write ({exc.strerror})") from None
    out.print(
        f"{len(files)} files in {escape(str(out_dir))} (namespace {p.eks.namespace}); "
        "references not known before `pulumi up` read <placeholder>, secrets "
        "<redacted>"
    )


@app.command()
def validate(
    stacks: Annotated[list[str] | None, typer.Argument(help="stacks; default: all")] = None,
    stacks_dir: StacksDir = Path("stacks"),
) -> None:
    """Validate stacks (every stack in stacks/ when none is named)."""
    names = stacks or [str(p) for p in sorted(stacks_dir.glob("Pulumi.*.yaml"))]
    if not names:
        raise _fail(f"no stack files in {stacks_dir}/")
    failed = 0
    for name in names:
        path = resolve_stack(name, stacks_dir)
        try:
            build_plan(load_stack_file(path), origin=str(path))
        except ConfigError as exc:
            failed += 1
            err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        out.print(f"[green]ok[/] {escape(str(path))}")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("cost")
def cost_cmd(
    stack: Annotated[str, typer.Argument(help="stack name in stacks/ or a stack file path")],
    json_out: Json = False,
    stacks_dir: StacksDir = Path("stacks"),
) -> None:
    """Monthly cost of a stack, by model and shared infrastructure."""
    _, p = _load(stack, stacks_dir)
    if json_out:
        d = p.to_dict()
        print(
            json.dumps(
                {
                    k: d[k]
                    for k in ("stack", "running_fraction", "shared_monthly_usd", "monthly_usd")
                }
                | {
                    "models": [
                        {"name": m["name"], "monthly_usd": m["monthly_usd"], "cost": m["cost"]}
                        for m in d["models"]
                    ]
                },
                indent=2,
            )
        )
        return
    _cost_table(p)


@app.command()
def breakeven(
    input_tokens_per_day: Annotated[float, typer.Option(min=0)],
    output_tokens_per_day: Annotated[float, typer.Option(min=0)],
    api_input_price: Annotated[float, typer.Option(min=0, help="USD per 1M input tokens")],
    api_output_price: Annotated[float, typer.Option(min=0, help="USD per 1M output tokens")],
    instance_type: Annotated[str | None, typer.Option()] = None,
    hourly_price: Annotated[float | None, typer.Option(min=0, help="USD per instance-hour")] = None,
    instances: Annotated[int, typer.Option(min=1)] = 1,
    engineering_hours: Annotated[float, typer.Option(min=0, help="per month")] = 0.0,
    engineering_rate: Annotated[float, typer.Option(min=0, help="USD per hour")] = 0.0,
    json_out: Json = False,
) -> None:
    """API bill vs. self-hosted instances (always on) plus engineering time."""
    numbers = {
        "--input-tokens-per-day": input_tokens_per_day,
        "--output-tokens-per-day": output_tokens_per_day,
        "--api-input-price": api_input_price,
        "--api-output-price": api_output_price,
        "--hourly-price": hourly_price or 0.0,
        "--engineering-hours": engineering_hours,
        "--engineering-rate": engineering_rate,
    }
    infinite = [k for k, v in numbers.items() if not math.isfinite(v)]
    if infinite:  # "inf" parses as a float; the JSON answer would not parse back
        raise _fail(f"{', '.join(infinite)}: give a finite number")
    if (instance_type is None) == (hourly_price is None):
        raise _fail("give exactly one of --instance-type or --hourly-price")
    if instance_type is not None:
        if instance_type not in INSTANCE_TYPES:
            raise _fail(
                f"--instance-type: unknown instance type {instance_type!r}; the catalog has: "
                + ", ".join(sorted(INSTANCE_TYPES))
            )
        hourly = cost.hourly_price(instance_type)
    else:
        assert hourly_price is not None
        hourly = hourly_price
    b = cost.breakeven(
        input_tokens_per_day=input_tokens_per_day,
        output_tokens_per_day=output_tokens_per_day,
        api_input_price=api_input_price,
        api_output_price=api_output_price,
        hourly_price_usd=hourly,
        instances=instances,
        engineering_hours=engineering_hours,
        engineering_rate=engineering_rate,
    )
    if json_out:
        print(json.dumps(b.as_dict() | {"hourly_price_usd": hourly, "instances": instances}))
        return
    t = Table(title="Break-even", title_justify="left", show_header=False)
    t.add_row("API, per month", _usd(b.api_monthly_usd))
    t.add_row(
        f"self-hosted, per month ({instances} x {_usd(hourly)}/h, 730 h"
        + (f" + {engineering_hours:g} h engineering" if engineering_hours else "")
        + ")",
        _usd(b.self_hosted_monthly_usd),
    )
    t.add_row("break-even volume", f"{b.breakeven_tokens_per_day:,.0f} tokens/day")
    t.add_row("cheaper", f"[bold]{b.cheaper}[/]")
    out.print(t)
    out.print(
        "[dim]Self-hosted capacity is not checked here: `modelfleet plan` shows tokens/s "
        "per replica for a model.[/]"
    )


@app.command()
def recommend(
    model: Annotated[
        str,
        typer.Argument(
            help="catalog model (llama-3.1-8b, a repo id) or stacks/Pulumi.prod.yaml#llama-70b"
        ),
    ],
    max_model_len: Annotated[
        int | None, typer.Option(help="default: the stack entry's, or the context up to 8192")
    ] = None,
    dtype: Annotated[
        list[str] | None, typer.Option(help="serving dtype(s); default: all the checkpoint allows")
    ] = None,
    requests_per_day: Annotated[float | None, typer.Option()] = None,
    input_tokens: Annotated[int, typer.Option(help="per request")] = sizing.TYPICAL_PROMPT_TOKENS,
    output_tokens: Annotated[int, typer.Option(help="per request")] = sizing.TYPICAL_OUTPUT_TOKENS,
    tokens_per_second: Annotated[
        float | None, typer.Option(help="average input + output tokens/s, instead of requests")
    ] = None,
    hours: Annotated[
        str | None, typer.Option(help='24x7 or "SCALE-UP CRON; SCALE-DOWN CRON" (UTC)')
    ] = None,
    capacity: Annotated[str | None, typer.Option(help="on-demand, spot or mixed")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    top: Annotated[int, typer.Option(help="options to show")] = 5,
    instance_type: Annotated[
        list[str] | None, typer.Option(help="only these instance types")
    ] = None,
    min_replicas: Annotated[
        int | None, typer.Option(help="at least this many (default: a stack entry's min, or 1)")
    ] = None,
    peak_to_average: Annotated[float, typer.Option(help="peak load over the average")] = 2.0,
    target_utilization: Annotated[
        float, typer.Option(help="how busy replicas run at the peak")
    ] = 0.7,
    api: Annotated[str | None, typer.Option(help="a named API price from the catalog")] = None,
    api_input_price: Annotated[float | None, typer.Option(help="USD per 1M input tokens")] = None,
    api_output_price: Annotated[float | None, typer.Option(help="USD per 1M output tokens")] = None,
    engineering_hours: Annotated[float, typer.Option(help="per month")] = 0.0,
    engineering_rate: Annotated[float, typer.Option(help="USD per hour")] = 0.0,
    json_out: Json = False,
) -> None:
    """The cheapest GPU setup that serves MODEL at a load, and whether self-hosting pays."""
    values = {k: v for k, v in locals().items() if k != "json_out" and v is not None}
    from modelfleet.recommend import RecommendError, parse_request
    from modelfleet.recommend import recommend as run

    try:
        r = run(parse_request(values))
    except RecommendError as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps(r.as_dict(), indent=2))
        return
    _print_recommendation(r)


def _short_dtype(d: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16"}.get(d, d)


def _print_recommendation(r: Any) -> None:
    import yaml

    ld = r.load
    load = (
        f"{ld.average_tokens_per_s:,.0f} tokens/s average ({ld.input_tokens} in / "
        f"{ld.output_tokens} out per request), {ld.peak_tokens_per_s:,.0f} at peak; needs "
        f"{ld.needed_tokens_per_s:,.0f} tokens/s of capacity"
        if ld.average_tokens_per_s > 0
        else f"no load given: one replica, {ld.input_tokens} in / {ld.output_tokens} out"
    )
    out.print(
        f"[bold]{escape(r.model)}[/] · maxModelLen {r.max_model_len:,} · {r.capacity} · "
        f"hours {escape(ld.hours)} ({ld.running_fraction:.0%} of the month)"
    )
    out.print(f"Load: {load}", highlight=False)
    gpu_names = {g.name: key for key, g in GPUS.items()}
    t = Table(title="Options, cheapest first", title_justify="left", box=None, pad_edge=False)
    for col in ("instance", "TP", "dtype", "repl.", "tokens/s", "$/month", "$/1M", "start"):
        t.add_column(col, no_wrap=True, justify="left" if col in ("instance", "dtype") else "right")
    for o in r.options:
        vs = (
            f" {o.capacity_tokens_per_s / ld.peak_tokens_per_s:.1f}x"
            if ld.peak_tokens_per_s > 0
            else ""
        )
        t.add_row(
            f"{o.instance_type} {o.gpus_per_instance}x{gpu_names.get(o.gpu, o.gpu).split('-')[0]}",
            str(o.tensor_parallel),
            o.dtype if o.checkpoint == o.dtype else f"{o.dtype}<{_short_dtype(o.checkpoint)}",
            f"{o.replicas_min}-{o.replicas}" if o.replicas_min != o.replicas else str(o.replicas),
            f"{o.capacity_tokens_per_s:,.0f}{vs}",
            f"${o.monthly_usd:,.0f}",
            f"${o.usd_per_million_tokens:.2f}",
            _duration(o.cold_start_s),
        )
    out.print(t)
    if r.rejected:
        rj = Table(title="Not chosen", title_justify="left", box=None, pad_edge=False)
        rj.add_column("instance")
        rj.add_column("why")
        for x in r.rejected:
            rj.add_row(x.instance_type, escape(x.reason))
        out.print(rj)
    if r.breakeven is not None:
        b, be = r.breakeven.result, r.breakeven
        a = be.api
        name = (
            f"{a.provider} {a.model} (${a.input_usd_per_million:g} in / "
            f"${a.output_usd_per_million:g} out per 1M; {a.source})"
            if a.source is not None
            else f"${a.input_usd_per_million:g} in / ${a.output_usd_per_million:g} out per 1M"
        )
        bt = Table(title="Break-even against the API", title_justify="left", show_header=False)
        bt.add_row("API", escape(name))
        bt.add_row("API, per month", _usd(b.api_monthly_usd))
        bt.add_row(
            "self-hosted, per month",
            f"{_usd(b.self_hosted_monthly_usd)} = GPUs {_usd(be.gpu_monthly_usd)} + shared "
            f"{_usd(be.shared_monthly_usd)}"
            + (
                f" + engineering {_usd(be.engineering_monthly_usd)}"
                if be.engineering_monthly_usd
                else ""
            ),
        )
        even = b.breakeven_tokens_per_day
        bt.add_row(
            "break-even volume",
            f"{even:,.0f} tokens/day at this fleet size" if math.isfinite(even) else "never",
        )
        bt.add_row("cheaper", f"[bold]{b.cheaper}[/]")
        out.print(bt)
    w = r.options[0]
    out.print(f"[bold]models:[/] entry for {w.instance_type} (paste under modelfleet:models)")
    print(yaml.safe_dump([w.model_entry], sort_keys=False).rstrip())
    for note in r.notes:
        out.print(f"[yellow]note: {escape(note)}[/]")
    a = r.assumptions
    out.print(
        f"[dim]Replicas serve the peak ({escape(a['peak_to_average'].value)}x the average) at "
        f"{escape(a['target_utilization'].value)} utilization; tokens/s counts input + output "
        "(x: capacity over the peak); dtype<ckpt: served as dtype from a ckpt checkpoint; "
        "$/month prices replicas.max every scheduled hour, without shared costs. `--json` "
        "gives every assumption with its reason and source.[/]",
        highlight=False,
    )


@app.command()
def check(
    stack: Annotated[str, typer.Argument(help="stack name in stacks/ or a stack file path")],
    json_out: Json = False,
    stacks_dir: StacksDir = Path("stacks"),
) -> None:
    """Run the policy pack offline on the program run under Pulumi mocks."""
    _load(stack, stacks_dir)  # bad input: one message naming the key, before any Pulumi import
    verdict = _installed_check()(resolve_stack(stack, stacks_dir))
    if json_out:
        print(json.dumps(verdict.as_dict(), indent=2))
    else:
        _print_verdict(verdict)
    if not verdict.passed:
        raise typer.Exit(1)


# `check` runs the Pulumi program, which this package never imports (`make lint` checks it): the
# runner, components/check.py:run_check, is an entry point of the installed project.
CHECK_ENTRY_POINTS = "modelfleet.checks"


def _installed_check() -> Callable[[Path], Any]:
    found = entry_points(group=CHECK_ENTRY_POINTS, name="policy-pack")
    if not found:
        raise _fail(
            f"`modelfleet check` needs the project installed (`make setup`): no "
            f"{CHECK_ENTRY_POINTS}:policy-pack entry point"
        )
    (entry,) = found
    runner: Callable[[Path], Any] = entry.load()
    return runner


def _print_verdict(verdict: Any) -> None:
    if verdict.passed:
        out.print(
            f"[green]policy pack passed[/]: {verdict.rules} rules on {verdict.resources} resources"
        )
        return
    t = Table(title="Policy violations", title_justify="left")
    for col in ("policy", "resource", "message"):
        t.add_column(col)
    for v in verdict.violations:
        t.add_row(v.policy, v.urn_name, v.message)
    out.print(t)


def main() -> None:
    # build_plan turns every SizingError into a ConfigError, which the commands report.
    app()


if __name__ == "__main__":
    main()
