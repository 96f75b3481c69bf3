"""Prompt templates: one file each in `prompts/`, loaded at start, registered as MCP prompts.

A file is TOML front matter between `+++` lines, then the template text with
`$argument` placeholders. Each argument has a name, a description, and optionally
`required`, a `default`, and a `type` that is checked on render:

* `string` (the default): any text;
* `date`: `YYYY-MM-DD` or `today`;
* `symbol`: an instrument symbol, uppercased;
* `enum`: one of `choices`.

A template may also name the user's clock, filled in by the server at render time, not
given as arguments (`CLOCK_FIELDS`): `$today` (`Monday 2026-12-07`), `$now`
(`2026-12-07 19:40 EST`) and `$timezone` (`America/New_York`); a `date` argument given
as (or defaulting to) `today` becomes the user's local date.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from .when import LocalClock
from .workspace import current_workspace

__all__ = [
    "PromptTemplate",
    "check_prompt_requests",
    "default_prompt_dir",
    "load_prompts",
    "register_prompts",
]

_FRONT = re.compile(r"\A\+\+\+\n(?P<meta>.*?)\n\+\+\+\n(?P<body>.*)\Z", re.S)
_SYMBOL = re.compile(r"[A-Z0-9._/-]{1,50}")


@dataclass(frozen=True)
class ArgSpec:
    name: str
    description: str
    required: bool
    type: str
    default: str | None
    choices: tuple[str, ...]

    def check(self, value: str) -> str:
        text = value.strip()
        if self.type == "date":
            if text.casefold() == "today":
                return "today"
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                raise ValueError(f"{self.name} must be YYYY-MM-DD or 'today'") from None
        if self.type == "symbol":
            symbol = text.upper()
            if not _SYMBOL.fullmatch(symbol):
                raise ValueError(f"{self.name} must be an instrument symbol like MNQ or EURUSD")
            return symbol
        if self.type == "enum":
            for choice in self.choices:
                if choice.casefold() == text.casefold():
                    return choice
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}")
        return text


#: What a template may name of the user's clock, and how each is written.
CLOCK_FIELDS: dict[str, Callable[[LocalClock], str]] = {
    "today": lambda clock: f"{clock.now:%A} {clock.today.isoformat()}",
    "now": lambda clock: clock.text(clock.now),
    "timezone": lambda clock: clock.name if clock.known else f"UTC: {clock.note}",
}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    title: str
    description: str
    arguments: tuple[ArgSpec, ...]
    body: str

    @property
    def needs_clock(self) -> bool:
        """Whether rendering reads the user's clock (a clock field or a date argument)."""
        named = {m.group("named") or m.group("braced") for m in _placeholders(self.body)}
        return bool(named & set(CLOCK_FIELDS)) or any(a.type == "date" for a in self.arguments)

    def render(self, values: dict[str, Any], clock: LocalClock | None = None) -> str:
        unknown = set(values) - {a.name for a in self.arguments}
        if unknown:
            raise ValueError(f"unknown arguments: {', '.join(sorted(unknown))}")
        if clock is None and self.needs_clock:
            raise ValueError(f"prompt {self.name} needs the user's clock to render")
        filled: dict[str, str] = {}
        for arg in self.arguments:
            raw = values.get(arg.name)
            if raw is None or str(raw).strip() == "":
                if arg.required:
                    raise ValueError(f"{arg.name} is required: {arg.description}")
                filled[arg.name] = arg.default or ""
            else:
                filled[arg.name] = arg.check(str(raw))
            if arg.type == "date" and filled[arg.name].casefold() == "today" and clock:
                filled[arg.name] = clock.today.isoformat()
        if clock is not None:
            filled |= {name: write(clock) for name, write in CLOCK_FIELDS.items()}
        return string.Template(self.body).substitute(filled)


def _placeholders(body: str) -> list[re.Match[str]]:
    return list(string.Template.pattern.finditer(body))


