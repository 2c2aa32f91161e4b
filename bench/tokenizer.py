#!/usr/bin/env python3
"""Tokenizer throughput, loranas against HF tokenizers, both on one thread, on the same text (the
seeded strings of python/tests/test_tokenizer.py joined into 20 KB documents), through each one's
Python API. Median of 5 passes after a warm-up pass; prints tokens/s and the ratio.

    python bench/tokenizer.py path/to/tokenizer.json     # e.g. one built by ../shared/tools/build_llama3_tokenizer.py
"""
import os
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # HF tokenizers' thread pool, before it is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "python", "tests")]

import loranas  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from test_tokenizer import make_strings  # noqa: E402


def main(path: str) -> None:
    loranas.set_num_threads(1)
    text = "\n".join(make_strings(seed=9, count=20_000))
    docs = [text[i:i + 20_000] for i in range(0, len(text), 20_000)]
    ours, hf = loranas.Tokenizer.from_file(path), Tokenizer.from_file(path)
    rates = {}
    for name, encode in [("loranas", ours.encode), ("hf tokenizers", lambda d: hf.encode(d).ids)]:
        times = []
        for rep in range(6):
            t = time.perf_counter()
            count = sum(len(encode(d)) for d in docs)
            times.append(time.perf_counter() - t)
        rates[name] = count / statistics.median(times[1:])
        print(f"{name:>14}: {count} tokens from {len(text.encode()) / 1e6:.2f} MB, {rates[name] / 1e6:.2f} M tokens/s")
    print(f"loranas / hf: {rates['loranas'] / rates['hf tokenizers']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
