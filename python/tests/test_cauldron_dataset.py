"""Cauldron records into datasets and packs: the samples equal transformers' MllamaProcessor on the rendered chat,
JSONL files, record lists and packs give the same samples, Python and the CLI write byte-identical packs, a
search on a pack equals the search on the in-memory dataset, and bad input names its record."""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import loranas  # noqa: E402
import loranas.text  # noqa: E402
from loranas.errors import LoranasError  # noqa: E402
from test_cli import cli  # noqa: E402
from test_image_processor import CLIP_MEAN, CLIP_STD, jpeg_bytes, pillow_png  # noqa: E402
from test_processor import DATE, hf_processor, write_model_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"


@pytest.fixture(scope="module")
def model_dir(llama3_tokenizer_dir, tmp_path_factory) -> Path:
    """A random tiny Mllama (tiles4_gqa's shapes) with the Llama-3 vocabulary, saved by transformers, and its
    processor files: 4 tiles of 12 pixels."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    out = write_model_dir(tmp_path_factory.mktemp("tiny"), llama3_tokenizer_dir, 12, 4, CLIP_MEAN, CLIP_STD)
    config = json.loads((TILES4 / "config.json").read_text())
    config["text_config"].update(vocab_size=128256, pad_token_id=128004, bos_token_id=128000, eos_token_id=128009)
    config["image_token_index"] = 128256
    torch.manual_seed(0)
    MllamaForConditionalGeneration(MllamaConfig(**config)).save_pretrained(out)
    return out


def records(tmp: Path, n: int, seed: int = 0) -> list[dict]:
    """Records with 0, 1 or 2 PNG/JPEG images (saved in `tmp`, named by relative path) and 1-2 turns."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        images = []
        for j in range(i % 3):
            w, h = int(rng.integers(1, 90)), int(rng.integers(1, 60))
            name = f"img{i}_{j}." + ("png" if (i + j) % 2 else "jpg")
            data = pillow_png(["RGB", "L", "P"][i % 3], size=(w, h), seed=i) if name.endswith("png") \
                else jpeg_bytes("RGB", (w, h), i, quality=90)
            (tmp / name).write_bytes(data)
            images.append(name)
        turns = [{"user": f"Question {i}.{t}: what is shown?", "assistant": f"Answer {i * 7 + t} 🙂"}
                 for t in range(1 + i % 2)]
        out.append({"images": images, "texts": turns, "source": "test"})
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def messages(record: dict) -> list[dict]:
    out = []
    for t, turn in enumerate(record["texts"]):
        images = [{"type": "image"}] * (len(record["images"]) if t == 0 else 0)
        out.append({"role": "user", "content": images + [{"type": "text", "text": turn["user"]}]})
        out.append({"role": "assistant", "content": [{"type": "text", "text": turn["assistant"]}]})
    return out


def test_samples_equal_transformers(model_dir, tmp_path):
    """Each sample of a JSONL dataset is transformers' processor output for the rendered chat and the images
    loaded from their paths; labels are the label rule's (test_text_path checks it against transformers)."""
    from transformers.image_utils import load_image

    recs = records(tmp_path, 12)
    ds = loranas.Dataset.from_cauldron(write_jsonl(tmp_path / "data.jsonl", recs), model=model_dir)
    hf = hf_processor(model_dir)
    tok = loranas.Tokenizer.from_file(model_dir / "tokenizer.json")
    assert len(ds) == 12 and ds.skipped == 0
    for i, record in enumerate(recs):
        text = hf.apply_chat_template(messages(record), tokenize=False, date_string=DATE)
        images = [load_image(str(tmp_path / name)) for name in record["images"]]
        ref = hf(text=[text], images=[images] if images else None, return_tensors="np", padding=True)
        got = ds[i]
        np.testing.assert_array_equal(got["input_ids"], ref["input_ids"][0])
        tiles = [int(m.sum()) for m in ref["aspect_ratio_mask"][0]] if images else []
        labels = loranas.text.encode_record(tok, record, num_tiles=tiles, date_string=DATE)["labels"]
        np.testing.assert_array_equal(got["labels"], labels)
        if images:
            for key in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"):
                np.testing.assert_array_equal(got[key], ref[key][0], err_msg=f"record {i} {key}")
        else:
            assert "pixel_values" not in got


