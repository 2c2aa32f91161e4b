"""loranas.Dataset, search and finetune on synthetic samples for the tiles4_gqa fixture config:
results, JSON round trips, PEFT export and reload, progress callbacks and checkpoint resume."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import loranas
from helpers import run_threads

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"
TILES4 = FIXTURES / "tiles4_gqa"
TILE1 = FIXTURES / "tile1_bf16"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixtures at {FIXTURES}")

IMAGE_TOKEN = 96  # tiles4_gqa: image_token_index = text vocab size
SPACE = (2, 4, 8)


def make_samples(n: int, seed: int) -> list[dict]:
    """One 2x2 image (aspect ratio id 6, 4 tiles) per sample; the image token first, then text.
    Lengths vary (8..12) so that batches need padding."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        s = int(rng.integers(8, 13))
        input_ids = np.concatenate([[IMAGE_TOKEN], rng.integers(0, 96, s - 1)]).astype(np.int64)
        labels = input_ids.copy()
        labels[0] = -100
        samples.append({
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": np.ones(s, np.int64),
            "pixel_values": rng.standard_normal((1, 4, 3, 12, 12)).astype(np.float32),
            "aspect_ratio_ids": np.array([6], np.int64),
            "aspect_ratio_mask": np.array([[1, 1, 1, 1]], np.int64),
            "cross_attention_mask": np.ones((s, 1, 4), np.int64),
        })
    return samples


TRAIN = make_samples(12, seed=1)
VAL = make_samples(6, seed=2)


def load() -> loranas.Model:
    return loranas.load_model(TILES4)


def module_sizes(model: loranas.Model, names) -> dict[str, int]:
    """in_features + out_features of each module name, from the model's description."""
    groups = model.config["targetable_modules"]

    def location(name: str) -> str:
        if name.startswith("vision_model.transformer."):
            return "vision.local"
        if name.startswith("vision_model.global_transformer."):
            return "vision.global"
        kind = name.split(".")[-2]
        return {"self_attn": "text.self_attn", "cross_attn": "text.cross_attn", "mlp": "text.mlp"}[kind]

    sizes = {}
    for name in names:
        (group,) = [g for g in groups if g["type"] == name.split(".")[-1] and g["location"] == location(name)]
        sizes[name] = group["in_features"] + group["out_features"]
    return sizes


@pytest.fixture(scope="module")
def searched():
    """A model right after a short search (the supernet still attached), and the result."""
    model = load()
    result = loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=3, batch_size=3, lr=1e-2)
    yield model, result
    model.close()


# ---- datasets ----------------------------------------------------------------------------------

def test_dataset_add_extend_len():
    with load() as model, loranas.Dataset(model) as ds:
        assert len(ds) == 0
        ds.add(TRAIN[0])
        ds.extend(TRAIN[1:4])
        ds.extend(s for s in TRAIN[4:6])  # any iterable
        assert len(ds) == 6
        assert "6 samples" in repr(ds)
        with loranas.Dataset(model, TRAIN) as ds2:
            assert len(ds2) == 12
        text_only = {"input_ids": np.array([5, 6, 7]), "labels": np.array([-100, 6, 7])}
        ds.add(text_only)
        assert len(ds) == 7
    assert ds.closed
    with pytest.raises(ValueError, match="closed"):
        len(ds)


