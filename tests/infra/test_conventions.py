"""How components/ is written, read with `ast`: each concern a well-formed ComponentResource.

- `super().__init__("modelfleet:<area>:<Type>", name, None, opts)` with the class's own name;
- `self.register_outputs(...)` last in `__init__` (a `return` may follow it, as in an early
  exit), so the engine knows when the component is done;
- every `aws.*` / `docker_build.*` resource in a component is its child
  (`opts=child(self...)` or `opts=pulumi.ResourceOptions(parent=self...)`);
- no resource is constructed inside a function passed to `.apply(` (preview would not show it);
- every resource's logical name is read from the plan (`<ids>.<what>.name`), never formatted
  in a component, and every invoke runs with `opts=invoke(self)`;
- modelfleet/ never imports pulumi: the CLI plans without the engine.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TypeGuard

import pytest

pytestmark = pytest.mark.xdist_group("infra")

ROOT = Path(__file__).resolve().parents[2]
COMPONENT_FILES = sorted(
    p for p in (ROOT / "components").rglob("*.py") if p.name not in {"__init__.py", "harness.py"}
)
MODELFLEET_FILES = sorted((ROOT / "modelfleet").glob("*.py"))
TYPE_TOKEN = re.compile(r"^modelfleet:[a-z][a-z-]*:[A-Z][A-Za-z]*$")
RESOURCE_ROOTS = ("aws", "docker_build")


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _dotted(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_resource_call(call: ast.Call) -> bool:
    """`aws.<module>.<Class>(...)` or `docker_build.<Class>(...)`: a class, not a function."""
    name = _dotted(call.func)
    root, _, rest = name.partition(".")
    if root not in RESOURCE_ROOTS or not rest:
        return False
    last = rest.rsplit(".", 1)[-1]
    return last[:1].isupper() and not last.endswith(("Args", "ArgsDict"))


def _components(tree: ast.Module) -> list[ast.ClassDef]:
    return [
        c
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        and any(_dotted(b) == "pulumi.ComponentResource" for b in c.bases)
    ]


def _init(cls: ast.ClassDef) -> ast.FunctionDef:
    return next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")


def _is_super_init(node: ast.AST) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "__init__"
        and isinstance(node.func.value, ast.Call)
        and _dotted(node.func.value.func) == "super"
    )


def _is_register_outputs(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and _dotted(stmt.value.func) == "self.register_outputs"
    )


def _mentions_self(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "self" for n in ast.walk(node))


def _child_opts(call: ast.Call) -> bool:
    opts = next((k.value for k in call.keywords if k.arg == "opts"), None)
    if not isinstance(opts, ast.Call):
        return False
    func = _dotted(opts.func)
    if func == "child":
        return bool(opts.args) and _mentions_self(opts.args[0])
    if func == "pulumi.ResourceOptions":
        parent = next((k.value for k in opts.keywords if k.arg == "parent"), None)
        return parent is not None and _mentions_self(parent)
    return False


def test_there_are_components() -> None:
    found = [c.name for p in COMPONENT_FILES for c in _components(_parse(p))]
    assert len(found) >= 13, found


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.name)
def test_component_shape(path: Path) -> None:
    for cls in _components(_parse(path)):
        init = _init(cls)
        supers = [n for n in ast.walk(init) if _is_super_init(n)]
        assert len(supers) == 1, f"{cls.name}: one super().__init__ call"
        (call,) = supers
        token, name, props, opts = call.args
        assert isinstance(token, ast.Constant) and TYPE_TOKEN.match(str(token.value)), (
            f"{cls.name}: type token {ast.unparse(token)}"
        )
        assert str(token.value).rsplit(":", 1)[1] == cls.name
        assert isinstance(name, ast.Name) and name.id == "name"
        assert isinstance(props, ast.Constant) and props.value is None
        assert isinstance(opts, ast.Name) and opts.id == "opts"
        body = init.body
        last = body[-1]
        if isinstance(last, ast.Return):
            last = body[-2]
        assert _is_register_outputs(last), f"{cls.name}: __init__ must end in register_outputs"
        # An early exit must register outputs too.
        for node in ast.walk(init):
            if isinstance(node, ast.If):
                for block in (node.body, node.orelse):
                    if block and isinstance(block[-1], ast.Return):
                        assert len(block) >= 2 and _is_register_outputs(block[-2]), (
                            f"{cls.name}: return without register_outputs at line {node.lineno}"
                        )


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.name)
def test_every_resource_is_a_child(path: Path) -> None:
    tree = _parse(path)
    for cls in _components(tree):
        for node in ast.walk(cls):
            if isinstance(node, ast.Call) and _is_resource_call(node):
                assert _child_opts(node), (
                    f"{path.name}:{node.lineno} {_dotted(node.func)} without opts=child(self)"
                )


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.name)
def test_no_resource_outside_a_component(path: Path) -> None:
    """Module-level helpers build arguments, never resources (they would have no parent)."""
    for node in _parse(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for call in ast.walk(node):
                assert not (isinstance(call, ast.Call) and _is_resource_call(call)), (
                    f"{path.name}:{call.lineno}: a resource in module-level {node.name}()"
                )


def _functions_passed_to_apply(tree: ast.Module) -> list[ast.AST]:
    local_defs = {
        n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "apply"
        ):
            continue
        for arg in node.args:
            if isinstance(arg, ast.Lambda):
                found.append(arg)
            elif isinstance(arg, ast.Name) and arg.id in local_defs:
                found.append(local_defs[arg.id])
            elif isinstance(arg, ast.Attribute) and arg.attr in local_defs:
                found.append(local_defs[arg.attr])
            elif isinstance(arg, ast.Call) and _dotted(arg.func) in (
                "partial",
                "functools.partial",
            ):
                target = arg.args[0]
                key = target.attr if isinstance(target, ast.Attribute) else _dotted(target)
                if key in local_defs:
                    found.append(local_defs[key])
    return found


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.name)
def test_no_resource_inside_apply(path: Path) -> None:
    for fn in _functions_passed_to_apply(_parse(path)):
        for node in ast.walk(fn):
            assert not (isinstance(node, ast.Call) and _is_resource_call(node)), (
                f"{path.name}:{node.lineno}: a resource constructed inside .apply()"
            )


def test_apply_detection_sees_what_it_should() -> None:
    """The checks above are only as good as their parsing: try them on bad code."""
    bad = ast.parse(
        "class Bad(pulumi.ComponentResource):\n"
        "    def __init__(self, name, args, opts=None):\n"
        "        super().__init__('modelfleet:bad:Bad', name, None, opts)\n"
        "        x.apply(lambda v: aws.s3.Bucket('b', opts=child(self)))\n"
        "        aws.sns.Topic('t')\n"
    )
    (fn,) = _functions_passed_to_apply(bad)
    assert any(isinstance(n, ast.Call) and _is_resource_call(n) for n in ast.walk(fn))
    (cls,) = _components(bad)
    orphans = [
        n
        for n in ast.walk(cls)
        if isinstance(n, ast.Call) and _is_resource_call(n) and not _child_opts(n)
    ]
    assert [_dotted(n.func) for n in orphans] == ["aws.sns.Topic"]
    assert not _is_register_outputs(_init(cls).body[-1])
    assert not _is_resource_call(ast.parse("aws.get_partition()").body[0].value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", MODELFLEET_FILES, ids=lambda p: p.name)
def test_modelfleet_never_imports_pulumi(path: Path) -> None:
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for n in names:
            assert n.split(".")[0] not in {"pulumi", "pulumi_aws", "pulumi_docker_build"}, (
                f"{path.name}:{node.lineno} imports {n}"
            )


def _resource_calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_resource_call(n)]


@pytest.mark.parametrize("path", COMPONENT_FILES, ids=lambda p: p.name)
def test_names_come_from_the_plan(path: Path) -> None:
    """A name formatted in a component is a second copy of the plan's naming: the listing of
    `modelfleet plan` and the program could drift apart (issue 9)."""
    for call in _resource_calls(_parse(path)):
        name = call.args[0] if call.args else None
        ok = isinstance(name, ast.Attribute) and name.attr == "name"
        shown = ast.unparse(name) if name else None
        assert ok, f"{path.name}:{call.lineno}: {_dotted(call.func)} named {shown}"


INVOKES = re.compile(r"^aws\.([a-z0-9_]+\.)?get_[a-z0-9_]+$")


@pytest.mark.parametrize("path", [*COMPONENT_FILES, ROOT / "components" / "fleet.py"], ids=str)
def test_invokes_are_parented(path: Path) -> None:
    """Invokes run with the component as parent, so they use its provider (a stack that sets
    an explicit provider or region gets its answers from there, not from the defaults)."""
    for call in (n for n in ast.walk(_parse(path)) if isinstance(n, ast.Call)):
        if not INVOKES.match(_dotted(call.func)):
            continue
        opts = next((k.value for k in call.keywords if k.arg == "opts"), None)
        assert isinstance(opts, ast.Call) and _dotted(opts.func) == "invoke", (
            f"{path.name}:{call.lineno}: {_dotted(call.func)} without opts=invoke(self)"
        )
