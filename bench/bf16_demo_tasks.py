#!/usr/bin/env python3
"""bf16 against fp32 on the demo tasks (issue 12's numerics criterion): per task (a demo mode's data), a search
(qkvo+mlp, budget 0.4) and a fresh fine-tune of the searched ranks, once with the base in float32 and once in
bfloat16; prints whether the ranks agree and the eval perplexities. As a control, a third run in float32 with the
learning rate changed by one part in 10⁴ measures how far these short runs move under any small perturbation, so
bf16's differences can be read against fp32's own sensitivity; and fp32's ranks fine-tuned alone in bf16, which
takes the search's ties out of the comparison. With --seeds N, both dtypes also run seeds
1..N-1 and the mean eval perplexity of each is printed with its spread across seeds (the standard deviation).
With --peer, PyTorch + PEFT runs the same fine-tune (fp32's searched ranks, exported as a PEFT config and built
fresh; the same data, batch size, epochs and AdamW settings, its own shuffle) in fp32, in fp32 at the nudged
learning rate, and under bf16 autocast: how far the peer's own bf16 lands from its own fp32 on these runs (needs
torch, transformers and peft).

    python bench/bf16_demo_tasks.py              # quick mode's data and steps: about 4 minutes on 2 cores
    python bench/bf16_demo_tasks.py --seeds 4    # and the means over seeds 0-3: about 10 minutes
    python bench/bf16_demo_tasks.py --mode full  # full mode's: about 20 minutes
    python bench/bf16_demo_tasks.py --peer       # and PyTorch's fp32 / nudged / autocast fine-tunes
"""
import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import loranas
from loranas import tasks
from loranas.demo.settings import ADAPTER_SETS, BUDGET, MODES, SPACE

BASE = Path(loranas.__file__).parent / "demo" / "base"
TARGETS = ADAPTER_SETS["qkvo+mlp"]


def run(files: dict, dtype: str, s, seed: int = 0, ranks: dict | None = None, peft_dir: str | None = None) -> dict:
    """Search, then fine-tune the searched ranks, on the engine; with ranks given, only the fine-tune of those.
    With peft_dir, the fine-tuned adapter is exported there."""
    with loranas.load_model(BASE, dtype=dtype) as m:
        d = {k: loranas.Dataset.from_cauldron(p, model=m) for k, p in files.items()}
        if ranks is None:
            ranks = loranas.search(m, d["train"], d["val"], targets=TARGETS, space=SPACE, budget=BUDGET,
                                   epochs=s.search_epochs, batch_size=s.batch_size, lr=s.lr, alpha_lr=s.alpha_lr,
                                   seed=seed, lora_alpha=s.lora_alpha).ranks
        f = loranas.finetune(m, d["train"], d["val"], ranks=ranks, init="fresh", targets=TARGETS,
                             epochs=s.finetune_epochs, batch_size=s.batch_size, lr=s.lr, seed=seed,
                             lora_alpha=s.lora_alpha)
        if peft_dir is not None:
            f.save_peft(peft_dir)
        return {"ranks": ranks, "parameters": f.lora_parameters, "ppl": loranas.evaluate(m, d["eval"]).perplexity}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick", help="the demo mode whose data and steps")
    parser.add_argument("--seeds", type=int, default=1, help="also compare the means over seeds 0..N-1")
    parser.add_argument("--peer", action="store_true", help="also run the fine-tune in PyTorch + PEFT")
    parser.add_argument("--tasks", help="comma-separated task names (default: every task)")
    args = parser.parse_args()
    s = MODES[args.mode]
    if args.peer:
        from peer_finetune import compare_peer  # torch, transformers and peft only with --peer
    loranas.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        files = tasks.make(tmp, n_train=s.n_train, n_val=s.n_val, n_eval=s.n_eval, seed=0)
        names = args.tasks.split(",") if args.tasks else list(files)
        if unknown := set(names) - set(files):
            parser.error(f"unknown tasks {sorted(unknown)}; the tasks are {', '.join(files)}")
        for name in names:
            peft_dir = str(Path(tmp) / f"{name}-peft") if args.peer else None
            fp32, bf16 = run(files[name], "float32", s, peft_dir=peft_dir), run(files[name], "bfloat16", s)
            nudged = run(files[name], "float32", dataclasses.replace(s, lr=s.lr * (1 + 1e-4)))
            print(f"{name}: bf16 {compare(fp32, bf16)}; control, fp32 at lr·(1 + 1e-4): {compare(fp32, nudged)}",
                  flush=True)
            fixed = run(files[name], "bfloat16", s, ranks=fp32["ranks"])
            print(f"{name}: fine-tune of fp32's ranks in bf16: {change(fp32['ppl'], fixed['ppl'])}", flush=True)
            if args.seeds > 1:
                more = {d: [run(files[name], d, s, seed) for seed in range(1, args.seeds)]
                        for d in ("float32", "bfloat16")}
                print(f"{name}: over seeds 0-{args.seeds - 1}: fp32 {spread([fp32] + more['float32'])}, "
                      f"bf16 {spread([bf16] + more['bfloat16'])}", flush=True)
            if args.peer:
                peer = compare_peer(files[name], peft_dir, fp32["parameters"], s)
                print(f"{name}: PyTorch + PEFT, {peer}", flush=True)
    return 0


def spread(runs: list) -> str:
    """The mean eval perplexity of runs and its standard deviation across them."""
    ppl = [r["ppl"] for r in runs]
    return f"{statistics.mean(ppl):.3f} ± {statistics.stdev(ppl):.3f}"


def compare(a: dict, b: dict) -> str:
    """How run b differs from run a: the modules with the same rank, and the eval perplexities."""
    agree = sum(a["ranks"][k] == b["ranks"][k] for k in a["ranks"])
    return f"ranks agree on {agree}/{len(a['ranks'])}, eval perplexity {change(a['ppl'], b['ppl'])}"


def change(a: float, b: float) -> str:
    return f"{a:.4f} → {b:.4f} ({100 * abs(b - a) / a:.2f}%)"


if __name__ == "__main__":
    sys.exit(main())
