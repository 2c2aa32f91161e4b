"""``python -m loranas plot RESULT.json -o FIGURE.png [--kind ranks|alpha|losses]``: the figures of
:mod:`loranas.plots` from a saved search or fine-tune result."""

from __future__ import annotations

import argparse
import json
import sys

from .plots import plot_alpha, plot_losses, plot_ranks
from .results import FinetuneResult, SearchResult

PLOTS = {"ranks": plot_ranks, "alpha": plot_alpha, "losses": plot_losses}


def load_result(path: str):
    """A SearchResult or FinetuneResult from its JSON file (told apart by its keys)."""
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    kind = SearchResult if isinstance(obj, dict) and "alpha_history" in obj else FinetuneResult
    return kind.load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loranas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plot = sub.add_parser("plot", help="draw a figure of a search.json or finetune result")
    plot.add_argument("result", help="a result JSON written by SearchResult.save / FinetuneResult.save or the CLI")
    plot.add_argument("-o", "--output", required=True, help="the image to write (.png, .pdf, .svg)")
    plot.add_argument("--kind", choices=sorted(PLOTS), default="ranks")
    args = parser.parse_args(argv)
    try:
        result = load_result(args.result)
        if args.kind == "alpha" and not isinstance(result, SearchResult):
            parser.error("--kind alpha needs a search result")
        PLOTS[args.kind](result, path=args.output)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