def test_dataset_rejects_bad_samples():
    sample = TRAIN[0]
    with load() as model, loranas.Dataset(model) as ds:
        cases = {
            "labels is required": {k: v for k, v in sample.items() if k != "labels"},
            "no batch axis: pass input_ids[0]": {**sample, "input_ids": sample["input_ids"][None]},
            "unknown input 'label'": {**sample, "label": sample["labels"]},
            "cross_attention_mask has shape": {**sample, "cross_attention_mask": np.ones((3, 1, 4), np.int64)},
            "pixel_values must be 5-D": {**sample, "pixel_values": sample["pixel_values"][0]},
            "aspect_ratio_mask is required": {k: v for k, v in sample.items() if k != "aspect_ratio_mask"},
            "input_ids contains 500": {**sample, "input_ids": np.full_like(sample["input_ids"], 500)},
            "labels contains 96": {**sample, "labels": np.full_like(sample["labels"], 96)},
            "a sample is a dict": [1, 2, 3],
        }
        for message, bad in cases.items():
            with pytest.raises(loranas.InvalidArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
                ds.add(bad)
        with pytest.raises(loranas.InvalidArgumentError, match=r"sample 1\b"):
            ds.extend([sample, {**sample, "labels": None}])
        assert len(ds) == 1  # the valid sample before the bad one stayed
        with pytest.raises(loranas.InvalidArgumentError, match="single dict"):
            ds.extend(sample)


def test_datasets_belong_to_their_model_config():
    with load() as model, loranas.load_model(TILE1) as other:
        foreign = loranas.Dataset(other, [{"input_ids": np.array([1, 2, 3]), "labels": np.array([1, 2, 3])}])
        with pytest.raises(loranas.InvalidArgumentError, match="another model"):
            loranas.search(model, foreign, foreign, space=SPACE, max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="iterable of sample dicts"):
            loranas.search(model, 42, VAL, space=SPACE, max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match=r"val \(sample 0\)"):
            loranas.search(model, TRAIN, [{"input_ids": np.array([1])}], space=SPACE, max_steps=1)
        foreign.close()
        with pytest.raises(ValueError, match="dataset is closed"):
            loranas.search(model, foreign, VAL, space=SPACE, max_steps=1)


# ---- search ------------------------------------------------------------------------------------

def test_search_result(searched):
    model, result = searched
    assert len(result.ranks) == 65
    assert set(result.ranks.values()) <= set(SPACE)
    assert result.space == list(SPACE)
    names = list(result.ranks)
    assert names[0] == "vision_model.transformer.layers.0.self_attn.q_proj"
    assert names[-1] == "language_model.model.layers.4.mlp.down_proj"
    first_text = next(i for i, n in enumerate(names) if not n.startswith("vision_model."))
    assert all(n.startswith("vision_model.") for n in names[:first_text])
    assert not any(n.startswith("vision_model.") for n in names[first_text:])  # model order: vision, then text

    assert result.steps == 3
    assert len(result.train_losses) == len(result.validation_losses) == 3
    assert all(math.isfinite(x) for x in result.train_losses + result.validation_losses)
    assert result.epoch_times == []  # 12 samples / batch 3 = 4 steps per epoch: stopped inside epoch 0
    assert set(result.alpha_history) == set(result.final_weights) == set(result.ranks)
    for name, history in result.alpha_history.items():
        assert history.shape == (3, len(SPACE)) and history.dtype == np.float32
        weights = result.final_weights[name]
        softmax = np.exp(history[-1] - history[-1].max())
        np.testing.assert_allclose(weights, softmax / softmax.sum(), rtol=1e-5, atol=1e-6)
        assert result.ranks[name] == SPACE[int(np.argmax(weights))]  # no budget: argmax alpha

    sizes = module_sizes(model, result.ranks)
    assert result.lora_parameters == sum(r * sizes[m] for m, r in result.ranks.items())
    assert result.uniform_max_parameters == max(SPACE) * sum(sizes.values())
    assert result.model_parameters == model.config["total_parameters"]
    assert result.lora_share == pytest.approx(result.lora_parameters / result.model_parameters, rel=1e-12)
    assert result.budget_parameters is None


def test_search_epoch_times_count_finished_epochs():
    with load() as model:
        result = loranas.search(model, TRAIN, VAL, space=SPACE, epochs=3, max_steps=6, batch_size=3)
    # 4 steps per epoch and max_steps 6: one epoch finished
    assert result.steps == 6 and len(result.epoch_times) == 1 and result.epoch_times[0] > 0
    assert all(h.shape == (6, len(SPACE)) for h in result.alpha_history.values())


def test_search_result_json_round_trip(searched, tmp_path):
    _, result = searched
    text = result.to_json()
    assert json.loads(text)["ranks"] == result.ranks
    again = loranas.SearchResult.from_json(text)
    assert again == result
    assert list(again.ranks) == list(result.ranks)  # order kept
    for name in result.ranks:
        np.testing.assert_array_equal(again.alpha_history[name], result.alpha_history[name])
        np.testing.assert_array_equal(again.final_weights[name], result.final_weights[name])
    assert again.train_losses == result.train_losses and again.epoch_times == result.epoch_times

    path = tmp_path / "search.json"
    result.save(path)
    assert loranas.SearchResult.load(path) == result
    assert [p.name for p in tmp_path.iterdir()] == ["search.json"]  # no temporary file left
    result.save(path)  # overwrites
    assert loranas.SearchResult.load(path) == result

    changed = loranas.SearchResult.from_json(text)
    changed.ranks[next(iter(changed.ranks))] = 64
    assert changed != result
    with pytest.raises(loranas.FormatError, match="alpha_history"):
        loranas.SearchResult.from_json(json.dumps({k: v for k, v in json.loads(text).items() if k != "alpha_history"}))
    with pytest.raises(loranas.FormatError, match="not valid JSON"):
        loranas.SearchResult.from_json("{")


def test_search_budget():
    with load() as model:
        fraction = loranas.search(model, TRAIN, VAL, space=SPACE, budget=0.5, max_steps=2, batch_size=3)
        assert fraction.budget_parameters == round(0.5 * fraction.uniform_max_parameters)
        assert abs(fraction.lora_parameters - fraction.budget_parameters) <= 0.05 * fraction.budget_parameters
        count = loranas.search(model, TRAIN, VAL, space=SPACE, budget=fraction.uniform_max_parameters // 3,
                               max_steps=2, batch_size=3)
        assert count.budget_parameters == fraction.uniform_max_parameters // 3
        assert abs(count.lora_parameters - count.budget_parameters) <= 0.05 * count.budget_parameters
        for bad in (1.5, 0.0, True, "half"):
            with pytest.raises(loranas.InvalidArgumentError, match="budget"):
                loranas.search(model, TRAIN, VAL, space=SPACE, budget=bad, max_steps=1)


def test_search_targets_and_side():
    with load() as model:
        listed = loranas.search(model, TRAIN, VAL, targets=["q_proj", "v_proj"], space=SPACE, max_steps=1, batch_size=3)
        assert len(listed.ranks) == 20  # q and v in 10 attention blocks
        assert {n.split(".")[-1] for n in listed.ranks} == {"q_proj", "v_proj"}
        text = loranas.search(model, TRAIN, VAL, targets="mlp", side="text", space=SPACE, max_steps=1, batch_size=3)
        assert len(text.ranks) == 15 and all(n.startswith("language_model.") for n in text.ranks)
        with pytest.raises(loranas.InvalidArgumentError, match="targets"):
            loranas.search(model, TRAIN, VAL, targets=["q_proj", 5], space=SPACE, max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match='unknown target module type "nope"'):
            loranas.search(model, TRAIN, VAL, targets="nope", space=SPACE, max_steps=1)


def test_unknown_options_raise_the_engine_message():
    with load() as model:
        with pytest.raises(loranas.InvalidArgumentError, match=r'unknown option "max_step".*max_steps'):
            loranas.search(model, TRAIN, VAL, space=SPACE, max_step=1)
        with pytest.raises(loranas.InvalidArgumentError, match=r'unknown option "alpha_lr"'):
            loranas.finetune(model, TRAIN, VAL, ranks=4, alpha_lr=1e-3, max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="search space"):
            loranas.search(model, TRAIN, VAL, space=(8, 4), max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="space must hold ints"):
            loranas.search(model, TRAIN, VAL, space=(2, 4.5), max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="options cannot be sent"):
            loranas.search(model, TRAIN, VAL, space=SPACE, lr=float("nan"), max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="init must be warm or fresh"):
            loranas.finetune(model, TRAIN, VAL, ranks=4, init="hot", max_steps=1)


# ---- fine-tuning -------------------------------------------------------------------------------

def test_finetune_warm_from_search(searched, tmp_path):
    model, search_result = searched
    base_eval = None
    with load() as base:
        base_eval = base.evaluate(VAL)
    result = loranas.finetune(model, TRAIN, VAL, ranks=search_result, init="warm", max_steps=2, batch_size=3)
    assert result.ranks == search_result.ranks
    assert list(result.ranks) == list(search_result.ranks)
    assert result.lora_parameters == search_result.lora_parameters
    assert result.steps == 2 and len(result.train_losses) == 2
    assert result.evaluations == [] and result.eval_perplexity == []  # stopped inside the first epoch
    # warm: the start is the searched supernet's kept slices, not the base model
    assert abs(result.initial_evaluation["loss"] - base_eval["loss"]) > 1e-6
    assert result.initial_evaluation["tokens"] == base_eval["tokens"]

    # the fine-tuned adapters export to PEFT and reload into a fresh model with the same logits
    result.save_peft(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["rank_pattern"]  # mixed ranks
    batch = {k: np.stack([s[k] for s in VAL[:1]]) for k in VAL[0]}
    expected = model.forward(**batch).logits
    with loranas.load_model(TILES4, adapter=tmp_path / "adapter") as fresh:
        np.testing.assert_array_equal(fresh.forward(**batch).logits, expected)
    assert result.to_json() == loranas.FinetuneResult.from_json(result.to_json()).to_json()


def test_finetune_fresh_uniform_rank(tmp_path):
    with load() as model:
        base_eval = model.evaluate(VAL)
        result = loranas.finetune(model, TRAIN, VAL, ranks=4, init="fresh", max_steps=4, batch_size=3, lr=1e-2)
        assert set(result.ranks.values()) == {4} and len(result.ranks) == 65
        sizes = module_sizes(model, result.ranks)
        assert result.lora_parameters == 4 * sum(sizes.values())
        assert result.lora_share == pytest.approx(result.lora_parameters / result.model_parameters)
        # fresh: B = 0, so the start is the base model exactly
        assert result.initial_evaluation == pytest.approx(base_eval, rel=1e-6)
        # 4 steps = one epoch: one evaluation, on the tuned model
        assert result.steps == 4 and len(result.epoch_times) == 1
        assert len(result.evaluations) == 1 and result.eval_perplexity == [result.evaluations[0]["perplexity"]]
        after = model.evaluate(VAL)
        assert after == pytest.approx(result.evaluations[0], rel=1e-6)
        assert after["loss"] != pytest.approx(base_eval["loss"], abs=1e-6)
        result.save_peft(tmp_path / "a")
        config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
        assert config["r"] == 4 and not config.get("rank_pattern")

        path = tmp_path / "finetune.json"
        result.save(path)
        loaded = loranas.FinetuneResult.load(path)
        assert loaded == result
        with pytest.raises(RuntimeError, match="not tied to a model"):
            loaded.save_peft(tmp_path / "b")
        model.clear_adapters()
        with pytest.raises(RuntimeError, match="adapters changed"):
            result.save_peft(tmp_path / "c")


def test_finetune_rank_dict_and_random():
    with load() as model:
        names = [n for n in loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=1, batch_size=3).ranks]
        chosen = {names[0]: 2, names[20]: 8, names[-1]: np.int64(4)}
        result = loranas.finetune(model, TRAIN, VAL, ranks=chosen, max_steps=1, batch_size=3)
        assert result.ranks == {names[0]: 2, names[20]: 8, names[-1]: 4}
        assert list(result.ranks) == [names[0], names[20], names[-1]]  # model order
        with pytest.raises(loranas.NotFoundError, match="no.such"):
            loranas.finetune(model, TRAIN, VAL, ranks={"no.such": 4}, max_steps=1)
        with pytest.raises(loranas.InvalidArgumentError, match="ranks must be"):
            loranas.finetune(model, TRAIN, VAL, ranks="8", max_steps=1)

        sizes = module_sizes(model, names)
        target = 4 * sum(sizes.values())
        rand = loranas.finetune(model, TRAIN, VAL, ranks={"random": target, "space": [2, 4, 8]}, max_steps=1)
        assert set(rand.ranks.values()) <= {2, 4, 8} and len(set(rand.ranks.values())) > 1
        assert abs(rand.lora_parameters - target) <= 0.02 * target


def test_warm_finetune_needs_a_search():
    with load() as model:
        with pytest.raises(loranas.InvalidArgumentError, match="warm start needs a search"):
            loranas.finetune(model, TRAIN, VAL, ranks=4, init="warm", max_steps=1)


# ---- progress ----------------------------------------------------------------------------------

def test_progress_callable_sees_every_event():
    events = []
    with load() as model:
        result = loranas.finetune(model, TRAIN, VAL, ranks=2, epochs=2, batch_size=4, progress=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6] == list(range(1, result.steps + 1))
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(e["steps_per_epoch"] == 3 for e in events)
    assert [e["train_loss"] for e in steps] == pytest.approx(result.train_losses, rel=1e-6)
    assert [e["validation_loss"] for e in epochs] == pytest.approx([ev["loss"] for ev in result.evaluations], rel=1e-6)


@pytest.mark.parametrize("kind", ["search", "finetune"])
def test_progress_returning_true_stops(kind):
    events = []

    def stop_at_two(event):
        events.append(event)
        return event["step"] >= 2

    with load() as model:
        if kind == "search":
            result = loranas.search(model, TRAIN, VAL, space=SPACE, epochs=3, batch_size=3, progress=stop_at_two)
        else:
            result = loranas.finetune(model, TRAIN, VAL, ranks=2, epochs=3, batch_size=3, progress=stop_at_two)
    assert result.steps == 2 and len(result.train_losses) == 2
    assert len(events) == 2


def test_stopped_defaults_and_round_trips(searched):
    _, result = searched
    obj = json.loads(result.to_json())
    assert obj["stopped"] is result.stopped is False  # max_steps is not a stop
    absent = {k: v for k, v in obj.items() if k != "stopped"}  # JSON of an engine without the key
    assert loranas.SearchResult.from_json(json.dumps(absent)).stopped is False
    stopped = loranas.SearchResult.from_json(json.dumps({**obj, "stopped": True}))
    assert stopped.stopped is True and stopped != result
    assert loranas.SearchResult.from_json(stopped.to_json()).stopped is True
    with pytest.raises(loranas.FormatError, match="stopped"):
        loranas.SearchResult.from_json(json.dumps({**obj, "stopped": "yes"}))


@pytest.mark.parametrize("kind", ["search", "finetune"])
def test_stopped_is_reported(kind, monkeypatch):
    raw = []
    take = loranas.training.take_result
    monkeypatch.setattr(loranas.training, "take_result",
                        lambda out, context: raw.append(take(out, context)) or raw[-1])  # keeps the raw JSON
    with load() as model:
        run = loranas.search if kind == "search" else loranas.finetune
        args = {"space": SPACE} if kind == "search" else {"ranks": 2}
        stopped = run(model, TRAIN, VAL, batch_size=3, progress=lambda e: e["step"] >= 2, **args)
        full = run(model, TRAIN, VAL, batch_size=3, max_steps=2, **args)
    assert stopped.steps == full.steps == 2
    if "stopped" not in raw[0]:
        assert stopped.stopped is False and full.stopped is False  # the default
        pytest.skip("this engine does not report 'stopped' in its result JSON yet")
    assert stopped.stopped is True and full.stopped is False  # max_steps is not a stop
    assert json.loads(stopped.to_json())["stopped"] is True


def test_progress_exceptions_are_reraised_after_the_call():
    calls = []

    def boom(event):
        calls.append(event)
        raise ZeroDivisionError("boom in callback")

    with load() as model:
        with pytest.raises(ZeroDivisionError, match="boom in callback"):
            loranas.search(model, TRAIN, VAL, space=SPACE, epochs=2, batch_size=3, progress=boom)
        assert len(calls) == 1  # the run stopped at the first event

        def interrupt(event):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            loranas.finetune(model, TRAIN, VAL, ranks=2, batch_size=3, progress=interrupt)

        def reenter(event):
            model.forward(**{k: v[None] for k, v in VAL[0].items()})

        with pytest.raises(RuntimeError, match="progress callback"):
            loranas.finetune(model, TRAIN, VAL, ranks=2, batch_size=3, progress=reenter)

        def close_model(event):
            model.close()

        with pytest.raises(RuntimeError, match="cannot close"):
            loranas.finetune(model, TRAIN, VAL, ranks=2, batch_size=3, progress=close_model)
        assert not model.closed

        sizes = []
        with loranas.Dataset(model, TRAIN) as train:
            loranas.finetune(model, train, VAL, ranks=2, batch_size=3, max_steps=1,
                             progress=lambda e: sizes.append(len(train)))  # reading a dataset is allowed
            assert sizes == [12]

            def grow(event):
                train.add(TRAIN[0])

            with pytest.raises(RuntimeError, match="in use"):
                loranas.finetune(model, train, VAL, ranks=2, batch_size=3, progress=grow)
            assert len(train) == 12
        # the model still works after all of that
        assert model.forward(**{k: v[None] for k, v in VAL[0].items()}).loss is not None
        with pytest.raises(TypeError, match="progress must be"):
            loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=1, progress="yes")


