"""The user API's surface: exports, help strings, and the progress bridge on its own."""

from __future__ import annotations

import ctypes
import inspect
import signal

import pytest

import loranas
from loranas import _bindings as B
from loranas.progress import ProgressBridge

NEW_API = ["load_model", "Model", "ModelOutput", "Dataset", "search", "SearchResult", "finetune", "FinetuneResult"]


def test_everything_is_exported():
    for name in NEW_API:
        assert name in loranas.__all__, name
        assert getattr(loranas, name) is not None
    for name in loranas.__all__:
        assert hasattr(loranas, name), name


def _public_members(cls):
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in ("__init__",):
            continue
        if callable(member) or isinstance(member, property):
            yield name, member


@pytest.mark.parametrize("name", [n for n in loranas.__all__ if n != "__version__"])
def test_every_export_has_a_help_string(name):
    obj = getattr(loranas, name)
    assert inspect.getdoc(obj), f"loranas.{name} has no docstring"
    if inspect.isclass(obj) and name in NEW_API:
        for member_name, member in _public_members(obj):
            if member_name == "__init__":
                continue
            assert inspect.getdoc(member), f"loranas.{name}.{member_name} has no docstring"


@pytest.mark.parametrize("fn", [loranas.search, loranas.finetune, loranas.load_model, loranas.Model.forward,
                                loranas.Model.evaluate])
def test_numpy_style_sections_document_every_parameter(fn):
    doc = inspect.getdoc(fn)
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc
    for param in inspect.signature(fn).parameters:
        if param in ("self",):
            continue
        name = "**options" if param == "options" else param
        assert name in doc, f"{fn.__qualname__}: {name} is not documented"


def test_forward_signature_uses_transformers_names():
    params = list(inspect.signature(loranas.Model.forward).parameters)
    assert params == ["self", "input_ids", "attention_mask", "pixel_values", "aspect_ratio_ids", "aspect_ratio_mask",
                      "cross_attention_mask", "labels"]


def test_search_and_finetune_defaults():
    search = inspect.signature(loranas.search).parameters
    assert search["targets"].default == "all" and search["side"].default == "both"
    assert tuple(search["space"].default) == (4, 8, 16, 32, 64) and search["budget"].default is None
    assert (search["epochs"].default, search["batch_size"].default, search["lr"].default,
            search["alpha_lr"].default, search["seed"].default) == (1, 4, 1e-4, 3e-3, 0)
    finetune = inspect.signature(loranas.finetune).parameters
    assert finetune["init"].default == "fresh"
    assert (finetune["epochs"].default, finetune["batch_size"].default, finetune["lr"].default) == (1, 4, 1e-4)


# ---- the progress bridge, without the engine ---------------------------------------------------

def test_bridge_without_progress_still_calls_back():
    # A real callback even without progress: the engine comes back to Python after every step,
    # which is where a pending Ctrl-C can stop the run.
    for progress in (None, False):
        bridge = ProgressBridge(progress, what="search", epochs=1, max_steps=None)
        assert isinstance(bridge.c_callback, B.loranas_progress_fn) and bridge.c_callback
        assert bridge.c_callback(b'{"kind": "step", "step": 1}', None) == 0 and bridge.events == 0
        bridge.interrupt = KeyboardInterrupt()  # what the SIGINT handler records
        assert bridge.c_callback(b'{"kind": "step", "step": 2}', None) == 1
        with pytest.raises(KeyboardInterrupt):
            bridge.raise_pending()


def test_bridge_records_ctrl_c_during_a_c_call():
    # SIGINT raised inside a C function (as during the engine call): Python's handler runs in
    # call()'s frame once the C function returns; it records the interrupt there instead of
    # raising, and call() restores the previous handler.
    libc = ctypes.CDLL(None)
    libc.raise_signal = getattr(libc, "raise")
    libc.raise_signal.argtypes, libc.raise_signal.restype = [ctypes.c_int], ctypes.c_int
    before = signal.getsignal(signal.SIGINT)
    bridge = ProgressBridge(None, what="search", epochs=1, max_steps=None)
    assert bridge.call(libc.raise_signal, signal.SIGINT) == 0  # returned normally
    assert isinstance(bridge.interrupt, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGINT) is before
    assert bridge.c_callback(b'{"kind": "step", "step": 1}', None) == 1  # the next step boundary stops the run

    # Ctrl-C wins over an exception the callable raised before it
    bridge = ProgressBridge(lambda e: 1 / 0, what="search", epochs=1, max_steps=None)
    assert bridge.c_callback(b'{"kind": "step", "step": 1}', None) == 1
    assert bridge.call(libc.raise_signal, signal.SIGINT) == 0
    with pytest.raises(KeyboardInterrupt):
        bridge.raise_pending()
    bridge.raise_pending()  # both cleared: raised once only


def test_bridge_maps_truthiness_and_keeps_exceptions():
    seen = []
    answers = iter([None, 0, "", 1, "stop"])

    def fn(event):
        seen.append(event)
        return next(answers)

    bridge = ProgressBridge(fn, what="search", epochs=1, max_steps=None)
    cb = bridge.c_callback
    results = [cb(b'{"kind": "step", "step": %d}' % i, None) for i in range(5)]
    assert results == [0, 0, 0, 1, 1]
    assert [e["step"] for e in seen] == [0, 1, 2, 3, 4]

    def boom(event):
        raise LookupError("inside the callback")

    bridge = ProgressBridge(boom, what="search", epochs=1, max_steps=None)
    assert bridge.c_callback(b'{"kind": "step", "step": 1}', None) == 1  # stop, nothing raised into C
    assert bridge.c_callback(b'{"kind": "step", "step": 2}', None) == 1  # keeps stopping
    with pytest.raises(LookupError, match="inside the callback"):
        bridge.raise_pending()
    bridge.raise_pending()  # raised once only

    bridge = ProgressBridge(lambda e: False, what="search", epochs=1, max_steps=None)
    assert bridge.c_callback(b"{not json", None) == 1
    with pytest.raises(ValueError):
        bridge.raise_pending()
    with pytest.raises(TypeError, match="progress must be"):
        ProgressBridge(42, what="search", epochs=1, max_steps=None)


def test_bridge_true_prints_a_line_per_epoch_without_tqdm(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    bridge = ProgressBridge(True, what="finetune", epochs=2, max_steps=None)
    cb = bridge.c_callback
    assert cb(b'{"kind":"step","epoch":0,"step":1,"steps_per_epoch":1,"train_loss":2.5,"validation_loss":null}', None) == 0
    assert cb(b'{"kind":"epoch","epoch":0,"step":1,"steps_per_epoch":1,"train_loss":2.5,"validation_loss":2.25}', None) == 0
    bridge.close()
    err = capsys.readouterr().err
    assert err == "finetune: epoch 1/2 done at step 1: train loss 2.5000, validation loss 2.2500\n"
