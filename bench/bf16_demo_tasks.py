#!/usr/bin/env python3
"""bf16 against fp32 on the demo tasks (issue 12's numerics criterion): per task (a demo mode's data), a search
(qkvo+mlp, budget 0.4) and a fresh fine-tune of the searched ranks, once with the base in float32 and once in
bfloat16; prints whether the ranks agree and the eval perplexities. As a control, a third run in float32 with the
learning rate changed by one part in 10⁴ measures how far these short runs move under any small perturbation, so
bf16's differences can be read against fp32's own sensitivity. With --seeds N, both dtypes also run seeds
1..N-1 and the mean eval perplexity of each is printed with its spread across seeds (the standard deviation).

    python bench/bf16_demo_tasks.py              # quick mode's data and steps: about 4 minutes on 2 cores
    python bench/bf16_demo_tasks.py --seeds 4    # and the means over seeds 0-3: about 10 minutes
    python bench/bf16_demo_tasks.py --mode full  # full mode's: about 20 minutes
"""
import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import loranas
from loranas import tasks
from loranas.demo.settings import ADAPTER_SETS, BUDGET, MODES, SPACE

BASE = Path(loranas.__file__).parent / "demo" / "base"
TARGETS = ADAPTER_SETS["qkvo+mlp"]


def run(files: dict, dtype: str, s, seed: int = 0) -> dict:
    t = time.time()
    with loranas.load_model(BASE, dtype=dtype) as m:
        d = {k: loranas.Dataset.from_cauldron(p, model=m) for k, p in files.items()}
        r = loranas.search(m, d["train"], d["val"], targets=TARGETS, space=SPACE, budget=BUDGET,
                           epochs=s.search_epochs, batch_size=s.batch_size, lr=s.lr, alpha_lr=s.alpha_lr, seed=seed,
                           lora_alpha=s.lora_alpha)
        loranas.finetune(m, d["train"], d["val"], ranks=r, init="fresh", targets=TARGETS, epochs=s.finetune_epochs,
                         batch_size=s.batch_size, lr=s.lr, seed=seed, lora_alpha=s.lora_alpha)
        return {"ranks": r.ranks, "ppl": loranas.evaluate(m, d["eval"]).perplexity, "s": time.time() - t}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick", help="the demo mode whose data and steps")
    parser.add_argument("--seeds", type=int, default=1, help="also compare the means over seeds 0..N-1")
    args = parser.parse_args()
    s = MODES[args.mode]
    loranas.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        files = tasks.make(tmp, n_train=s.n_train, n_val=s.n_val, n_eval=s.n_eval, seed=0)
        for name in files:
            fp32, bf16 = run(files[name], "float32", s), run(files[name], "bfloat16", s)
            nudged = run(files[name], "float32", dataclasses.replace(s, lr=s.lr * (1 + 1e-4)))
            print(f"{name}: bf16 {compare(fp32, bf16)}; control, fp32 at lr·(1 + 1e-4): {compare(fp32, nudged)}",
                  flush=True)
            if args.seeds > 1:
                more = {d: [run(files[name], d, s, seed) for seed in range(1, args.seeds)]
                        for d in ("float32", "bfloat16")}
                print(f"{name}: over seeds 0-{args.seeds - 1}: fp32 {spread([fp32] + more['float32'])}, "
                      f"bf16 {spread([bf16] + more['bfloat16'])}", flush=True)
    return 0


def spread(runs: list) -> str:
    """The mean eval perplexity of runs and its standard deviation across them."""
    ppl = [r["ppl"] for r in runs]
    return f"{statistics.mean(ppl):.3f} ± {statistics.stdev(ppl):.3f}"


def compare(a: dict, b: dict) -> str:
    """How run b differs from run a: the modules with the same rank, and the eval perplexities."""
    agree = sum(a["ranks"][k] == b["ranks"][k] for k in a["ranks"])
    diff = abs(b["ppl"] - a["ppl"]) / a["ppl"]
    return f"ranks agree on {agree}/{len(a['ranks'])}, eval perplexity {a['ppl']:.4f} → {b['ppl']:.4f} " \
           f"({100 * diff:.2f}%)"


if __name__ == "__main__":
    sys.exit(main())