def test_sigint_handler_is_chained_and_restored():
    before = signal.getsignal(signal.SIGINT)

    def ctrl_c(event):  # Ctrl-C arriving during the run
        os.kill(os.getpid(), signal.SIGINT)

    with load() as model:
        with pytest.raises(KeyboardInterrupt):
            loranas.search(model, TRAIN, VAL, space=SPACE, epochs=2, batch_size=3, progress=ctrl_c)
        assert signal.getsignal(signal.SIGINT) is before

        # A SIGINT handler of the user's is called, and when it does not raise the run goes on.
        calls = []
        signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
        try:
            result = loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=3, batch_size=3, progress=ctrl_c)
            assert result.steps == 3 and calls == [signal.SIGINT] * 3
            assert signal.getsignal(signal.SIGINT) is not before
        finally:
            signal.signal(signal.SIGINT, before)

        # Off the main thread no handler can be installed: the run works as usual.
        results = []
        run_threads(lambda i: results.append(loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=1,
                                                            batch_size=3)), 1)
        assert results[0].steps == 1 and signal.getsignal(signal.SIGINT) is before


def test_progress_true_reports(capsys):
    with load() as model:
        loranas.search(model, TRAIN, VAL, space=SPACE, batch_size=6, progress=True)
    err = capsys.readouterr().err
    try:
        import tqdm  # noqa: F401
    except ImportError:
        assert "search: epoch 1/1 done at step 2" in err
    else:
        assert "search" in err and "2/2" in err


