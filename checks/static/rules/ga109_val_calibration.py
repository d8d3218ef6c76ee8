from checks.static.engine import Rule
from checks.static.flow.vocab import VAL_CALIBRATION


class ValCalibration(Rule):
    """Quantization calibration statistics (Hessians, activation hooks) are collected on validation data.

    Why:
    GPTQ-style calibration fits the quantized weights to the data it sees; calibrating on validation
    tokens fits the artifact to the tokens it will be scored on (C1; #728's first commit). Calibration
    on training data or on self-generated text is fine.

    Example:
        for x in val_batches:
            H += x.T @ x

    Fix:
    Calibrate on training shards (within the training time) or on text the model generates itself.
    """

    ID = "GA109"
    NAME = "val-calibration"
    family = "val-calibration"
    severity = "error"
    KINDS = (VAL_CALIBRATION,)
    VALID = [
        """
import torch
def calibrate(model, tokens):
    H = torch.zeros(512, 512)
    for i in range(0, len(tokens) - 512, 512):
        x = model.embed(tokens[i:i + 512])
        H += x.T @ x
    return H
def main(model):
    train = load("fineweb_train_000001.bin")
    return calibrate(model, train)
""",
        # hooks that summarise activations into numbers for a diagnostics file, on one validation window
        """
import json, time
def summary(t):
    x = t.detach().float()
    return {"mean": float(x.mean().item()), "norm": float(x.norm().item()), "shape": list(x.shape)}
def probe(model, x):
    stats, timing = {}, {}
    def make_hook(name):
        def hook(mod, inp, out):
            stats[name] = summary(out)
            timing[name] = time.perf_counter()
        return hook
    for i, layer in enumerate(model.layers):
        layer.register_forward_hook(make_hook(f"layer{i}"))
    model(x)
    return stats
def main(model):
    val = load("fineweb_val_000000.bin")
    json.dump(probe(model, val[:1024]), open("diagnostics.json", "w"))
""",
    ]
    INVALID = [
        """
import torch
def calibrate(model, tokens):
    H = torch.zeros(512, 512)
    for i in range(0, len(tokens) - 512, 512):
        x = model.embed(tokens[i:i + 512])
        H += x.T @ x  # <- fires
    return H
def main(model):
    val = load("fineweb_val_000000.bin")
    return calibrate(model, val)
""",
        """
def collect(model, batches):
    stats = {}
    def hook(mod, inp, out):
        stats[mod] = inp[0].pow(2).mean(0)
    for layer in model.layers:
        layer.register_forward_hook(hook)
    for xb in batches:
        model(xb)  # <- fires
    return stats
def main(model):
    val = load("data/fineweb_val_*.bin")
    collect(model, [val[i:i + 1024] for i in range(0, len(val), 1024)])
""",
        # calibration on validation tokens chosen by a setting that is on; the branch that generates text
        # instead does not run and leaves the calibration tokens as they are
        """
import os
CALIB_VAL = bool(int(os.environ.get("GPTQ_CALIB_VAL", "1")))
def collect(model, batches):
    stats = {}
    def hook(mod, inp, out):
        stats[mod] = inp[0].pow(2).mean(0)
    for layer in model.layers:
        layer.register_forward_hook(hook)
    for xb in batches:
        model(xb)  # <- fires
    return stats
def main(model):
    val = load("data/fineweb_val_*.bin")
    if CALIB_VAL:
        calib = [val[i:i + 1024] for i in range(0, 65536, 1024)]
    else:
        calib = generate(model, 64)
    collect(model, calib)
""",
    ]

    def message(self, ev, ctx) -> str:
        how = "forward hooks record activations of" if ev.data.get("how") == "hooks" else "a Hessian is accumulated from"
        return f"`{ctx.code(ev.node)}`: {how} validation data (quantization calibrated on the scored tokens, C1)"
