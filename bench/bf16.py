#!/usr/bin/env python3
"""bf16 side by side (issue 12): the training step (LoRA r=64 on the nine module types, B=4, 128 tokens, one
4-tile image, 2 threads) of loranas in float32 and bfloat16 against PyTorch + PEFT in float32 and under
torch.autocast("cpu", dtype=torch.bfloat16), alternating rounds so that every configuration sees the same machine,
medians over every step; the supernet step over the LoRA step in bf16; the bf16 GEMM's MFU against the tile
(or dot-product) ceiling measured in the same run (`loranas-bench bf16`); peak RSS.

    python bench/bf16.py --python .venv-test/bin/python [--sizes tiny small medium] [--rounds 2]

Writes bench/results/bf16.json and bench/results/bf16.md. OpenBLAS runs the kernels the engine picks for this CPU
(Cooperlake here) unless --coretype names others (OPENBLAS_CORETYPE; torch does not use OpenBLAS).
"""
import argparse
import json
import os
import subprocess
import sys

from pairs import median_step, paired, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, ".build", "release", "loranas-bench")
STEPS = {"tiny": ("20", "3"), "small": ("6", "1"), "medium": ("3", "1")}
# Tiny's rounds take seconds, and its 10-ms steps are the most exposed to this VM's swings between minutes: it runs
# this many times --rounds, so that its median ratio rests on more pairs.
ROUNDS_SCALE = {"tiny": 3}
TARGET_BF16 = {"small": 1.2, "medium": 1.0}
TARGET_FP32 = {"tiny": 3.0}


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(size, rounds, python, env):
    steps, warmup = STEPS[size]
    ours = [BENCH, "step", "--size", size, "--threads", "2", "--steps", steps, "--warmup", warmup]
    torch = [python, "bench/pytorch_peft_step.py", "--size", size, "--threads", "2", "--steps", steps,
             "--warmup", warmup, "--json"]
    runs = {k: [] for k in ("ours_fp32", "ours_bf16", "ours_bf16_supernet", "torch_fp32", "torch_bf16")}
    for _ in range(rounds):
        runs["ours_fp32"].append(run_json(ours + ["--mode", "lora"], env))
        runs["ours_bf16"].append(run_json(ours + ["--mode", "lora", "--dtype", "bfloat16"], env))
        runs["ours_bf16_supernet"].append(run_json(ours + ["--mode", "supernet", "--dtype", "bfloat16"], env))
        runs["torch_fp32"].append(run_json(torch, env))
        runs["torch_bf16"].append(run_json(torch + ["--autocast"], env))
    ms = {k: median_step(v) for k, v in runs.items()}
    rss = {k: max(r["peak_rss_mib"] for r in v) for k, v in runs.items()}
    return {
        "size": size, "rounds": rounds, "step_ms": ms, "peak_rss_mib": rss,
        "bf16_vs_torch_bf16": paired(runs["torch_bf16"], runs["ours_bf16"]), "target": TARGET_BF16.get(size),
        "fp32_vs_torch_fp32": paired(runs["torch_fp32"], runs["ours_fp32"]), "target_fp32": TARGET_FP32.get(size),
        "supernet_over_lora_bf16": paired(runs["ours_bf16_supernet"], runs["ours_bf16"]),
        "rss_bf16_over_torch_bf16": rss["ours_bf16"] / rss["torch_bf16"],
        "compute": runs["ours_bf16"][0]["compute"], "openblas_core": runs["ours_bf16"][0]["openblas_core"],
    }


def gemm_rows(env):
    out = subprocess.run([BENCH, "bf16", "--threads", "2"], check=True, capture_output=True, text=True, cwd=ROOT,
                         env=env).stdout
    return [json.loads(line) for line in out.strip().splitlines()[1:]]


def markdown(rows, gemms, coretype):
    lines = ["# bf16 against PyTorch's bf16 autocast", "",
             f"`python bench/bf16.py` (OpenBLAS kernels: {coretype}; rounds: "
             + ", ".join(f"{r['size']} {r['rounds']}" for r in rows) + "): step times are "
             "medians over every step of every round; ratios are the median (lowest–highest) of the per-round "
             "ratios of configurations run next to each other. The engine's bf16 mode runs the linear layers on "
             + rows[0]["compute"].split(" on ")[-1] + ".",
             "", "| size | loranas fp32 | loranas bf16 | torch fp32 | torch bf16 autocast | bf16 vs torch bf16 "
             "(target) | fp32 vs torch fp32 (target) | supernet / LoRA (bf16) | peak RSS bf16: ours / torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms, rss = r["step_ms"], r["peak_rss_mib"]
        target = "" if r["target"] is None else f" (≥ {r['target']})"
        target_fp32 = "" if r.get("target_fp32") is None else f" (≥ {r['target_fp32']})"
        lines.append(
            f"| {r['size']} | {ms['ours_fp32']:.0f} ms | {ms['ours_bf16']:.0f} ms | {ms['torch_fp32']:.0f} ms | "
            f"{ms['torch_bf16']:.0f} ms | {spread(r['bf16_vs_torch_bf16'], '×')}{target} | "
            f"{spread(r['fp32_vs_torch_fp32'], '×')}{target_fp32} | {spread(r['supernet_over_lora_bf16'])} | "
            f"{rss['ours_bf16']:.0f} / {rss['torch_bf16']:.0f} MiB ({r['rss_bf16_over_torch_bf16']:.2f}) |")
    lines += ["", "The bf16 GEMM alone (`loranas-bench bf16 --threads 2`: y = x·Wᵀ with x converted to bf16), "
              "against sgemm on the same shape and the kernel's ceiling measured in the same run:", "",
              "| kernel | m × k × n | bf16 GFLOP/s | sgemm GFLOP/s | ceiling GFLOP/s | MFU |",
              "|---|---|---|---|---|---|"]
    for g in gemms:
        lines.append(f"| {g['kernel']} | {g['m']} × {g['k']} × {g['n']} | {g['bf16_gflops']:.0f} | "
                     f"{g['sgemm_gflops']:.0f} | {g['ceiling_gflops']:.0f} | {100 * g['mfu']:.0f}% |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["small", "medium"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--python", default=sys.executable, help="a Python with torch, transformers and peft")
    ap.add_argument("--coretype", default=None, help="OPENBLAS_CORETYPE (default: the engine's choice)")
    args = ap.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "loranas-bench"], check=True, cwd=ROOT)
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if args.coretype:
        env["OPENBLAS_CORETYPE"] = args.coretype
    rows = [measure(s, args.rounds * ROUNDS_SCALE.get(s, 1), args.python, env) for s in args.sizes]
    gemms = gemm_rows(env)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "bf16.json"), "w") as f:
        json.dump({"rows": rows, "gemm": gemms}, f, indent=1)
    text = markdown(rows, gemms, rows[0]["openblas_core"])
    with open(os.path.join(ROOT, "bench", "results", "bf16.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