# ---- checkpoint and resume ---------------------------------------------------------------------

def _finetune_run(checkpoint_dir, progress=None):
    model = load()
    result = loranas.finetune(model, TRAIN, VAL, ranks=4, epochs=2, batch_size=3, lr=1e-2, seed=7, max_steps=6,
                              dropout=0.1, checkpoint_dir=checkpoint_dir, progress=progress)
    return model, result


def test_finetune_resume_equals_an_uninterrupted_run(tmp_path):
    model, straight = _finetune_run(None)
    straight.save_peft(tmp_path / "straight")
    model.close()

    ckpt = tmp_path / "ckpt"
    model, first = _finetune_run(ckpt, progress=lambda e: e["kind"] == "step" and e["step"] == 3)
    assert first.steps == 3
    assert (ckpt / "state.safetensors").is_file()
    model.close()

    model, resumed = _finetune_run(ckpt)  # a new model, resumed from the checkpoint
    resumed.save_peft(tmp_path / "resumed")
    model.close()

    assert resumed.steps == straight.steps == 6
    assert resumed.train_losses == straight.train_losses  # bit-exact replay
    assert resumed.train_losses[:3] == first.train_losses
    assert resumed.evaluations == straight.evaluations
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name

    with load() as model:  # other options with the same directory are refused
        with pytest.raises(loranas.InvalidArgumentError, match="different run"):
            loranas.finetune(model, TRAIN, VAL, ranks=8, epochs=2, batch_size=3, checkpoint_dir=ckpt)


