"""Just enough of a Dockerfile reader for the packaging and compose tests (no container engine here).

It understands what the repository's Dockerfile uses: comments, line continuations, global ARGs,
named stages built `FROM` other stages, and the instructions of each stage. A stage's effective
settings (ENTRYPOINT, USER, ENV, LABEL) follow its chain of parent stages, as a build would.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from argora_dev import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for keyword, args in _instructions(path.read_text()):
            if keyword == "FROM":
                words = args.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
                stages.append(Stage(base=words[0], name=name))
            elif not stages:
                if keyword == "ARG":
                    key, _, default = args.partition("=")
                    global_args[key.strip()] = default.strip()
            else:
                stages[-1].instructions.append((keyword, args))
        return cls(global_args, stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}")

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and its ancestors, the root (the one built from an image) first."""
        chain = [stage]
        names = {s.name for s in self.stages if s.name}
        while self.expand(chain[0].base) in names:
            chain.insert(0, self.stage(self.expand(chain[0].base)))
        return chain

    def base_image(self, stage: Stage) -> str:
        return self.expand(self.chain(stage)[0].base)

    def expand(self, text: str, args: dict[str, str] | None = None) -> str:
        values = {**self.global_args, **(args or {})}
        return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)

    def last(self, stage: Stage, keyword: str) -> str | None:
        """The value of the last `keyword` along the stage's chain (later ones override)."""
        found = [args for s in self.chain(stage) for args in s.all(keyword)]
        return found[-1] if found else None

    def entrypoint(self, stage: Stage) -> list[str]:
        value = self.last(stage, "ENTRYPOINT")
        if value is None:
            return []
        parsed = json.loads(value)  # exec form only: the shell form would put `sh -c` in front
        assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), value
        return parsed

    def pairs(self, stage: Stage, keyword: str) -> dict[str, str]:
        """`KEY=value` pairs of every ENV or LABEL along the chain."""
        result: dict[str, str] = {}
        for s in self.chain(stage):
            for args in s.all(keyword):
                for word in shlex.split(args):
                    key, _, value = word.partition("=")
                    result[key] = value
        return result

    def runs(self, stage: Stage) -> list[str]:
        return [args for s in self.chain(stage) for args in s.all("RUN")]


def _instructions(text: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result
