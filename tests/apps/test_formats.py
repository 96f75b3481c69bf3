"""The views' number formats (apps/src/shared/format.js), run by Node as the views run
them in a browser: thousands grouped in every locale, and never a "-0"."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

FORMAT_JS = Path(__file__).resolve().parents[2] / "apps" / "src" / "shared" / "format.js"
NBSP = "\u00a0"

_SCRIPT = """
const { formats } = await import(process.argv[1]);
const out = {};
for (const locale of ["en-US", "de-DE", "es-ES"]) {
  const f = formats(locale, "USD");
  out[locale] = [f.money(1234.5), f.money(-0.001), f.short(-0.3), f.short(1234.5),
                 f.amount(12345.678), f.money(0), f.short(-250.4)];
}
console.log(JSON.stringify(out));
"""


def test_amounts_are_grouped_and_never_minus_zero() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js runs the apps' build and these checks (./dev installs it)"
    done = subprocess.run(
        [node, "--input-type=module", "-e", _SCRIPT, FORMAT_JS.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(done.stdout)
    assert got["en-US"] == [
        "+$1,234.50", "$0.00", "-$0.30", "+$1.2K", "$12,345.68", "$0.00", "-$250",
    ]  # fmt: skip
    de = got["de-DE"]
    assert de[0] == f"+1.234,50{NBSP}$"  # grouped, decimal comma
    assert de[1] == f"0,00{NBSP}$"  # a loss that rounds to nothing is not "-0,00 $"
    assert de[3] == f"+1.200{NBSP}$"  # compact German keeps its grouping
    es = got["es-ES"]
    assert es[0].startswith("+1.234,50")  # es-ES groups 4-digit amounts too
