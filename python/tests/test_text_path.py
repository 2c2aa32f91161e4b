"""The engine's text path equals transformers 5.24 (mllama-processor.md §2-§3): chat rendering against
``apply_chat_template(tokenize=False)`` with the published Llama-3.2-Vision template, labels against HF's
``assistant_masks`` (the same template with ``{% generation %}`` around each answer and its ``<|eot_id|>``),
and input_ids / attention_mask / cross_attention_mask against ``MllamaProcessor``, on seeded Cauldron-like
records, with the real Llama-3 tokenizer (no BOS post-processor, as published) and a variant with one."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

import loranas
from loranas import text as T

# The published Llama-3.2-Vision chat template (a copy of ../shared's), the reference the renderer is checked against.
TEMPLATE = Path(os.environ.get("LORANAS_CHAT_TEMPLATE",
                               Path(__file__).parent / "fixtures" / "llama32-vision-chat-template.jinja"))
DATE = "26 Jul 2024"
N_RECORDS = 300

# The published template's rendering for the messages this suite uses (user/assistant roles, list content, an
# optional leading system message without images), with {% generation %} around each answer and its <|eot_id|>.
GENERATION_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{%- set ns = namespace(has_images=false) %}"
    "{%- for message in messages %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' %}{%- set ns.has_images = true %}{%- endif %}{%- endfor %}{%- endfor %}"
    "{%- if not ns.has_images %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['role'] == 'assistant' %}{% generation %}"
    "{%- for content in message['content'] %}{%- if content['type'] == 'text' %}{{- content['text'] }}"
    "{%- endif %}{%- endfor %}{{- '<|eot_id|>' }}{% endgeneration %}"
    "{%- else %}{%- for content in message['content'] %}{%- if content['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif content['type'] == 'text' %}{{- content['text'] }}{%- endif %}{%- endfor %}{{- '<|eot_id|>' }}"
    "{%- endif %}{%- endfor %}"
)

PIECES = [
    "What is in the image?", "Describe it.", "A cat.", " leading space", "  two spaces", "\nleading newline",
    "trailing newline\n", "line one\nline two", "\n\n", "", " ", "tabs\tand\rreturns", "Ünïcödé façade",
    "日本語のテキスト", "emoji 🙂🚀 and 👩‍👩‍👧", "numbers 1234567 3.14",
    "code: `x = f(y)`", "Ωμέγα", "ثلاثة",
    "mixed\u00a0nbsp", "  \n  ", "'s 're 'll", "<|eot_id|> inside text", "end.", "Yes", "No!", "1", "a" * 40,
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 3)))


def _records(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        turns = [{"user": _text(rng), "assistant": _text(rng)} for _ in range(rng.randint(1, 4))]
        out.append({"images": [f"img{j}.png" for j in range(rng.randint(0, 3))], "texts": turns, "source": "x"})
    return out


def _messages(record: dict) -> list[dict]:
    msgs = []
    for i, turn in enumerate(record["texts"]):
        images = [{"type": "image"}] * (len(record["images"]) if i == 0 else 0)
        msgs.append({"role": "user", "content": images + [{"type": "text", "text": turn["user"]}]})
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": turn["assistant"]}]})
    return msgs


@pytest.fixture(scope="session")
def llama3_dir(llama3_tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("llama3-text")
    (out / "tokenizer.json").write_bytes((llama3_tokenizer_dir / "tokenizer.json").read_bytes())
    # A variant whose post-processor prepends BOS (text Llama-3's): the processor then gives a double BOS.
    data = json.loads((out / "tokenizer.json").read_text())
    bos = {"id": "<|begin_of_text|>", "type_id": 0}
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": bos},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                  "tokens": ["<|begin_of_text|>"]}},
    }
    (out / "bos").mkdir()
    (out / "bos" / "tokenizer.json").write_text(json.dumps(data))
    return out


@pytest.fixture(scope="session")
def template() -> str:
    if not TEMPLATE.is_file():
        pytest.skip(f"{TEMPLATE} not found (set LORANAS_CHAT_TEMPLATE)")
    return TEMPLATE.read_text()


def _hf_tokenizer(path: Path, chat_template: str):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<|finetune_right_pad_id|>")
    tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="session", params=["published", "bos-template"])
def tokenizers_pair(request, llama3_dir, template):
    path = llama3_dir / "tokenizer.json" if request.param == "published" else llama3_dir / "bos" / "tokenizer.json"
    return request.param, _hf_tokenizer(path, template), loranas.Tokenizer(path)


def test_chat_rendering_equals_apply_chat_template(llama3_dir, template):
    hf = _hf_tokenizer(llama3_dir / "tokenizer.json", template)
    records = _records(0, N_RECORDS)
    mismatches = []
    for i, record in enumerate(records):
        for gen in (False, True):
            want = hf.apply_chat_template(_messages(record), tokenize=False, add_generation_prompt=gen,
                                          date_string=DATE)
            got = T.render_record(record, add_generation_prompt=gen, date_string=DATE)
            got_messages = T.render_messages(_messages(record), add_generation_prompt=gen, date_string=DATE)
            if got != want or got_messages != want:
                mismatches.append((i, gen))
    assert mismatches == [], f"{len(mismatches)} of {2 * len(records)} renderings differ: {mismatches[:5]}"


def test_messages_with_system_and_string_content(llama3_dir, template):
    hf = _hf_tokenizer(llama3_dir / "tokenizer.json", template)
    cases = [
        [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "\u3000x\u2028"}, {"role": "user", "content": [{"type": "text", "text": "a"}]},
         {"role": "assistant", "content": "b"}],
        [{"role": "user", "content": "plain string"}, {"role": "assistant", "content": " answer "}],
        [{"role": "system", "content": " "}, {"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                              "text": "?"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"},
                                      {"type": "video"}]}],
    ]
    for msgs in cases:
        for gen in (False, True):
            want = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, date_string=DATE)
            assert T.render_messages(msgs, add_generation_prompt=gen, date_string=DATE) == want, msgs


def test_system_message_with_images_is_an_error():
    msgs = [{"role": "system", "content": "x"}, {"role": "user", "content": [{"type": "image"}]}]
    with pytest.raises(loranas.InvalidArgumentError, match="incompatible with system messages"):
        T.render_messages(msgs, date_string=DATE)


def test_record_without_assistant_turn_is_an_error_naming_it():
    record = {"images": [], "texts": [{"user": "a", "assistant": "b"}, {"user": "c"}]}
    with pytest.raises(loranas.LoranasError, match=r"texts\[1\] has no assistant turn"):
        T.render_record(record, date_string=DATE)


def test_today_is_the_default_date(llama3_dir, template):
    hf = _hf_tokenizer(llama3_dir / "tokenizer.json", template)
    record = {"texts": [{"user": "u", "assistant": "a"}]}
    assert T.render_record(record) == hf.apply_chat_template(_messages({"images": [], **record}), tokenize=False)


def _reference_labels(hf, record, prefix: int) -> list[int]:
    enc = hf.apply_chat_template(_messages(record), tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                 chat_template=GENERATION_TEMPLATE, date_string=DATE)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    return [-100] * prefix + [i if m else -100 for i, m in zip(ids, mask)]


def test_labels_equal_hf_assistant_masks(tokenizers_pair):
    name, hf, tok = tokenizers_pair
    prefix = 1 if name == "bos-template" else 0
    records = _records(1, N_RECORDS)
    mismatches = 0
    labelled = 0
    for record in records:
        rendered = hf.apply_chat_template(_messages(record), tokenize=False, date_string=DATE)
        assert hf.apply_chat_template(_messages(record), tokenize=False, chat_template=GENERATION_TEMPLATE,
                                      date_string=DATE) == rendered
        want = _reference_labels(hf, record, prefix)
        tiles = [1 + (j % 4) for j in range(len(record["images"]))]
        got = T.encode_record(tok, record, tiles, max_image_tiles=4, date_string=DATE)
        # the ids are the processor's: the rendered string tokenized with the tokenizer's special tokens
        assert got["input_ids"].tolist() == hf(rendered)["input_ids"]
        if got["labels"].tolist() != want:
            mismatches += 1
        labelled += int((got["labels"] != -100).sum())
    assert mismatches == 0, f"{mismatches} of {len(records)} records have labels that differ"
    assert labelled > 0


def _processor(hf_tokenizer, template, tile: int, max_tiles: int):
    from transformers import MllamaImageProcessor, MllamaProcessor

    ip = MllamaImageProcessor(size={"height": tile, "width": tile}, max_image_tiles=max_tiles,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])
    return MllamaProcessor(image_processor=ip, tokenizer=hf_tokenizer, chat_template=template)


def _image(rng: random.Random):
    from PIL import Image

    w, h = rng.randint(1, 200), rng.randint(1, 200)
    return Image.fromarray(np.random.default_rng(rng.randint(0, 2**31)).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _prompt(rng: random.Random, n_images: int) -> str:
    parts = [_text(rng) for _ in range(n_images + 1)]
    out = parts[0]
    for j in range(n_images):
        out += "<|image|>" * 1 + parts[j + 1]
    if rng.random() < 0.2:
        out = "<|begin_of_text|>" + out if rng.random() < 0.5 else out + "<|begin_of_text|>"
    return out


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_prompts_equal_mllama_processor(tokenizers_pair, template, padding_side):
    name, hf, tok = tokenizers_pair
    hf.padding_side = padding_side
    rng = random.Random(2)
    batches = 0
    for tile, max_tiles in [(28, 4), (28, 2), (14, 6)]:
        proc = _processor(hf, template, tile, max_tiles)
        for _ in range(15):
            counts = [rng.choice([0, 1, 1, 2, 3]) for _ in range(rng.randint(1, 4))]
            if sum(counts) == 0:
                counts[0] = 1
            prompts = []
            for c in counts:
                if rng.random() < 0.4:
                    record = {"images": [None] * c, "texts": [{"user": _text(rng), "assistant": _text(rng)}]}
                    prompts.append(hf.apply_chat_template(_messages(record), tokenize=False, date_string=DATE))
                else:
                    prompts.append(_prompt(rng, c))
            images = [[_image(rng) for _ in range(c)] for c in counts]
            want = proc(text=prompts, images=images, padding=True, return_tensors="np")
            num_tiles = [[int(want["aspect_ratio_mask"][b, j].sum()) for j in range(c)] for b, c in enumerate(counts)]
            got = T.encode_prompts(tok, prompts, num_tiles, max_image_tiles=max_tiles, pad_token_id=hf.pad_token_id,
                                   padding_side=padding_side)
            for key in ("input_ids", "attention_mask", "cross_attention_mask"):
                assert got[key].shape == want[key].shape, (key, prompts)
                assert np.array_equal(got[key], want[key]), (key, prompts)
            batches += 1
    assert batches == 45


def test_record_cross_attention_mask_equals_processor(tokenizers_pair, template):
    name, hf, tok = tokenizers_pair
    proc = _processor(hf, template, 28, 4)
    rng = random.Random(3)
    for record in _records(4, 60):
        if not record["images"]:
            continue
        rendered = hf.apply_chat_template(_messages(record), tokenize=False, date_string=DATE)
        images = [[_image(rng) for _ in record["images"]]]
        want = proc(text=[rendered], images=images, return_tensors="np")
        tiles = [int(want["aspect_ratio_mask"][0, j].sum()) for j in range(len(record["images"]))]
        got = T.encode_record(tok, record, tiles, max_image_tiles=4, date_string=DATE)
        assert got["input_ids"].tolist() == want["input_ids"][0].tolist()
        assert np.array_equal(got["cross_attention_mask"], want["cross_attention_mask"][0])


def test_image_count_mismatch_is_an_error(llama3_dir):
    tok = loranas.Tokenizer(llama3_dir / "tokenizer.json")
    with pytest.raises(loranas.InvalidArgumentError, match="2 <|image|> tokens but 1 images".replace("|", r"\|")):
        T.encode_prompts(tok, ["<|image|><|image|>x"], [[1]])
    with pytest.raises(loranas.InvalidArgumentError, match="tiles, outside"):
        T.encode_prompts(tok, ["<|image|>x"], [[5]], max_image_tiles=4)


def test_max_length_cuts_the_end_and_skips_samples_without_answers(llama3_dir):
    tok = loranas.Tokenizer(llama3_dir / "tokenizer.json")
    skipped = kept = 0
    for record in _records(5, 80):
        tiles = [1 + (j % 4) for j in range(len(record["images"]))]
        full = T.encode_record(tok, record, tiles, date_string=DATE)
        n = len(full["input_ids"])
        assert T.encode_record(tok, record, tiles, date_string=DATE, max_length=n)["input_ids"].tolist() == \
            full["input_ids"].tolist()
        for limit in (n // 2, n // 4 + 1, n - 1):
            if limit < 1:
                continue
            got = T.encode_record(tok, record, tiles, date_string=DATE, max_length=limit)
            images = [i for i, t in enumerate(full["input_ids"]) if t == 128256]
            no_answer = bool((full["labels"][:limit] == -100).all())
            if no_answer or (images and images[-1] >= limit):
                assert got is None
                skipped += 1
                continue
            kept += 1
            for key in ("input_ids", "labels", "cross_attention_mask"):
                assert np.array_equal(got[key], full[key][:limit]), key
    assert skipped > 0 and kept > 0
    with pytest.raises(ValueError):
        T.encode_record(tok, _records(5, 1)[0], [1] * len(_records(5, 1)[0]["images"]), max_length=0)
