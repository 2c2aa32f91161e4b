#!/usr/bin/env python3
"""Generation speed: the engine's Model.generate vs transformers' generate() (greedy, KV cache) on CPU.

For each size in bench/configs/{tiny,small,medium}: a random MllamaForConditionalGeneration (seed 0, float32,
gates 0.5 so the image paths are active) is saved to a temporary directory and loaded by both sides. The
prompt is batch 1, 64 tokens (the image token, then random ids) with one 4-tile (2x2) image every token sees;
both sides generate exactly 32 new tokens (the engine with no stop id, transformers with min_new_tokens=32).
Each side runs once to warm up, then 3 timed runs; the table gives the median wall time of a whole generate
call (vision + prefill + 31 decode steps) and new tokens per second. The same thread count is used for
both (torch.set_num_threads and loranas.set_num_threads). The greedy tokens are compared too.
On a machine whose cores other processes also use, torch's OpenMP threads spin-wait for each other and
lose most of their time; OMP_WAIT_POLICY=PASSIVE (recorded in the JSON) makes them sleep instead.

  LORANAS_LIBRARY=.build/release/libloranas.so PYTHONPATH=python .venv-test/bin/python bench/generate.py
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from transformers import MllamaConfig, MllamaForConditionalGeneration  # noqa: E402

import loranas  # noqa: E402

HERE = Path(__file__).resolve().parent
PROMPT, NEW, TILES, ASPECT_RATIO_ID_2x2 = 64, 32, 4, 6


def build(size: str, out: Path) -> MllamaConfig:
    cfg = MllamaConfig.from_json_file(str(HERE / "configs" / size / "config.json"))
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gate") or name.endswith("gate_attn") or name.endswith("gate_ffn"):
                p.fill_(0.5)
    model.save_pretrained(out)
    return cfg


def inputs(cfg: MllamaConfig) -> dict:
    rng = np.random.default_rng(0)
    v, vocab = cfg.vision_config, cfg.text_config.vocab_size
    ids = rng.integers(3, vocab, (1, PROMPT))
    ids[0, 0] = vocab  # the image token (first extra embedding row)
    return {
        "input_ids": ids.astype(np.int64),
        "attention_mask": np.ones((1, PROMPT), np.int64),
        "pixel_values": rng.standard_normal((1, 1, TILES, v.num_channels, v.image_size, v.image_size)).astype(
            np.float32),
        "aspect_ratio_ids": np.full((1, 1), ASPECT_RATIO_ID_2x2, np.int64),
        "aspect_ratio_mask": np.ones((1, 1, TILES), np.int64),
        "cross_attention_mask": np.ones((1, PROMPT, 1, TILES), np.int64),
    }


def timed(fn, runs: int):
    fn()  # warm-up
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench(size: str, threads: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = build(size, Path(tmp))
        x = inputs(cfg)
        hf = MllamaForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32).eval()
        t_in = {k: torch.from_numpy(v) for k, v in x.items()}
        pad = cfg.text_config.pad_token_id

        def torch_generate():
            with torch.no_grad():
                return hf.generate(**t_in, do_sample=False, max_new_tokens=NEW, min_new_tokens=NEW,
                                   pad_token_id=pad, temperature=None, top_p=None, top_k=None).numpy()

        torch_s, torch_ids = timed(torch_generate, runs)
        with loranas.load_model(tmp) as model:
            ours_s, ours_ids = timed(lambda: model.generate(**x, max_new_tokens=NEW, stop_token_ids=[]), runs)
    # transformers' min_new_tokens masks eos until the end; compare up to its first eos, if any
    eos = cfg.text_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    new_t, new_o = torch_ids[0, PROMPT:], ours_ids[0, PROMPT:]
    upto = next((i for i, t in enumerate(new_o) if t in eos), NEW)
    return {"size": size, "threads": threads, "prompt": PROMPT, "new_tokens": NEW, "runs": runs,
            "engine_s": round(ours_s, 4), "torch_s": round(torch_s, 4),
            "engine_tok_s": round(NEW / ours_s, 1), "torch_tok_s": round(NEW / torch_s, 1),
            "speedup": round(torch_s / ours_s, 2), "same_tokens": bool(np.array_equal(new_t[:upto], new_o[:upto])),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small", "medium"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loranas.set_num_threads(args.threads)
    rows = [bench(s, args.threads, args.runs) for s in args.sizes]
    print(f"{'size':8} {'engine s':>9} {'torch s':>9} {'engine tok/s':>13} {'torch tok/s':>12} {'speedup':>8} same")
    for r in rows:
        print(f"{r['size']:8} {r['engine_s']:9.3f} {r['torch_s']:9.3f} {r['engine_tok_s']:13.1f} "
              f"{r['torch_tok_s']:12.1f} {r['speedup']:7.2f}x {r['same_tokens']}")
    print(json.dumps(rows))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
