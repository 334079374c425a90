"""Write the recipe study's tables and figure into ``benchmarks/results`` from a study run.

The study itself is a command (it caches every trained model, so a re-run resumes)::

    trustlab study generalisation --out runs/generalisation        # 13 recipes x 3 seeds
    .venv/bin/python benchmarks/generalisation.py --run-dir runs/generalisation

Writes ``generalisation.md`` (the main table with intervals, the per-corruption error table, each
recipe's effects beyond noise), ``generalisation.json`` (the result) and ``generalisation.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import markdown_table

from trustlab.capabilities import load_views
from trustlab.core.results import Result
from trustlab.core.views import view_for

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="run directory of trustlab study generalisation")
    args = parser.parse_args()
    load_views()
    stored = json.loads((args.run_dir / "results.json").read_text())["results"]
    result = Result.from_dict(stored["generalisation"])
    section = view_for(result.kind).section("generalisation", result)
    parts = [f"# {section.title}", *[str(p) for p in section.paragraphs]]
    parts += [f"- {key}: {value}" for key, value in section.facts]
    for table in section.tables:
        parts.append(f"## {table.caption}\n\n" + markdown_table(table.header, table.rows))
    parts.append("![effects](generalisation.png)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generalisation.md").write_text("\n\n".join(parts) + "\n")
    (RESULTS / "generalisation.json").write_text(result.to_json())
    (RESULTS / "generalisation.png").write_bytes(section.figures[0].png)
    print(f"wrote {RESULTS / 'generalisation.md'}")


if __name__ == "__main__":
    main()
