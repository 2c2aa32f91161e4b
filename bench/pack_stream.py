#!/usr/bin/env python3
"""Peak resident memory while streaming a pack through an epoch, against the pack's size.

Builds a small random Mllama (tiles4_gqa's shapes with 56-pixel tiles and the Llama-3 vocabulary, saved by
transformers), a Cauldron JSONL file of N records with one seeded PNG each (up to 400x300 pixels, so canvases
of 1 to 4 tiles), packs it with the CLI, then in fresh processes evaluates the model on every sample
(batch 16), once streaming the pack and once holding the dataset in memory, and reports the resident set
sampled every 0.2 s during the epoch (VmRSS, RssAnon, RssFile from /proc) beside the pack's size.

    python bench/pack_stream.py [--samples 20000] [--work DIR]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "python" / "tests")]

STREAM = """
import sys, threading, time
import loranas

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile")}

peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
done = threading.Event()

def sample():  # the engine releases the GIL during evaluate: this thread samples the resident set meanwhile
    while not done.wait(0.2):
        for k, v in status().items():
            peak[k] = max(peak[k], v)

model_dir, source, mode = sys.argv[1:4]
model = loranas.Model(model_dir)
base = status()["VmRSS"]
t = time.perf_counter()
ds = loranas.Dataset.load(source) if mode == "pack" else loranas.Dataset.from_cauldron(source, model=model_dir)
loaded = time.perf_counter() - t
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
result = model.evaluate(ds, batch_size=16)
seconds = time.perf_counter() - t
done.set()
print(len(ds), base, peak["VmRSS"], peak["RssAnon"], peak["RssFile"], loaded, seconds)
"""


def model_dir(out: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    from test_image_processor import CLIP_MEAN, CLIP_STD
    from test_processor import write_model_dir

    write_model_dir(out, tokenizer_dir, 56, 4, CLIP_MEAN, CLIP_STD)
    config = json.loads((TILES4 / "config.json").read_text())
    config["vision_config"].update(image_size=56, patch_size=14)
    config["text_config"].update(vocab_size=128256, pad_token_id=128004, bos_token_id=128000, eos_token_id=128009)
    config["image_token_index"] = 128256
    torch.manual_seed(0)
    MllamaForConditionalGeneration(MllamaConfig(**config)).save_pretrained(out)
    return out


def write_records(path: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    images = path.parent / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for i in range(n):
            w, h = int(rng.integers(8, 401)), int(rng.integers(8, 301))
            name = f"images/{i}.png"
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
            (path.parent / name).write_bytes(buf.getvalue())
            record = {"images": [name], "texts": [{"user": f"What is in picture {i}?",
                                                   "assistant": f"Noise number {i % 97}."}]}
            f.write(json.dumps(record) + "\n")


def peak(model: Path, source: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STREAM, str(model), str(source), mode], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
    if out.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{out.stderr}")
    n, base, rss, anon, file, loaded, seconds = out.stdout.split()
    return {"samples": int(n), "rss_after_model_mib": int(base) / 1024, "peak_rss_mib": int(rss) / 1024,
            "peak_anon_mib": int(anon) / 1024, "peak_file_mib": int(file) / 1024,
            "load_seconds": float(loaded), "epoch_seconds": float(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pack-stream-"))
    tokenizers = work / "llama3"
    if not (tokenizers / "tokenizer.json").exists():
        subprocess.run([sys.executable, str(ROOT / "tools/build_llama3_tokenizer.py"), str(tokenizers)], check=True)
    model = model_dir(work / "model", tokenizers)
    data = work / "data.jsonl"
    if not data.exists():
        write_records(data, args.samples)
    pack = work / "data.pack"
    cli = ROOT / ".build/release/loranas-cli"
    t = time.perf_counter()
    subprocess.run([str(cli), "pack", str(model), str(data), "-o", str(pack)], check=True)
    pack_seconds = time.perf_counter() - t
    size = pack.stat().st_size / 2**20
    rows = {"pack": peak(model, pack, "pack"), "memory": peak(model, data, "memory")}
    print(f"pack: {args.samples} samples, {size:.0f} MiB, written by `loranas pack` in {pack_seconds:.1f} s")
    for mode, r in rows.items():
        print(f"{mode:>6}: peak RSS during the epoch {r['peak_rss_mib']:.0f} MiB (anonymous {r['peak_anon_mib']:.0f}, "
              f"file-backed {r['peak_file_mib']:.0f}; {r['rss_after_model_mib']:.0f} MiB after loading the model), "
              f"load {r['load_seconds']:.1f} s, epoch {r['epoch_seconds']:.1f} s")
    print(json.dumps({"samples": args.samples, "pack_mib": size, "pack_seconds": pack_seconds, **rows}))


if __name__ == "__main__":
    main()
