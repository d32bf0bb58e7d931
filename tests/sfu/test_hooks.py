"""The aiortc guard: the reviewed releases are the pinned ones, every hooked internal is checked (the
self-test fails closed, naming it), and nothing but ``sfu/hooks.py`` touches one."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCRtpSender

from sfu import AiortcHookMissing, AiortcVersionMismatch, Options, Worker, hooks
from sfu.hooks import PRIVATES, Private

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: every folder of ours with Python code (packages, tests, benchmarks, scripts)
CODE = ("sfu", "recorder", "signaling", "schedules", "minutes", "complaints", "evidence", "room_console",
        "tiepdan", "tests", "bench", "scripts")


def pinned() -> dict[str, str]:
    """name → version of the ``name==version`` dependencies in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, exact, version = requirement.partition("==")
        if exact:
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_releases_the_hooks_were_reviewed_for_are_the_pinned_ones() -> None:
    # a pin bump without a review of sfu/hooks.py (and of these constants) fails here
    pins = pinned()
    assert (pins["aiortc"], pins["aioice"]) == (hooks.AIORTC_VERSION, hooks.AIOICE_VERSION)


def test_the_selftest_passes_on_the_pinned_releases() -> None:
    assert importlib.metadata.version("aiortc") == hooks.AIORTC_VERSION
    hooks.selftest()


@pytest.mark.parametrize(("package", "installed"), [("aiortc", "1.17.0"), ("aioice", "0.12.0"), ("aiortc", None)])
def test_another_release_fails_the_selftest_naming_both_versions(
    monkeypatch: pytest.MonkeyPatch, package: str, installed: str | None
) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name != package:
            return real(name)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", version)
    expected = hooks.AIORTC_VERSION if package == "aiortc" else hooks.AIOICE_VERSION
    with pytest.raises(AiortcVersionMismatch) as raised:
        hooks.selftest()
    assert (f"{package} {installed} is installed" if installed else f"{package} is not installed") in str(raised.value)
    assert f"{package}=={expected}" in str(raised.value)


# --- every hooked internal, broken in turn ----------------------------------------------------------------


def stand_in_for(original: Any) -> Any:
    """A function with ``original``'s parameters that does nothing of what it did."""

    def stand_in(*args: Any, **kwargs: Any) -> None:
        return None

    stand_in.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    return stand_in


def set_by_constructor(monkeypatch: pytest.MonkeyPatch, private: Private, value: Any) -> None:
    """Make ``private.owner``'s constructor leave ``private.name`` out (``value`` is None) or set it to ``value``."""
    original = private.owner.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if value is None:
            delattr(self, private.name)
        else:
            setattr(self, private.name, value)

    monkeypatch.setattr(private.owner, "__init__", init)


def breakages() -> Iterator[Any]:
    for private in PRIVATES:
        ways = [] if private.dynamic else ["removed"]
        ways += ["other parameters"] if private.params is not None else []
        ways += ["other type"] if private.kind is not None else []
        ways += ["other behaviour"] if private.source else []
        for way in ways:
            yield pytest.param(private, way, id=f"{private.label}-{way}")


def test_every_hooked_internal_can_be_broken() -> None:
    assert {p.label for p in PRIVATES} == {param.values[0].label for param in breakages()}


@pytest.mark.parametrize(("private", "way"), list(breakages()))
def test_the_selftest_names_a_broken_internal(monkeypatch: pytest.MonkeyPatch, private: Private, way: str) -> None:
    if way == "removed":
        if private.on_instance:
            set_by_constructor(monkeypatch, private, None)
        else:
            monkeypatch.delattr(private.owner, private.name)
    elif way == "other parameters":

        def other(unexpected: object) -> None:
            return None

        if private.on_instance:
            set_by_constructor(monkeypatch, private, other)
        else:
            monkeypatch.setattr(private.owner, private.name, other)
    elif way == "other type":
        if private.on_instance:
            set_by_constructor(monkeypatch, private, object())
        else:
            monkeypatch.setattr(private.owner, private.name, object())
    else:
        owner, name = private.where or (private.owner, private.name)
        monkeypatch.setattr(owner, name, stand_in_for(inspect.getattr_static(owner, name)))
    with pytest.raises(AiortcHookMissing) as raised:
        hooks.selftest()
    problems = str(raised.value).split(": ", 1)[1].split("; ")
    assert [p for p in problems if p.startswith((f"{private.label} ", f"{private.label}:"))], problems


