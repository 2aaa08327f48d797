"""The stand-in cannot invent API: every name it offers, and every ``carla`` name the
backend uses, exists in the real 0.9.16 wheel with a compatible signature."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from tests.carla_standin import actors, client, commands, world

STANDIN_CLASSES = [obj for mod in (actors, client, commands, world)
                   for obj in vars(mod).values()
                   if inspect.isclass(obj) and obj.__module__ == mod.__name__
                   and hasattr(obj, "REAL")]
BACKEND = Path(__file__).resolve().parent.parent / "generator" / "carla_backend"
_ARG = re.compile(r"\((\w+)\)(\w+)")


def _real(carla, dotted: str):
    obj = carla
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _overloads(doc: str, name: str) -> list[tuple[list[str], int]]:
    """Boost.Python docstring -> per overload (argument names without self, required)."""
    out = []
    for line in doc.splitlines():
        line = line.strip()
        if not line.startswith(f"{name}(") or "->" not in line:
            continue
        inner = line[len(name) + 1: line.rindex("->")].rstrip().rstrip(")")
        required_part = inner.split("[")[0]
        names = [n for _, n in _ARG.findall(inner)][1:]
        required = len(_ARG.findall(required_part)) - 1
        out.append((names, required))
    return out


def _compatible(fn, real_fn, name: str) -> str:
    """"" when every call the stand-in accepts is one the real function accepts."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return "takes *args/**kwargs"
    required = sum(p.default is p.empty for p in params)
    overloads = _overloads(real_fn.__doc__ or "", name)
    if not overloads:
        return f"no signature in the wheel's docstring for {name}"
    for k in range(required, len(params) + 1):  # each number of arguments it accepts
        if not any(real_required <= k <= len(names) and all(
                re.fullmatch(r"arg\d+", n) or n == p.name
                for p, n in zip(params[:k], names, strict=False))
                for names, real_required in overloads):
            break
    else:
        return ""
    return f"({', '.join(p.name for p in params)}) matches none of {overloads}"


def test_every_name_the_standin_offers_is_in_the_wheel(carla):
    problems = []
    for cls in STANDIN_CLASSES:
        real = _real(carla, cls.REAL)
        for name, member in vars(cls).items():
            if name.startswith("_") and name != "__init__" or name in ("REAL", "CYCLE"):
                continue
            if name == "__init__":
                if cls.REAL.startswith("command.") and cls.REAL != "command.Response":
                    why = _compatible(member, real.__init__, "__init__")
                    if why:
                        problems.append(f"{cls.__name__}.__init__: {why}")
                continue
            if not hasattr(real, name):
                problems.append(f"{cls.__name__}.{name}: carla.{cls.REAL} has no {name}")
            elif inspect.isfunction(member) and callable(getattr(real, name)):
                why = _compatible(member, getattr(real, name), name)
                if why:
                    problems.append(f"{cls.__name__}.{name}: {why}")
    assert problems == []


def test_public_attributes_set_on_standin_objects_exist_in_the_wheel(carla):
    """Data attributes assigned in __init__ (``self.frame = ...``) are API too."""
    problems = []
    for cls in STANDIN_CLASSES:
        init = vars(cls).get("__init__")
        if init is None:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id == "self"
                    and not node.attr.startswith("_")):
                if cls.REAL.startswith("command."):
                    continue  # a command's fields are read by the stand-in client only
                if not hasattr(_real(carla, cls.REAL), node.attr):
                    problems.append(f"{cls.__name__}.{node.attr}")
    assert problems == []


def test_the_api_namespace_offers_only_wheel_names(carla):
    from tests.carla_standin import Server

    api = Server().api()
    for name in vars(api):
        assert hasattr(carla, name), name
    for name in vars(api.command):
        assert hasattr(carla.command, name), name


def _backend_api_names() -> set[str]:
    """``api.X`` and ``api.X.Y`` chains used anywhere in the backend's source."""
    names = set()
    for path in BACKEND.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                chain, cur = [node.attr], node.value
                while isinstance(cur, ast.Attribute):
                    chain.insert(0, cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "api":
                    names.add(".".join(chain))
    return names


def test_every_carla_name_the_backend_uses_is_in_the_wheel(carla):
    names = _backend_api_names()
    assert {"Client", "command.SpawnActor", "Transform"} <= names
    missing = [n for n in sorted(names) if not _has(carla, n)]
    assert missing == []


def _has(carla, dotted: str) -> bool:
    try:
        _real(carla, dotted)
    except AttributeError:
        return False
    return True


def test_every_method_the_backend_calls_on_standin_objects_is_offered(carla):
    """Run a generate and a render on the stand-in, recording every attribute the backend
    reads on stand-in objects: each is offered by the stand-in, hence in the wheel."""
    from tests.carla_standin import Server

    used: set[tuple[str, str]] = set()
    originals = {}
    for cls in STANDIN_CLASSES:
        original = cls.__getattribute__
        originals[cls] = original

        def spy(self, name, _cls=cls, _orig=original):
            if not name.startswith("_") and _frame_is_backend():
                used.add((type(self).REAL, name))
            return _orig(self, name)

        cls.__getattribute__ = spy
    try:
        from tests.test_carla_backend import generate_and_render

        generate_and_render(Server(), layouts=2)
    finally:
        for cls, original in originals.items():
            cls.__getattribute__ = original
    assert used, "the spy saw nothing"
    missing = [f"{real}.{name}" for real, name in sorted(used)
               if not hasattr(_real(carla, real), name)]
    assert missing == []


def _frame_is_backend() -> bool:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    return bool(caller and "carla_backend" in caller.f_code.co_filename)


@pytest.mark.parametrize("text,expected", [
    ("tick( (World)arg1 [, (float)seconds=0.0]) -> int :", [(["seconds"], 0)]),
    ("set_attribute( (ActorBlueprint)arg1, (str)arg2, (str)arg3) -> None :",
     [(["arg2", "arg3"], 2)]),
])
def test_docstring_signatures_are_read(text, expected):
    assert _overloads(text, text.split("(")[0]) == expected
