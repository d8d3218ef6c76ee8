from checks.static.engine import Rule
from checks.static.flow.consts import OFFICIAL_CAP_S
from checks.static.flow.vocab import TRAIN, TRAIN_DATA_LATE, VAL


class TrainDataAfterCap(Rule):
    """Training shards are read after a training loop that stops at the full 600 s wall-clock cap.

    Why:
    Training, and any use of the training data, must fit in the 600 s budget (challenge README).
    GPTQ calibration on training batches after a loop that only stops at the full cap ran outside the
    budget (#535, #569, #593, #609: ruled illegal). Records that calibrate on training data stop their
    loop early (cap minus a reserve such as 13 s) so the calibration runs inside the budget. Calibration
    on self-generated text reads no training data. When the folder's training logs show the loop stopped
    at 600 s or later, the work is known to have run past the budget (an error); without logs that show
    it, a warning.

    Example:
        while True:
            ...  # training steps
            if time.perf_counter() - t0 >= args.max_wallclock_seconds:
                break
        hessians = collect_hessians(model, DistributedTokenLoader(args.train_files))

    Fix:
    Subtract a reserve for the calibration from the cap the training loop stops at (and check in the logs
    that training plus calibration stay within 600 s), or calibrate on text the model generates itself.
    """

    ID = "GA116"
    NAME = "train-data-after-cap"
    family = "train-data-at-eval"
    severity = "warning"
    KINDS = (TRAIN_DATA_LATE,)
    VALID = [
        # the cap reserves 13 s for the calibration (the setting's name does not matter)
        """
import os, time, torch
class Args:
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600))
    spare = float(os.environ.get("SPARE", 13.0))
    train_files = "data/fineweb_train_*.bin"
def train(model, opt, args):
    cap_ms = 1000.0 * args.max_wallclock_seconds if args.max_wallclock_seconds > 0 else None
    if cap_ms is not None:
        cap_ms -= args.spare * 1000.0
    t0 = time.perf_counter()
    batches = load(args.train_files)
    for x in batches:
        model(x).backward()
        opt.step()
        elapsed_ms = 1000.0 * (time.perf_counter() - t0)
        if cap_ms is not None and elapsed_ms >= cap_ms:
            break
def calibrate(model, args):
    H = 0
    for x in load(args.train_files):
        a = model(x)
        H += a.T @ a
    return H
def main(model, opt):
    args = Args()
    train(model, opt, args)
    return calibrate(model, args)
""",
        # a loop bounded by steps, not by time
        """
import time
def main(model, opt):
    train = load("fineweb_train_000001.bin")
    t0 = time.time()
    for step in range(1000):
        model(train[step]).backward()
        opt.step()
    print("took", time.time() - t0)
    for i in range(8):
        model(train[i])
""",
        # calibration on generated text after the full cap
        """
import time
def main(model, opt):
    train = load("fineweb_train_000001.bin")
    t0 = time.time()
    step = 0
    while time.time() - t0 < 600:
        model(train[step]).backward()
        opt.step()
        step += 1
    text = model.generate(256)
    model(text)
""",
    ]
    INVALID = [
        """
import os, time
class Args:
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600))
    train_files = "data/fineweb_train_*.bin"
def collect(model, loader):
    H = 0
    for _ in range(64):
        a = model(loader.next_batch())  # <- fires
        H += a.T @ a
    return H
class Loader:
    def __init__(self, pattern):
        self.tokens = load(pattern)
    def next_batch(self):
        return self.tokens[:1024]
def main(model, opt):
    args = Args()
    cap_ms = 1000.0 * args.max_wallclock_seconds
    loader = Loader(args.train_files)
    t0 = time.perf_counter()
    while True:
        model(loader.next_batch()).backward()
        opt.step()
        if 1000.0 * (time.perf_counter() - t0) >= cap_ms:
            break
    return collect(model, Loader(args.train_files))
""",
        # a loader that reads the training files named by a setting; the cap in seconds, checked per step
        """
import glob, os, time
class H:
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600))
    train_files = "data/fineweb_train_*.bin"
class Shuffled:
    def __init__(self, h):
        self.shards = [load(f) for f in sorted(glob.glob(h.train_files))]
    def next_batch(self):
        return self.shards[0][:1024]
def hessians(model, loader):
    for _ in range(64):
        model.forward_logits(loader.next_batch())  # <- fires
def main(model, opt):
    h = H()
    loader = Shuffled(h)
    t0 = time.time()
    for step in range(20000):
        model(loader.next_batch()).backward()
        opt.step()
        if time.time() - t0 > h.max_wallclock_seconds:
            break
    hessians(model, Shuffled(h))
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        """Training files in the forward's input, or objects (a loader) whose methods store data of the
        training files and none of the validation files (class-level settings such as paths do not count)."""
        if ev.data["direct"]:
            return True
        holds = set()
        for k, labels in ctx.prog.attrs.items():
            if isinstance(k, tuple) and k[0] in ev.data["classes"] and k not in ctx.prog.class_settings:
                holds |= labels & {TRAIN, VAL}
        return holds == {"train"}

    def logs_show_full_cap(self, ctx) -> bool:
        """The folder's training logs show the timed loop ran to the full budget: this work came after it."""
        return ctx.train_stop_s is not None and ctx.train_stop_s >= OFFICIAL_CAP_S

    def severity_for(self, ev, ctx) -> str:
        return "error" if self.logs_show_full_cap(ctx) else self.severity

    def message(self, ev, ctx) -> str:
        cap = ev.data["cap"]
        head = (f"`{ctx.code(ev.node)}`: a forward on training data after the training loop that stops at "
                f"{cap:g} s of wall-clock time, with nothing reserved for this work: ")
        if self.logs_show_full_cap(ctx):
            return head + (f"the logs show training stopped at {ctx.train_stop_s:g} s, so this use of the "
                           f"training data ran past the 600 s budget (late GPTQ calibration, #593)")
        return head + ("it runs past the 600 s budget unless the logs show training and this step finished "
                       "within it (late GPTQ calibration, #593)")
