"""Names that would be misread: a new tag must not merely look like one the trader has.

FOMO written with a Cyrillic O, or with a zero-width joiner inside, reads as FOMO but
is another name: created, it would sit beside the real tag and split the trader's
statistics between two tags that look the same. `misread` says why a new name is
refused, naming each character that deceives and the existing name it imitates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["misread"]

#: Cyrillic and Greek letters drawn like a Latin one, by that Latin letter (written as
#: escapes: the point is that they cannot be told apart on the page).
_LOOKS_LATIN = {
    **dict(zip("\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420", "ABEKMHOP", strict=True)),
    **dict(zip("\u0421\u0422\u0425\u0423\u0406\u0408\u0405\u0501", "CTXYIJSd", strict=True)),
    **dict(zip("\u04bb\u04cf\u051b\u051d\u0430\u0435\u043e\u0440", "hlqwaeop", strict=True)),
    **dict(zip("\u0441\u0443\u0445\u0456\u0458\u0455\u0391\u0392", "cyxijsAB", strict=True)),
    **dict(zip("\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f", "EZHIKMNO", strict=True)),
    **dict(zip("\u03a1\u03a4\u03a5\u03a7\u03bf\u03b9\u03bd", "PTYXoiv", strict=True)),
}
#: Characters that draw nothing (beyond the format characters, category Cf).
_BLANK = frozenset("\u034f\u115f\u1160\u3164\uffa0")


def _described(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}"


def _invisible(name: str) -> list[str]:
    """The characters of `name` that show nothing. A zero-width joiner between two
    symbols (an emoji sequence) draws one picture and is kept."""
    found = []
    for i, ch in enumerate(name):
        if ch not in _BLANK and unicodedata.category(ch) != "Cf":
            continue
        if ch == "\u200d" and 0 < i < len(name) - 1:
            around = (name[i - 1], name[i + 1])
            if not any(unicodedata.category(c)[0] in "LN" for c in around):
                continue
        found.append(ch)
    return found


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


def _foreign(name: str) -> list[str]:
    """Cyrillic or Greek letters drawn like Latin ones, in a name with Latin letters."""
    letters = [ch for ch in name if ch.isalpha()]
    if not any(_script(ch) == "LATIN" for ch in letters):
        return []
    return [ch for ch in letters if ch in _LOOKS_LATIN]


def _unusual(name: str) -> list[str]:
    """Look-alike letters, and characters with a plainer form (full-width letters)."""
    return [ch for ch in name if ch in _LOOKS_LATIN or unicodedata.normalize("NFKC", ch) != ch]


def _skeleton(name: str) -> str:
    """What a name looks like: compatibility forms folded, invisible characters dropped,
    look-alike letters read as Latin, any case."""
    folded = unicodedata.normalize("NFKC", name)
    drawn = "".join(_LOOKS_LATIN.get(ch, ch) for ch in folded if ch not in _invisible(folded))
    return drawn.casefold().strip()


def _listed(chars: Iterable[str]) -> str:
    return ", ".join(
        dict.fromkeys(
            f"'{ch}' ({_described(ch)}"
            + (f", drawn like Latin '{_LOOKS_LATIN[ch]}'" if ch in _LOOKS_LATIN else "")
            + ")"
            for ch in chars
        )
    )


def misread(name: str, known: Iterable[str]) -> str | None:
    """Why `name`, new, would be misread, in words ("it mixes Latin letters with ...
    (U+041E CYRILLIC CAPITAL LETTER O, drawn like Latin 'O'); it would look the same as
    the existing 'FOMO': use that one"); None when it reads as what it is."""
    hidden = _invisible(name)
    foreign = _foreign(name)
    looks = _skeleton(name)
    twin = next(
        (k for k in known if _skeleton(k) == looks and k.casefold() != name.casefold()), None
    )
    if not hidden and not foreign and twin is None:
        return None
    parts = []
    if hidden:
        chars = ", ".join(dict.fromkeys(_described(ch) for ch in hidden))
        parts.append(f"it holds invisible characters ({chars})")
    if foreign:
        parts.append(f"it mixes Latin letters with {_listed(foreign)}")
    if twin is not None and not hidden and not foreign:
        parts.append(f"{_listed(_unusual(name))} only look like plain Latin letters")
    if twin is not None:
        parts.append(f"it would look the same as the existing {twin!r}: use that one")
    else:
        parts.append("type it again in one alphabet, without hidden characters")
    return "; ".join(parts)
