"""`tradavity-mcp demo` reads like a trader's journal: plain aligned text, the trade at the
time the trader placed it in their own timezone, and figures that reconcile."""

from __future__ import annotations

import io
import re

from tradavity_mcp.demo import run_demo


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
    assert block[6].endswith("Pre-Trade Checklist, 100 % answered")

    # Trade rows = decisions + copies, and the win rate is wins over decisions that won
    # or lost, so a reader can reconcile every figure.
    rows = re.search(r"over (\d+) trades\n +\((\d+) decisions, and (\d+) cop", text)
    assert rows, text
    assert int(rows[1]) == int(rows[2]) + int(rows[3])
    rate = re.search(r"win rate +(\d+) %: (\d+) of (\d+) decisions that won or lost", text)
    assert rate, text
    assert int(rate[1]) == round(100 * int(rate[2]) / int(rate[3]))

    # The month: one aligned line per trading day, and a total that is their sum.
    days = [line for line in lines if re.match(r"  \w{3} \d{2}  ", line)]
    assert days
    # Amounts are right-aligned: each ends with its cents in the same column.
    assert all(re.fullmatch(r"\.\d\d  \d", line[18:24]) for line in days), days
    amounts = [float(re.sub(r"[$,+]", "", line.split()[2])) for line in days]
    total = re.search(r"month +([+-])\$([\d,.]+) +over (\d+) trading days", text)
    assert total, text
    assert int(total[3]) == len(days)
    assert abs(float(total[1] + total[2].replace(",", "")) - sum(amounts)) < 0.01
