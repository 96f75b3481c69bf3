"""The prompts' guidance as a tool, for hosts that show the model tools only.

claude.ai (and other hosts) list a server's tools to the model but not its prompts, so
the four prompts in `prompts/` would never reach a trader there. `guide` renders the
same template as the prompt, from the same file, for the model to follow with the
other tools. It takes only the guide's name (a few dozen characters in every
conversation): the model already has what the prompt's arguments would carry (the
trader's note, the symbol), so each argument is left as a marked blank, described
once, and an optional one shows its default.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Literal, get_args

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent

from ..prompts import CLOCK_FIELDS, PromptTemplate, load_prompts
from ..when import LocalClock
from ..workspace import current_workspace

__all__ = ["GUIDES", "guide", "guide_text"]

#: The prompts' names (one file each in prompts/; a test keeps the two the same).
GuideName = Literal["journal_voice_note", "pre_trade_check", "end_of_day_review", "weekly_review"]
GUIDES: tuple[str, ...] = get_args(GuideName)


@cache
def _templates() -> dict[str, PromptTemplate]:
    return {t.name: t for t in load_prompts()}


def guide_text(template: PromptTemplate, clock: LocalClock | None = None) -> str:
    """The template's text, each argument a `<name>` blank (an optional one: its
    default, `today` the user's date), what each blank stands for, and the user's clock
    where the template speaks of it (as the prompt has it)."""
    values: dict[str, str] = {}
    blanks: list[str] = []
    for arg in template.arguments:
        if arg.required or not arg.default:
            values[arg.name] = f"<{arg.name}>"
            blanks.append(f"<{arg.name}> = {arg.description}")
        elif arg.type == "date" and arg.default.casefold() == "today" and clock is not None:
            values[arg.name] = clock.today.isoformat()
        else:
            values[arg.name] = arg.default
    for field, write in CLOCK_FIELDS.items():
        values[field] = write(clock) if clock is not None else f"<{field}>"
    # Straight into the template: the defaults are already in the form the prompt takes.
    text = string.Template(template.body).substitute(values)
    fill = f"Fill in from the conversation: {'; '.join(blanks)}.\n\n" if blanks else ""
    return f"{template.title}: {template.description}\n{fill}\n{text}"


async def guide(name: GuideName) -> CallToolResult:
    """Step-by-step guidance for a journaling session (the server's prompts)."""
    template = _templates().get(name)
    if template is None:
        raise ToolError(f"unknown guide {name!r}; the guides are {', '.join(GUIDES)}")
    clock = await current_workspace().local_clock() if template.needs_clock else None
    return CallToolResult(content=[TextContent(type="text", text=guide_text(template, clock))])
