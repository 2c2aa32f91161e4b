"""The demo's settings: the adapter sets of the paper, the rank space, and the quick and full modes."""

from __future__ import annotations

from dataclasses import dataclass

#: The paper's three adapter sets (Table 1): every projection and MLP, the text MLP, and the attention q/k.
ADAPTER_SETS = {
    "qkvo+mlp": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,fc1,fc2",
    "mlp": "gate_proj,up_proj,down_proj",
    "qk": "q_proj,k_proj",
}
#: The paper's rank space.
SPACE = (4, 8, 16, 32, 64)
#: The searched adapters' budget: a fraction of what uniform rank 64 costs on the same modules.
BUDGET = 0.4


@dataclass(frozen=True)
class DemoSettings:
    """How much data and training one demo run uses."""

    n_train: int
    n_val: int
    n_eval: int
    search_epochs: int
    finetune_epochs: int
    adapter_sets: tuple[str, ...]
    batch_size: int = 8
    lr: float = 2e-3
    alpha_lr: float = 5e-2
    #: lora_alpha of every adapter (scaling lora_alpha / r), the search's default for the space's top rank.
    lora_alpha: float = 128.0


MODES = {
    # About 6 minutes on a 2-core machine: every task, the full adapter set.
    "quick": DemoSettings(n_train=96, n_val=24, n_eval=32, search_epochs=1, finetune_epochs=2,
                          adapter_sets=("qkvo+mlp",)),
    # The three adapter sets of the paper, on more data.
    "full": DemoSettings(n_train=400, n_val=64, n_eval=100, search_epochs=2, finetune_epochs=3,
                         adapter_sets=tuple(ADAPTER_SETS)),
}