def _parse(text: str, origin: str) -> PromptTemplate:
    match = _FRONT.match(text.replace("\r\n", "\n"))
    if match is None:
        raise ValueError(f"{origin}: expected TOML front matter between +++ lines")
    import tomllib  # noqa: PLC0415 (read on the first prompts request, not at start)

    meta = tomllib.loads(match["meta"])
    args = tuple(
        ArgSpec(
            name=str(a["name"]),
            description=str(a.get("description", "")),
            required=bool(a.get("required", False)),
            type=str(a.get("type", "string")),
            default=str(a["default"]) if "default" in a else None,
            choices=tuple(str(c) for c in a.get("choices", ())),
        )
        for a in meta.get("arguments", [])
    )
    template = PromptTemplate(
        name=str(meta["name"]),
        title=str(meta.get("title", meta["name"])),
        description=str(meta.get("description", "")),
        arguments=args,
        body=match["body"],
    )
    # Every placeholder must be an argument, so a typo fails at start, not mid-chat.
    names = {a.name for a in args}
    for name in names & set(CLOCK_FIELDS):
        raise ValueError(f"{origin}: ${name} is the user's clock, not an argument")
    for found in _placeholders(template.body):
        placeholder = found.group("named") or found.group("braced")
        if placeholder and placeholder not in names | set(CLOCK_FIELDS):
            raise ValueError(f"{origin}: ${placeholder} is not an argument")
    return template


def default_prompt_dir() -> Path:
    """The shipped templates: inside the wheel, or `prompts/` in a source checkout."""
    shipped = resources.files("tradavity_mcp").joinpath("prompts")
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "prompts"


def load_prompts(directory: Path | None = None) -> list[PromptTemplate]:
    folder = directory or default_prompt_dir()
    return [_parse(p.read_text("utf-8"), p.name) for p in sorted(folder.glob("*.md"))]


def register_prompts(mcp: MCPServer, templates: list[PromptTemplate]) -> None:
    """Register each template (see `check_prompt_requests` for bad requests)."""
    for template in templates:

        async def render(_t: PromptTemplate = template, **values: Any) -> str:
            # The user's clock, read only by templates that speak of days or times.
            clock = await current_workspace().local_clock() if _t.needs_clock else None
            try:
                return _t.render(values, clock)
            except ValueError as exc:
                raise MCPError(INVALID_PARAMS, f"prompt {_t.name}: {exc}") from None

        mcp.add_prompt(
            Prompt(
                name=template.name,
                title=template.title,
                description=template.description,
                arguments=[
                    PromptArgument(
                        name=a.name,
                        description=_describe(a),
                        required=a.required,
                    )
                    for a in template.arguments
                ],
                fn=render,
            )
        )


def check_prompt_requests(mcp: MCPServer, templates: Callable[[], list[PromptTemplate]]) -> None:
    """Answer a bad `prompts/get` with -32602 (invalid params) and a message that says
    what to send, instead of the SDK's generic error. `templates` is asked on the first
    `prompts/get` (the server starts without reading them)."""

    async def check_prompt_request(
        ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "prompts/get":
            by_name = {t.name: t for t in templates()}
            params = ctx.params if isinstance(ctx.params, dict) else {}
            problem = _request_problem(by_name, params.get("name"), params.get("arguments"))
            if problem is not None:
                raise MCPError(INVALID_PARAMS, problem)
        return await call_next(ctx)

    mcp.middleware.append(check_prompt_request)


def _request_problem(
    templates: dict[str, PromptTemplate], name: object, arguments: object
) -> str | None:
    """What is wrong with a prompts/get request, in words a person can act on."""
    template = templates.get(name) if isinstance(name, str) else None
    if template is None:
        return f"unknown prompt {name!r}; the prompts are {', '.join(sorted(templates))}"
    values = arguments if isinstance(arguments, dict) else {}
    missing = [
        a for a in template.arguments if a.required and not str(values.get(a.name) or "").strip()
    ]
    if missing:
        needs = "; ".join(f"{a.name}: {_describe(a)}" for a in missing)
        return f"prompt {template.name} needs {', '.join(a.name for a in missing)} ({needs})"
    return None


def _describe(arg: ArgSpec) -> str:
    extra = ""
    if arg.type == "enum":
        extra = f" ({' | '.join(arg.choices)})"
    elif arg.type == "date":
        extra = " (YYYY-MM-DD)"
    if arg.default and not arg.required:
        extra += f"; default: {arg.default}"
    return arg.description + extra
