"""``python -m loranas plot RESULT.json -o FIGURE.png [--kind ranks|alpha|losses]``: the figures of
:mod:`loranas.plots` from a saved search or fine-tune result.

``python -m loranas tasks make DIR [--tasks charts,spatial] [--n-train N] [--n-val N] [--n-eval N] [--seed S]
[--image-size P] [--captions N]``: the procedural Cauldron tasks of :mod:`loranas.tasks` (and, with
``--captions N``, N caption records per task for pretraining).
``python -m loranas demo [OUT] [--full] [--tasks a,b] [--seed S] [--threads N]``: the main job (:mod:`loranas.demo`).
"""

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
    add_tasks_parser(sub)
    add_demo_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "tasks":
        return make_tasks(args)
    if args.command == "demo":
        return run_demo(args)
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


def add_tasks_parser(sub) -> None:
    """The ``tasks make`` subcommand's arguments."""
    tasks = sub.add_parser("tasks", help="write the procedural vision-language tasks (loranas.tasks)")
    action = tasks.add_subparsers(dest="action", required=True)
    make = action.add_parser("make", help="write DIR/<task>/{train,val,eval}.jsonl with PNG images")
    make.add_argument("directory", help="the output directory")
    make.add_argument("--tasks", default=None, help="comma-separated task names (default: all six)")
    make.add_argument("--n-train", type=int, default=200)
    make.add_argument("--n-val", type=int, default=50)
    make.add_argument("--n-eval", type=int, default=50)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--image-size", type=int, default=112)
    make.add_argument("--captions", type=int, default=0, metavar="N",
                      help="also write DIR/captions.jsonl with N records per task (default: none)")


def make_tasks(args) -> int:
    """Runs ``tasks make``; a bad argument prints one ``error:`` line and returns 1."""
    from . import tasks

    if args.captions < 0:
        print(f"error: --captions must be an integer >= 0, got {args.captions}", file=sys.stderr)
        return 1
    try:
        out = tasks.make(args.directory, names=args.tasks, n_train=args.n_train, n_val=args.n_val,
                         n_eval=args.n_eval, seed=args.seed, image_size=args.image_size)
        if args.captions:
            captions = tasks.make_captions(args.directory, n_per_task=args.captions, seed=args.seed,
                                           image_size=args.image_size, names=args.tasks)
    except (OSError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for task, splits in out.items():
        print(f"{task}: {', '.join(str(p) for p in splits.values())}")
    if args.captions:
        print(f"captions: {captions}")
    return 0


def add_demo_parser(sub) -> None:
    """The ``demo`` subcommand's arguments."""
    demo = sub.add_parser("demo", help="the main job: search vs uniform vs random ranks on the built-in tasks")
    demo.add_argument("output", nargs="?", default="loranas-demo", help="the output directory (default: %(default)s)")
    demo.add_argument("--full", action="store_true", help="the full mode: three adapter sets, more data")
    demo.add_argument("--tasks", default=None, help="comma-separated task names (default: all six)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=None, help="engine threads (default: all cores)")


def run_demo(args) -> int:
    """Runs ``demo``; bad input prints one ``error:`` line and returns 1."""
    from . import demo
    from .api import set_num_threads
    from .errors import LoranasError

    try:
        if args.threads is not None:
            set_num_threads(args.threads)
        names = None if args.tasks is None else [t for t in args.tasks.split(",") if t]
        demo.run(args.output, mode="full" if args.full else "quick", names=names, seed=args.seed)
    except (OSError, ValueError, ImportError, LoranasError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