def test_search_resume_equals_an_uninterrupted_run(tmp_path):
    def run(checkpoint_dir, progress=None):
        with load() as model:
            return loranas.search(model, TRAIN, VAL, space=SPACE, epochs=2, batch_size=3, lr=1e-2, seed=3,
                                  checkpoint_dir=checkpoint_dir, progress=progress)

    straight = run(None)
    first = run(tmp_path, progress=lambda e: e["step"] == 5)
    assert first.steps == 5
    resumed = run(os.fspath(tmp_path))
    assert resumed.steps == straight.steps == 8
    assert resumed.ranks == straight.ranks
    assert resumed.train_losses == straight.train_losses
    assert resumed.validation_losses == straight.validation_losses
    for name in straight.ranks:
        np.testing.assert_array_equal(resumed.alpha_history[name], straight.alpha_history[name])
        np.testing.assert_array_equal(resumed.final_weights[name], straight.final_weights[name])


def test_unreachable_budget_returns_the_closest_and_says_so():
    """Issue 7, defect 1: q_proj on the text side with space (4, 64) and half the uniform-64
    budget has no assignment within 5 %; the search used to spin for ever in its repair loop."""
    model = loranas.load_model(TILES4)
    s = make_samples(4, seed=1)
    result = loranas.search(model, s, s[:3], targets="q_proj", side="text", space=(4, 64), budget=0.5,
                            batch_size=1, max_steps=2)
    assert result.budget_met is False
    assert abs(result.lora_parameters - result.budget_parameters) > 0.05 * result.budget_parameters
    assert set(result.ranks.values()) <= {4, 64}
    assert loranas.SearchResult.from_json(result.to_json()).budget_met is False
