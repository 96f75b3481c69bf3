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

from ..prompts import PromptTemplate, load_prompts

__all__ = ["GUIDES", "guide", "guide_text"]

#: The prompts' names (one file each in prompts/; a test keeps the two the same).
GuideName = Literal["journal_voice_note", "pre_trade_check", "end_of_day_review", "weekly_review"]
GUIDES: tuple[str, ...] = get_args(GuideName)


@cache
def _templates() -> dict[str, PromptTemplate]:
    return {t.name: t for t in load_prompts()}


def guide_text(template: PromptTemplate) -> str:
    """The template's text, each argument a `<name>` blank (an optional one: its
    default), and what each blank stands for."""
    values: dict[str, str] = {}
    blanks: list[str] = []
    for arg in template.arguments:
        if arg.required or not arg.default:
            values[arg.name] = f"<{arg.name}>"
            blanks.append(f"<{arg.name}> = {arg.description}")
        else:
            values[arg.name] = arg.default
    # Straight into the template: the defaults are already in the form the prompt takes.
    text = string.Template(template.body).substitute(values)
    fill = f"Fill in from the conversation: {'; '.join(blanks)}.\n\n" if blanks else ""
    return f"{template.title}: {template.description}\n{fill}\n{text}"


async def guide(name: GuideName) -> CallToolResult:
    """How to run a journaling session, step by step (the server's prompts, for hosts
    that show only tools)."""
    template = _templates().get(name)
    if template is None:
        raise ToolError(f"unknown guide {name!r}; the guides are {', '.join(GUIDES)}")
    return CallToolResult(content=[TextContent(type="text", text=guide_text(template))])
