#!/usr/bin/env python3
"""Processor throughput: loranas.Processor against transformers' MllamaProcessor (Pillow image path), one
thread each, on the same seeded images: 64 photo-like 640×480 / 480×640 JPEGs and PNGs and a few extreme sizes,
tile 560, 4 tiles, CLIP mean/std, 8 images per call (one per sample). Every pass opens the encoded images again
(PIL caches decoded pixels). Median of 3 passes after a warm-up pass; prints a table and one JSON line.

    python bench/processor.py path/to/tokenizer.json     # e.g. one built by tools/build_llama3_tokenizer.py
"""
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for var in ("LORANAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[var] = "1"  # before the libraries are imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "python" / "tests")]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import loranas  # noqa: E402
from test_image_processor import CLIP_MEAN, CLIP_STD  # noqa: E402
from test_processor import hf_processor, write_model_dir  # noqa: E402

BATCH = 8
EXTREME = [(2000, 300), (300, 2000), (1, 1), (1920, 1080), (4000, 60), (37, 1500), (1024, 1024), (800, 3000)]


def photo(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth gradients and blobs plus mild noise: compresses like a photo, unlike pure noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.002, 0.02), rng.uniform(0.002, 0.02), rng.uniform(0, 6.3)
        img[..., c] = 128 + 90 * np.sin(xx * fx + phase) * np.cos(yy * fy)
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encoded_images(seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    sizes = [(640, 480) if i % 2 else (480, 640) for i in range(64)] + EXTREME
    out = []
    for i, (w, h) in enumerate(sizes):
        buf = io.BytesIO()
        im = Image.fromarray(photo(w, h, rng))
        if i % 4 == 3:
            im.save(buf, "PNG")
        else:
            im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def run(call, images: list, opener) -> float:
    """Seconds for one pass over every image, BATCH images (one per sample) per call."""
    t = time.perf_counter()
    for i in range(0, len(images), BATCH):
        chunk = [[opener(d)] for d in images[i:i + BATCH]]
        call(["<|image|>Describe this image."] * len(chunk), chunk)
    return time.perf_counter() - t


def main(tokenizer_json: str) -> None:
    import torch

    torch.set_num_threads(1)
    loranas.set_num_threads(1)
    images = encoded_images()
    with tempfile.TemporaryDirectory() as tmp:
        d = write_model_dir(Path(tmp) / "mllama", Path(tokenizer_json).parent, 560, 4, CLIP_MEAN, CLIP_STD)
        ours, hf = loranas.Processor.from_pretrained(d), hf_processor(d)
        pil = lambda data: Image.open(io.BytesIO(data))  # noqa: E731
        cases = [
            ("transformers MllamaProcessor (PIL)", lambda t, i: hf(text=t, images=i, return_tensors="np",
                                                                    padding=True), pil),
            ("loranas.Processor (PIL)", lambda t, i: ours(text=t, images=i), pil),
            ("loranas.Processor (bytes)", lambda t, i: ours(text=t, images=i), lambda data: data),
        ]
        rates = {}
        for name, call, opener in cases:
            times = [run(call, images, opener) for _ in range(4)][1:]
            rates[name] = len(images) / statistics.median(times)
    base = rates[cases[0][0]]
    print(f"{len(images)} images (64 of 640x480/480x640 JPEG+PNG, {len(EXTREME)} extreme), tile 560, 4 tiles, "
          f"{BATCH} per call, 1 thread, median of 3")
    print(f"| {'processor':<36} | images/s | vs transformers |")
    print(f"|{'-' * 38}|----------|-----------------|")
    for name, rate in rates.items():
        print(f"| {name:<36} | {rate:8.1f} | {rate / base:14.2f}x |")
    print(json.dumps({"bench": "processor", "images": len(images), "threads": 1,
                      "images_per_s": {k: round(v, 2) for k, v in rates.items()}}))


if __name__ == "__main__":
    main(sys.argv[1])
