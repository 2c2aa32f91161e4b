"""The main job on the demo base: per task, the base's score, then per adapter set a search and three fine-tunes
(searched ranks, uniform rank 64, random ranks at the searched budget), each scored on the task's eval split."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .. import tasks as task_data
from ..api import load_model
from ..data import Dataset
from ..evaluation import evaluate
from ..model import Model
from ..results import FinetuneResult, SearchResult
from ..training import finetune, search
from .settings import ADAPTER_SETS, BUDGET, SPACE, DemoSettings


@dataclass
class Row:
    """One line of the table: an adapter (or the base) on one task, scored on the task's eval split."""

    task: str
    adapter_set: str
    adapter: str
    eval_perplexity: float
    accuracy: float
    lora_parameters: int
    lora_share: float
    seconds_per_epoch: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SetRun:
    """What one adapter set on one task produced: its search and the three fine-tunes."""

    search: SearchResult
    finetunes: dict[str, FinetuneResult]


def scored(model: Model, eval_data: Dataset, **row) -> Row:
    """A row with the model's eval perplexity and exact-match accuracy (adapters as they are attached)."""
    result = evaluate(model, eval_data, generate=True)
    return Row(eval_perplexity=result.perplexity, accuracy=float(result.accuracy), **row)


class TaskRun:
    """One task: its datasets, the base's row, and one :class:`SetRun` per adapter set."""

    def __init__(self, model: Model, name: str, files: dict, settings: DemoSettings, seed: int,
                 log: Callable[[str], None]):
        self.model, self.name, self.settings, self.seed, self.log = model, name, settings, seed, log
        self.data = {split: Dataset.from_cauldron(path, model=model) for split, path in files.items()}
        self.rows: list[Row] = []
        self.sets: dict[str, SetRun] = {}

    def close(self) -> None:
        for d in self.data.values():
            d.close()

    def run(self) -> None:
        self.model.clear_adapters()
        self.rows.append(scored(self.model, self.data["eval"], task=self.name, adapter_set="-", adapter="base",
                                lora_parameters=0, lora_share=0.0, seconds_per_epoch=0.0))
        for set_name in self.settings.adapter_sets:
            self.run_set(set_name)

    def run_set(self, set_name: str) -> None:
        s, targets = self.settings, ADAPTER_SETS[set_name]
        t0 = time.perf_counter()
        found = search(self.model, self.data["train"], self.data["val"], targets=targets, space=SPACE, budget=BUDGET,
                       epochs=s.search_epochs, batch_size=s.batch_size, lr=s.lr, alpha_lr=s.alpha_lr, seed=self.seed,
                       lora_alpha=s.lora_alpha)
        share = found.lora_parameters / found.uniform_max_parameters
        self.log(f"{self.name} / {set_name}: searched in {time.perf_counter() - t0:.0f} s, "
                 f"{found.lora_parameters:,} LoRA parameters ({share:.0%} of uniform 64)")
        controls = {"searched": found, "uniform-64": max(SPACE),
                    "random": {"random": found.lora_parameters, "space": list(SPACE), "seed": self.seed}}
        tuned = {}
        for adapter, ranks in controls.items():
            tuned[adapter] = finetune(self.model, self.data["train"], self.data["val"], ranks=ranks, init="fresh",
                                      targets=targets, epochs=s.finetune_epochs, batch_size=s.batch_size, lr=s.lr,
                                      seed=self.seed, lora_alpha=s.lora_alpha)
            epoch = sum(tuned[adapter].epoch_times) / max(1, len(tuned[adapter].epoch_times))
            row = scored(self.model, self.data["eval"], task=self.name, adapter_set=set_name, adapter=adapter,
                         lora_parameters=tuned[adapter].lora_parameters, lora_share=tuned[adapter].lora_share,
                         seconds_per_epoch=epoch)
            self.rows.append(row)
            self.log(f"{self.name} / {set_name} / {adapter}: eval perplexity {row.eval_perplexity:.3f}, "
                     f"accuracy {row.accuracy:.0%}")
        self.sets[set_name] = SetRun(found, tuned)
        self.model.clear_adapters()


def run_tasks(base: str | Path, task_dir: Path, names: tuple[str, ...], settings: DemoSettings, seed: int,
              log: Callable[[str], None]) -> list[TaskRun]:
    """Makes the tasks' files, then runs every task on the base model."""
    files = task_data.make(task_dir, names=list(names), n_train=settings.n_train, n_val=settings.n_val,
                           n_eval=settings.n_eval, seed=seed)
    runs = []
    with load_model(base) as model:
        for name in names:
            run = TaskRun(model, name, files[name], settings, seed, log)
            try:
                run.run()
            finally:
                run.close()
            runs.append(run)
    return runs
