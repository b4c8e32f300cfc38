"""compose.yaml, Containerfile and .env.example agree with the real CLI and Settings.

No container engine runs here, so these checks are what keeps the files honest.
"""

from __future__ import annotations

import re
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


@pytest.mark.parametrize("argv", [["shop", "run", "--port", "nope"], ["shop", "teleport"]])
def test_the_check_itself_rejects_bad_invocations(argv):
    with pytest.raises((click.UsageError, click.BadParameter, AssertionError)):
        _parse_cli(argv)
