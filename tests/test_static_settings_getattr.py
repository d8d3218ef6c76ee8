"""Settings read with ``getattr(args, "name", default)`` take their value under the launch, and a
training step in code the launch switches off is reported as off (info), not as an error."""

from __future__ import annotations

import textwrap

from checks.static import engine

# a per-window delta optimized on the window's own targets before it is scored (eval-time training),
# switched by a one-line settings class read through getattr
CODE = """
import os
import torch
import torch.nn.functional as F
class H: seed = 1; adapt = bool(int(os.environ.get("ADAPT_ON", "0")))
def evaluate(args, model, tokens):
    use = getattr(args, "adapt", False)
    total = 0.0
    for s in range(0, tokens.numel() - 1024, 1024):
        x = tokens[s:s + 1024]
        y = tokens[s + 1:s + 1025]
        h = model.hidden(x)
        delta = torch.zeros(1, h.shape[-1], requires_grad=True)
        if use:
            opt = torch.optim.AdamW([delta], lr=0.01)
            loss = F.cross_entropy(model.head(h + delta), y)
            loss.backward()
            opt.step()
        total += F.cross_entropy(model.head(h + delta), y).item()
    return total
def main(model):
    args = H()
    return evaluate(args, model, load("fineweb_val_*.bin"))
"""


def severities(env: dict | None = None) -> set[str]:
    run_env = dict(engine.OFFICIAL_ENV, **(env or {}))
    found, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(CODE))], run_env)
    return {f["severity"] for f in found if f["family"] in ("update-before-score", "eval-time-optimization")}


def test_training_step_switched_off_by_a_getattr_setting_is_info():
    assert "error" in severities({"ADAPT_ON": "1"})
    assert "error" not in severities()
