"""The demo base and the main job (issue 10): transformers loads the shipped base and computes the engine's
logits and greedy answers; HF tokenizers reads its tokenizer.json as the engine does; the demo runner writes its
table, JSON, Markdown and figures, and fine-tuning beats the base; bad demo arguments are one error line."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import loranas
from loranas import demo, tasks

BASE = demo.base_path()
pytestmark = pytest.mark.skipif(not (BASE / "model.safetensors").is_file(), reason="the demo base is not built")


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    return tasks.make(out, n_train=8, n_val=4, n_eval=6, seed=11)


def safetensors_dtypes(path) -> set[str]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def test_base_is_small_bf16_and_complete():
    names = {p.name for p in BASE.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json", "chat_template.jinja"} <= names
    assert (BASE / "model.safetensors").stat().st_size <= 20 * 2**20
    assert safetensors_dtypes(BASE / "model.safetensors") == {"BF16"}
    with loranas.load_model(BASE) as m:
        assert 2_000_000 < m.config["total_parameters"] < 10_000_000


def test_tokenizer_equals_hf_tokenizers(task_dir):
    hf = pytest.importorskip("tokenizers").Tokenizer.from_file(str(BASE / "tokenizer.json"))
    texts = [t for split in task_dir.values() for line in split["train"].read_text().splitlines()
             for turn in json.loads(line)["texts"] for t in (turn["user"], turn["assistant"])]
    texts += ["Unseen wörds, 12345 digits and émoji 🙂 <|image|> too.", ""]
    ours = loranas.Tokenizer.from_file(BASE / "tokenizer.json")
    for text in texts:
        assert ours.encode(text) == hf.encode(text).ids, text


def hf_model_and_processor():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    model = transformers.MllamaForConditionalGeneration.from_pretrained(str(BASE), dtype=torch.float32).eval()
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(BASE))
    proc = transformers.MllamaProcessor(image_processor=MllamaImageProcessorPil.from_pretrained(str(BASE)),
                                        tokenizer=tok, chat_template=(BASE / "chat_template.jinja").read_text())
    return torch, model, proc


def test_transformers_loads_the_base_with_the_engines_logits_and_answers(task_dir):
    from PIL import Image

    torch, hf, hf_proc = hf_model_and_processor()
    record = json.loads(task_dir["charts"]["eval"].read_text().splitlines()[0])
    image = Image.open(task_dir["charts"]["eval"].parent / record["images"][0])
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": record["texts"][0]["user"]}]}]
    text = hf_proc.apply_chat_template(messages, add_generation_prompt=True)
    ref_inputs = hf_proc(text=[text], images=[[image]], return_tensors="pt")
    with torch.no_grad():
        ref_logits = hf(**ref_inputs).logits.numpy()
        ref_ids = hf.generate(**ref_inputs, max_new_tokens=12, do_sample=False).numpy()
    with loranas.load_model(BASE) as model, loranas.Processor.from_pretrained(BASE) as proc:
        inputs = proc(text=[text], images=[[image]])
        logits = model.forward(**inputs).logits
        ids = model.generate(**inputs, max_new_tokens=12)
    assert np.abs(logits - ref_logits).max() / np.abs(ref_logits).max() < 1e-5
    assert ids.tolist() == ref_ids.tolist()


def test_demo_run_writes_the_table_and_beats_the_base(tmp_path):
    settings = demo.DemoSettings(n_train=24, n_val=8, n_eval=8, search_epochs=1, finetune_epochs=2,
                                 adapter_sets=("qkvo+mlp",))
    lines: list[str] = []
    obj = demo.run(tmp_path, names=["spatial"], settings=settings, seed=3, log=lines.append)
    rows = obj["rows"]
    assert [(r["adapter_set"], r["adapter"]) for r in rows] == [
        ("-", "base"), ("qkvo+mlp", "searched"), ("qkvo+mlp", "uniform-64"), ("qkvo+mlp", "random")]
    base, searched, uniform, random = rows
    for r in (searched, uniform, random):
        assert r["eval_perplexity"] < base["eval_perplexity"]
    assert searched["lora_parameters"] <= 0.42 * uniform["lora_parameters"]
    assert abs(random["lora_parameters"] - searched["lora_parameters"]) <= 0.02 * searched["lora_parameters"]
    assert json.loads((tmp_path / "results.json").read_text()) == obj
    md = (tmp_path / "results.md").read_text()
    assert md.count("\n| spatial |") == 4
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["spatial-qkvo+mlp-alpha.png", "spatial-qkvo+mlp-losses.png", "spatial-qkvo+mlp-ranks.png"]
    assert all((tmp_path / "figures" / f).stat().st_size > 1000 for f in figures)
    assert any("eval ppl" in line for line in lines), "the table is printed"


def test_demo_command_refuses_unknown_tasks(tmp_path):
    r = subprocess.run([sys.executable, "-m", "loranas", "demo", str(tmp_path), "--tasks", "charts,nope"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: unknown")
