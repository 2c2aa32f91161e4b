"""Threads: the GIL is released while the engine works, two models used from two threads give the
single-threaded results bit for bit, and one model used from two threads at once is serialized, never
corrupted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

import loranas

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
OPTIONS = dict(space=(2, 4, 8), epochs=2, batch_size=4, lr=1e-2, alpha_lr=5e-2, seed=7)


def samples(n: int = 16, length: int = 24, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"input_ids": rng.integers(0, 96, length), "labels": rng.integers(0, 96, length)} for _ in range(n)]


def search(model) -> loranas.SearchResult:
    data = samples()
    return loranas.search(model, data[:12], data[12:], progress=False, **OPTIONS)


def same(a: loranas.SearchResult, b: loranas.SearchResult) -> bool:
    return (a.ranks == b.ranks and a.train_losses == b.train_losses and a.validation_losses == b.validation_losses
            and all(np.array_equal(a.alpha_history[m], b.alpha_history[m]) for m in a.ranks))


def test_the_gil_is_released_during_engine_calls():
    """A Python thread keeps counting while another thread is inside one long engine call."""
    data = samples(n=64, length=48)
    with loranas.Model(TILES4) as model:
        done = threading.Event()
        window = {}

        def work():
            window["start"] = time.perf_counter()
            model.evaluate(data * 8, batch_size=512)
            window["end"] = time.perf_counter()
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        ticks = []
        while not done.is_set():
            ticks.append(time.perf_counter())
        worker.join()
    inside = [t for t in ticks if window["start"] < t < window["end"]]
    assert window["end"] - window["start"] > 0.05
    # With the GIL held by the call, this thread could not run at all while it lasted.
    assert len(inside) > 1000, f"{len(inside)} ticks in {window['end'] - window['start']:.3f} s"


def test_two_models_in_two_threads_equal_one_thread():
    with loranas.Model(TILES4) as model:
        reference = search(model)
    results = {}
    models = [loranas.Model(TILES4), loranas.Model(TILES4)]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, search(models[i]))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m in models:
        m.close()
    assert same(results[0], reference) and same(results[1], reference)


def test_one_model_from_two_threads_is_serialized():
    """Both searches finish, one after the other (the model's lock), each with the single-threaded result."""
    with loranas.Model(TILES4) as model:
        reference = search(model)
        results, errors = [], []

        def run():
            try:
                results.append(search(model))
            except Exception as exc:  # a refusal would be reported here; corruption would fail `same`
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 2 and all(same(r, reference) for r in results)
