"""The search-quality study: does the supernet's rank choice beat chance, and does it keep uniform-64's quality
with 40% of its LoRA parameters?

    python bench/search_study.py [--seeds 0,1,2] [--tasks charts,...] [--out bench/results/search_study.json]

On the demo base and each built-in task (the quick demo's data sizes), for each seed: search (budget 0.4 of
uniform 64, the paper's space), then fine-tune the searched ranks, uniform 64, uniform at the space's rank
nearest the searched budget, and five random-rank assignments at the searched budget, every one from fresh
adapters with the same seed, steps and lora_alpha, and score each on the task's eval split (perplexity, exact-
match accuracy). Writes the raw rows as JSON and a Markdown summary beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import loranas
from loranas import demo, tasks
from loranas._files import atomic_write_text

RANDOM_CONTROLS = 5


def score(model, data) -> dict:
    r = loranas.evaluate(model, data)
    return {"perplexity": r.perplexity, "accuracy": r.accuracy}


def one_seed(model, data: dict, seed: int, settings) -> list[dict]:
    """The search and its eight fine-tunes at one seed."""
    s, space = settings, list(demo.SPACE)
    train_args = dict(targets="all", batch_size=s.batch_size, lr=s.lr, seed=seed, lora_alpha=s.lora_alpha)
    found = loranas.search(model, data["train"], data["val"], space=space, budget=demo.BUDGET,
                           epochs=s.search_epochs, alpha_lr=s.alpha_lr, **train_args)
    share = found.lora_parameters / found.uniform_max_parameters
    nearest = min(space, key=lambda r: abs(r / max(space) - share))
    controls = [("searched", found), ("uniform-64", max(space)), (f"uniform-{nearest}", nearest)]
    controls += [(f"random-{k}", {"random": found.lora_parameters, "space": space, "seed": 1000 * seed + k})
                 for k in range(RANDOM_CONTROLS)]
    rows = []
    for name, ranks in controls:
        tuned = loranas.finetune(model, data["train"], data["val"], ranks=ranks, init="fresh",
                                 epochs=s.finetune_epochs, **train_args)
        rows.append({"seed": seed, "adapter": name, "lora_parameters": tuned.lora_parameters,
                     **score(model, data["eval"])})
    model.clear_adapters()
    return rows


def summarize(rows: list[dict]) -> dict:
    """Per task: each adapter kind's mean perplexity and accuracy over seeds, and the two goals' tests."""
    out = {}
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        seeds = sorted({r["seed"] for r in mine})

        def per_seed(pred, key):
            return [statistics.median(r[key] for r in mine if r["seed"] == s and pred(r["adapter"])) for s in seeds]

        searched = per_seed(lambda a: a == "searched", "perplexity")
        uniform = per_seed(lambda a: a == "uniform-64", "perplexity")
        random_median = per_seed(lambda a: a.startswith("random"), "perplexity")
        spread = statistics.pstdev(searched) if len(searched) > 1 else 0.0
        out[task] = {
            "searched_ppl": statistics.mean(searched), "searched_ppl_std": spread,
            "uniform64_ppl": statistics.mean(uniform), "random_median_ppl": statistics.mean(random_median),
            "searched_acc": statistics.mean(per_seed(lambda a: a == "searched", "accuracy")),
            "uniform64_acc": statistics.mean(per_seed(lambda a: a == "uniform-64", "accuracy")),
            "random_median_acc": statistics.mean(per_seed(lambda a: a.startswith("random"), "accuracy")),
            "uniform_nearest_ppl": statistics.mean(per_seed(lambda a: a.startswith("uniform-") and a != "uniform-64",
                                                            "perplexity")),
        }
        t = out[task]
        t["within_1pct_of_uniform64"] = t["searched_ppl"] <= 1.01 * t["uniform64_ppl"]
        t["beats_random_median_by_more_than_spread"] = t["random_median_ppl"] - t["searched_ppl"] > spread
    return out


def markdown(summary: dict, seeds: list[int], seconds: float) -> str:
    head = ("| task | searched ppl (± seed std) | uniform-64 ppl | uniform-nearest ppl | random median ppl | "
            "searched acc | uniform-64 acc | random median acc | ≤ 1% of uniform-64 | beats random by > spread |")
    lines = [f"Seeds {seeds}, {RANDOM_CONTROLS} random assignments per seed, {seconds / 60:.0f} min.", "", head,
             "|" + "---|" * 10]
    for task, t in summary.items():
        lines.append(
            f"| {task} | {t['searched_ppl']:.3f} ± {t['searched_ppl_std']:.3f} | {t['uniform64_ppl']:.3f} | "
            f"{t['uniform_nearest_ppl']:.3f} | {t['random_median_ppl']:.3f} | {t['searched_acc']:.1%} | "
            f"{t['uniform64_acc']:.1%} | {t['random_median_acc']:.1%} | "
            f"{'yes' if t['within_1pct_of_uniform64'] else 'no'} | "
            f"{'yes' if t['beats_random_median_by_more_than_spread'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tasks", default=",".join(tasks.NAMES))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_study.json")
    p.add_argument("--work", type=Path, default=Path("/tmp/loranas-search-study"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.tasks.split(",")
    settings = demo.MODES["quick"]
    files = tasks.make(args.work, names=names, n_train=settings.n_train, n_val=settings.n_val,
                       n_eval=settings.n_eval, seed=0)
    t0 = time.time()
    rows = []
    with loranas.load_model(demo.base_path()) as model:
        for task in names:
            data = {s: loranas.Dataset.from_cauldron(path, model=model) for s, path in files[task].items()}
            for seed in seeds:
                for row in one_seed(model, data, seed, settings):
                    rows.append({"task": task, **row})
                    print(json.dumps(rows[-1]), flush=True)
    seconds = time.time() - t0
    summary = summarize(rows)
    atomic_write_text(args.out, json.dumps({"seeds": seeds, "seconds": seconds, "rows": rows,
                                            "summary": summary}, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(summary, seeds, seconds))
    print(markdown(summary, seeds, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