async def test_a_worker_does_not_start_with_a_hook_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    [keyframe] = [p for p in PRIVATES if p.owner is RTCRtpSender and p.params == ("self",)]
    monkeypatch.delattr(keyframe.owner, keyframe.name)
    worker = Worker(Options())
    with pytest.raises(AiortcHookMissing, match="RTCRtpSender._send_keyframe"):
        await worker.start()
    assert not worker.started
    await worker.close()


# --- the list cannot drift ------------------------------------------------------------------------------


def is_own(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def foreign_privates(tree: ast.Module) -> set[str]:
    """The foreign attributes a module touches: ``x._name`` on anything but ``self``/``cls``, every
    attribute it assigns on a foreign object, and ``_name`` strings given to ``getattr``/``setattr``/
    ``hasattr``/``delattr`` (directly or through a module-level constant)."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not is_own(node):
            if is_private(node.attr) or isinstance(node.ctx, ast.Store):
                names.add(node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2):
            arg = node.args[1]
            text = arg.value if isinstance(arg, ast.Constant) else (
                constants.get(arg.id) if isinstance(arg, ast.Name) else None)
            if isinstance(text, str) and is_private(text):
                names.add(text)
    return names


def test_the_list_covers_every_internal_the_hook_module_touches() -> None:
    used = foreign_privates(ast.parse(Path(inspect.getfile(hooks)).read_text(encoding="utf-8")))
    # the scan sees the hooks (read, wrapped, replaced, reached through a constant)
    assert {"_send_rtcp_pli", "_send_rtcp", "_send_keyframe", "_handle_rtp_packet", "_send_rtp", "_queue",
            "_RTCRtpReceiver__jitter_buffer", "_RTCRtpReceiver__remote_streams", "_data", "get_decoder",
            "get_host_addresses"} <= used
    assert used <= {p.name for p in PRIVATES}, f"not in hooks.PRIVATES: {sorted(used - {p.name for p in PRIVATES})}"


def touches(tree: ast.Module, names: set[str]) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not is_own(node) and node.attr in names:
            if is_private(node.attr) or isinstance(node.ctx, ast.Store):
                yield node.lineno, node.attr
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("getattr", "setattr", "hasattr", "delattr"):  # also monkeypatch's
                for arg in node.args:
                    if (isinstance(arg, ast.Constant) and arg.value in names
                            and (is_private(arg.value) or called in ("setattr", "delattr"))):
                        yield node.lineno, str(arg.value)


#: bench/peer.py's probe times aiortc's own stages by patching them in the measured process only; it is not
#: product code, and a renamed internal makes it fail loudly (AttributeError) rather than measure wrong.
_MEASURING_ONLY = ("bench/_probe.py",)
#: the same private name on another library's object, not aiortc's/aioice's: (file, name) -> whose it is
_OTHER_OWNERS = {("tests/tiepdan/test_sqlite_locking.py", "_connection"): "aiosqlite's Connection",
                 ("tests/sfu/test_native_send.py", "sendto"): "an asyncio UDP transport's, counted by the test"}


def test_nothing_but_the_hook_module_touches_a_hooked_internal() -> None:
    names = {p.name for p in PRIVATES}
    here = Path(inspect.getfile(hooks)).resolve()
    exempt = {here, *((ROOT / path).resolve() for path in _MEASURING_ONLY)}
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for folder in CODE if (ROOT / folder).is_dir()
        for path in sorted((ROOT / folder).rglob("*.py")) if path.resolve() not in exempt
        for line, name in touches(ast.parse(path.read_text(encoding="utf-8")), names)
        if (path.relative_to(ROOT).as_posix(), name) not in _OTHER_OWNERS
    ]
    assert offenders == [], "go through a function of sfu/hooks.py instead"
