"""`tradavity-mcp demo` reads like a trader's journal: plain aligned text, the trade at the
time the trader placed it in their own timezone, figures that reconcile, and no checklist
answer the trader did not give."""

from __future__ import annotations

import io
import re

from tradavity_mcp.demo import TRADER_REPLY, VOICE_NOTE, run_demo


def test_the_demo_reads_like_a_journal() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    lines = text.splitlines()

    # No Python dicts, lists or JSON anywhere.
    assert not re.search(r"[{}\[\]]", text), text
    # The trade at 09:31 where the trader is (the sandbox's demo user), not in UTC.
    heading = next(line for line in lines if line.startswith("Trade #"))
    assert re.fullmatch(
        r"Trade #\d+, \w{3} \d{2} \w{3} \d{4}, 09:31 \(America/New_York\)", heading
    ), heading
    block = lines[lines.index(heading) + 1 : lines.index(heading) + 8]
    assert [line[:15] for line in block] == [
        "  trade        ",
        "  account      ",
        "  net P&L      ",
        "  felt         ",
        "  tags         ",
        "  chart        ",
        "  checklist    ",
    ]
    assert block[0].endswith("MNQ long, 2 contracts")
    assert block[2].endswith("+$48.00")
    assert block[4].endswith("Breakout, FOMO")
    checked = re.fullmatch(
        r"  checklist    Pre-Trade Checklist, completed, (\d+) % of its items answered", block[6]
    )
    assert checked, block[6]

    # The checklist: the voice note's "all yes" answers the yes/no items; what it cannot
    # answer is asked, and only the trader's reply answers it. Nothing else is answered.
    assert "checklist was all yes" in VOICE_NOTE
    read = re.search(r"read the checklist: (\d+) items, (\d+) yes/no", text)
    assert read, text
    assert re.search(r"journaled trade #\d+: create, tags, screenshot, checklist draft ", text)
    asked = re.findall(r"^  asked the trader for (\w+): (.+)$", text, re.M)
    assert asked == [("Bias", "long, short or neutral"), ("Conviction", "1-5")]
    assert f'  the trader: "{TRADER_REPLY}"' in lines
    done = re.search(r"completed the same checklist: (.+?) +\d+ ms", text)
    assert done, text
    given = dict(pair.split(" ", 1) for pair in done[1].split(", "))
    assert set(given) == {item for item, _ in asked}
    for item, value in given.items():  # each answer is the trader's own words
        assert re.search(rf"{item}\W.*\b{value}\b", TRADER_REPLY, re.I), (item, value)
    answered = int(read[2]) + len(given)
    assert int(checked[1]) == round(100 * answered / int(read[1]))
    assert text.index("the trader:") < text.index("completed the same checklist")

    # Trade rows = decisions + copies, and the win rate is wins over decisions that won
    # or lost, so a reader can reconcile every figure.
    rows = re.search(r"over (\d+) trades\n +\((\d+) decisions, and (\d+) cop", text)
    assert rows, text
    assert int(rows[1]) == int(rows[2]) + int(rows[3])
    rate = re.search(r"win rate +(\d+) %: (\d+) of (\d+) decisions that won or lost", text)
    assert rate, text
    assert int(rate[1]) == round(100 * int(rate[2]) / int(rate[3]))

    # The same days one by one: their decisions and P&L add up to the headline's.
    days = [line for line in lines if re.match(r"  \w{3} \d{2}  ", line)]
    assert days
    # Amounts are right-aligned: each ends with its cents in the same column.
    assert all(re.fullmatch(r"\.\d\d  \d", line[18:24]) for line in days), days
    amounts = [float(re.sub(r"[$,+]", "", line.split()[2])) for line in days]
    counts = [int(m[1]) for line in days if (m := re.search(r"(\d+) decisions?\b", line))]
    assert len(counts) == len(days)
    assert all(" trade" not in line for line in days)  # decisions, never called trades
    total = re.search(r"7 days +([+-])\$([\d,.]+) +(\d+) decisions over (\d+) trading days", text)
    assert total, text
    assert int(total[4]) == len(days)
    assert int(total[3]) == sum(counts) == int(rows[2])
    net = float(total[1] + total[2].replace(",", ""))
    assert abs(net - sum(amounts)) < 0.01
    headline = re.search(r"net P&L +([+-])\$([\d,.]+) over", text)
    assert headline, text
    assert abs(float(headline[1] + headline[2].replace(",", "")) - net) < 0.01