def test_records_paths_and_packs_agree(model_dir, tmp_path):
    """A list of records (PIL images opened from the files, bytes), the JSONL file and a pack give the same
    samples; Python and the CLI write byte-identical packs."""
    recs = records(tmp_path, 9, seed=1)
    path = write_jsonl(tmp_path / "data.jsonl", recs)
    from_file = loranas.Dataset.from_cauldron(path, model=model_dir, max_length=64)
    as_objects = copy.deepcopy(recs)
    for k, r in enumerate(as_objects):
        r["images"] = [Image.open(tmp_path / n).convert("RGB") if k % 2 else (tmp_path / n).read_bytes()
                       for n in r["images"]]
    from_list = loranas.Dataset.from_cauldron(as_objects, processor=loranas.Processor(model_dir), max_length=64)
    from_file.save(tmp_path / "py.pack")
    run = subprocess.run([str(cli()), "pack", str(model_dir), str(path), "-o", str(tmp_path / "cli.pack"),
                          "--max-length", "64"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "py.pack").read_bytes() == (tmp_path / "cli.pack").read_bytes()
    packed = loranas.Dataset.load(tmp_path / "cli.pack")
    assert len(packed) == len(from_file) == len(from_list)
    assert packed.skipped == from_file.skipped == from_list.skipped
    for i in range(len(packed)):
        a, b, c = from_file[i], from_list[i], packed[i]
        assert a.keys() == b.keys() == c.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], c[key], err_msg=f"pack sample {i} {key}")
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"record list sample {i} {key}")
    shown = subprocess.run([str(cli()), "inspect", str(tmp_path / "cli.pack"), "--json"], capture_output=True,
                           text=True, timeout=60)
    summary = json.loads(shown.stdout)
    assert summary["samples"] == len(packed) and summary["max_length"] == 64
    assert summary["tokens"] == sum(len(packed[i]["input_ids"]) for i in range(len(packed)))


