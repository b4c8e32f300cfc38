"""compose.yaml, Containerfile and .env.example agree with the real CLI and Settings,
and the image installs what CI tests: the locked dependencies of uv.lock.

No container engine runs here, so these checks are what keeps the files honest.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from shop.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _settings_variables() -> set[str]:
    source = (ROOT / "src" / "shop" / "settings.py").read_text()
    return set(re.findall(r'(?:env\.get\(|\w+\(env, )"([A-Z][A-Z0-9_]+)"', source))


def _example_variables() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip())
    return names


def _parse_cli(argv: list[str]) -> None:
    """Resolve argv through the real click group without running the command.

    Walks the subcommand names with the public API (Click 8.2 deprecated
    ``Context.protected_args``), then parses the leaf command's options.
    """
    assert argv[0] == "shop", argv
    ctx = click.Context(main, info_name="shop")
    command: click.Command = main
    args = list(argv[1:])
    while isinstance(command, click.Group):
        assert args and not args[0].startswith("-"), f"no subcommand in {argv}"
        name, args = args[0], args[1:]
        found = command.get_command(ctx, name)
        assert found is not None, f"unknown command {name} in {argv}"
        command = found
        ctx = click.Context(command, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, args, parent=ctx.parent)


def test_every_setting_is_documented_in_env_example():
    missing = _settings_variables() - _example_variables() - {"SHOP_ALLOW_SKIP"}
    assert _settings_variables(), "found no variables in settings.py"
    assert missing == set()


def test_env_example_lists_nothing_the_shop_does_not_read():
    read = _settings_variables() | {"WEB_CONCURRENCY"}  # read by `shop run --workers`
    assert _example_variables() - read == set()


def test_compose_commands_are_real_cli_invocations():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    commands = {
        name: service["command"]
        for name, service in compose["services"].items()
        if isinstance(service.get("command"), list) and service["command"][0] == "shop"
    }

    assert set(commands) == {"migrate", "api", "worker"}
    for argv in commands.values():
        _parse_cli(argv)


def test_compose_environment_uses_known_variables():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    known = _settings_variables()
    for name in ("migrate", "api", "worker"):
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        assert set(service.get("environment", {})) <= known, name


def test_compose_orders_start_up_by_health():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def test_containerfile_runs_the_cli_as_non_root_with_a_healthcheck():
    text = (ROOT / "Containerfile").read_text()

    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text and "/health/ready" in text
    cmd = re.search(r"^CMD (\[.*\])", text, re.M)
    assert cmd is not None
    _parse_cli(yaml.safe_load(cmd.group(1)))


def _run_lines(containerfile: str, stage: str) -> list[str]:
    """The RUN instructions of one stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", containerfile)
    stages = re.split(r"^FROM .* AS (\w+)$", joined, flags=re.M)
    body = dict(zip(stages[1::2], stages[2::2], strict=True))[stage]
    return [line[4:] for line in body.splitlines() if line.startswith("RUN ")]


def test_the_image_installs_the_locked_dependencies_and_nothing_else():
    text = (ROOT / "Containerfile").read_text()
    build = _run_lines(text, "build")
    installs = [line for line in build if " sync " in f" {line} " or "pip install" in line]

    assert re.search(r"^COPY .*\buv\.lock\b", text, re.M), "the lock must be in the build context"
    syncs = [line for line in installs if line.startswith("uv sync")]
    assert syncs and all("--locked" in line for line in syncs)
    assert syncs[-1].split()[2:] == ["--locked", "--no-editable"]  # the shop, no extras
    # The only unlocked install is uv itself, at a pinned version.
    assert [line for line in installs if "pip install" in line] == [
        line for line in installs if re.fullmatch(r'pip install "uv==[\d.]+"', line)
    ]
    assert "/opt/shop" in text and "COPY --from=build /opt/shop /opt/shop" in text


def test_the_image_installs_a_font_for_non_latin_names():
    runtime = " ".join(_run_lines((ROOT / "Containerfile").read_text(), "runtime"))

    # Rendering with it is tested in tests/orders/test_invoices.py (a Cyrillic name).
    assert re.search(r"apt-get install [^&]*\bfonts-dejavu-core\b", runtime)


def test_the_lock_pins_every_dependency_of_pyproject():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {p["name"]: p for p in lock["package"]}
    wanted = list(project["dependencies"]) + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]

    for requirement in wanted:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in locked, f"{name} is not in uv.lock: run `uv lock`"
        assert "version" in locked[name] and (
            "sdist" in locked[name] or "wheels" in locked[name]
        ), name
    assert locked["shop"]["source"] == {"editable": "."}


def test_ci_and_the_test_session_install_from_the_lock():
    ci = (ROOT / ".ci" / "run").read_text()
    noxfile = (ROOT / "noxfile.py").read_text()

    assert "uv lock --check" in ci  # a stale lock fails CI with a message saying what to run
    assert '"uv", "sync", "--locked"' in noxfile
    assert re.search(
        r'def tests\(session: nox.Session\) -> None:\n\s+""".*"""\n\s+sync\(session, "test"\)',
        noxfile,
    )
    assert "fonts-dejavu-core" in ci


@pytest.mark.parametrize("argv", [["shop", "run", "--port", "nope"], ["shop", "teleport"]])
def test_the_check_itself_rejects_bad_invocations(argv):
    with pytest.raises((click.UsageError, click.BadParameter, AssertionError)):
        _parse_cli(argv)