def test_search_on_a_pack_equals_in_memory(model_dir, tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", records(tmp_path, 16, seed=2))
    memory = loranas.Dataset.from_cauldron(path, model=model_dir)
    memory.save(tmp_path / "data.pack")
    packed = loranas.Dataset.load(tmp_path / "data.pack")
    results = []
    for ds in (memory, packed):
        train, val = ds.split(0.25, seed=3)
        with loranas.Model(model_dir) as model:
            r = loranas.search(model, train, val, targets="qk", space=(2, 4), epochs=2, batch_size=4, lr=1e-2,
                               alpha_lr=5e-2, seed=5, group_by_length=True)
        results.append(r)
    assert results[0].ranks == results[1].ranks
    assert results[0].train_losses == results[1].train_losses
    assert results[0].validation_losses == results[1].validation_losses
    for m, w in results[0].final_weights.items():
        np.testing.assert_array_equal(w, results[1].final_weights[m])


def test_truncation_counts_skipped_records(model_dir, tmp_path):
    recs = [{"images": [], "texts": [{"user": "x " * 200, "assistant": "y"}]},
            {"images": [], "texts": [{"user": "short", "assistant": "fine"}]}]
    ds = loranas.Dataset.from_cauldron(recs, model=model_dir, max_length=40)
    assert (len(ds), ds.skipped) == (1, 1)
    with pytest.raises(LoranasError, match="empty dataset"):
        loranas.Dataset.from_cauldron(recs[:1], model=model_dir, max_length=40)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width × height (no pixel data): the pixel limit must refuse it first."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("line, message", [
    ('{"images": ["missing.png"], "texts": [{"user": "a", "assistant": "b"}]}', "data.jsonl:2: images[0]: no file"),
    ('{"images": ["corrupt.png"], "texts": [{"user": "a", "assistant": "b"}]}', "data.jsonl:2: images[0]"),
    ('{"images": ["huge.png"], "texts": [{"user": "a", "assistant": "b"}]}', "data.jsonl:2: images[0]"),
    ('{"images": ["ok.png"], "texts": [{"user": "<|image|>a", "assistant": "b"}]}', "data.jsonl:2: "),
    ('{"images": [], "texts": [{"user": "a"}]}', "data.jsonl:2: texts[0] has no assistant turn"),
    ('{"images": [], "texts": []', "data.jsonl:2: "),
])
def test_bad_records_name_file_and_line(model_dir, tmp_path, line, message):
    (tmp_path / "ok.png").write_bytes(pillow_png("RGB", size=(5, 5), seed=1))
    (tmp_path / "corrupt.png").write_bytes(pillow_png("RGB", size=(50, 50), seed=1)[:-40])
    (tmp_path / "huge.png").write_bytes(png_header_only(30_000, 30_000))
    good = '{"images": ["ok.png"], "texts": [{"user": "a", "assistant": "b"}]}'
    path = tmp_path / "data.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(LoranasError) as info:
        loranas.Dataset.from_cauldron(path, model=model_dir)
    assert message in str(info.value)
    out = tmp_path / "x.pack"
    run = subprocess.run([str(cli()), "pack", str(model_dir), str(path), "-o", str(out)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_record_errors_name_the_record(model_dir):
    bad = [{"images": [], "texts": [{"user": "a", "assistant": "b"}]}, {"images": [b"not an image"], "texts": [
        {"user": "a", "assistant": "b"}]}]
    with pytest.raises(LoranasError, match=r"record 1"):
        loranas.Dataset.from_cauldron(bad, model=model_dir)
    with pytest.raises(LoranasError, match="model"):
        loranas.Dataset.from_cauldron(bad[:1])


def test_tokenizer_without_image_token_is_refused(model_dir, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = json.loads((broken / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<|image|>"]
    (broken / "tokenizer.json").write_text(json.dumps(data))
    path = write_jsonl(tmp_path / "d.jsonl", [{"images": [], "texts": [{"user": "a", "assistant": "b"}]}])
    with pytest.raises(LoranasError, match=r"<\|image\|>"):
        loranas.Dataset.from_cauldron(path, model=broken)


def test_base64_images_and_a_pack_of_another_model(model_dir, tmp_path):
    png = pillow_png("RGBA", size=(30, 20), seed=3)
    (tmp_path / "a.png").write_bytes(png)
    recs = [{"images": ["a.png"], "texts": [{"user": "a", "assistant": "b"}]},
            {"images": ["data:image/png;base64," + base64.b64encode(png).decode()],
             "texts": [{"user": "a", "assistant": "b"}]}]
    ds = loranas.Dataset.from_cauldron(write_jsonl(tmp_path / "d.jsonl", recs), model=model_dir)
    np.testing.assert_array_equal(ds[0]["pixel_values"], ds[1]["pixel_values"])
    ds.save(tmp_path / "d.pack")
    with loranas.Model(TILES4) as other, pytest.raises(LoranasError, match="another model"):
        other.evaluate(loranas.Dataset.load(tmp_path / "d.pack"))


def test_hf_datasets_source(model_dir, tmp_path):
    """An HF datasets.Dataset with an images column of Image features gives the samples of the same records
    as a list with the PIL images opened from the files (both are transformers' PIL route)."""
    datasets = pytest.importorskip("datasets")
    recs = records(tmp_path, 6, seed=4)
    columns = {"images": [[str(tmp_path / n) for n in r["images"]] for r in recs],
               "texts": [r["texts"] for r in recs], "id": list(range(len(recs)))}
    hf = datasets.Dataset.from_dict(columns).cast_column("images", datasets.List(datasets.Image()))
    from_hf = loranas.Dataset.from_cauldron(hf, model=model_dir)
    opened = [{"images": [Image.open(tmp_path / n) for n in r["images"]], "texts": r["texts"]} for r in recs]
    from_list = loranas.Dataset.from_cauldron(opened, model=model_dir)
    assert len(from_hf) == len(from_list) == 6
    for i in range(6):
        a, b = from_hf[i], from_list[i]
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"sample {i} {key}")
