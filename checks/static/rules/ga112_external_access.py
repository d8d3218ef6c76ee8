from checks.static.engine import Rule
from checks.static.flow.vocab import EXTERNAL


class ExternalAccess(Rule):
    """The code reaches the network, downloads from a hub, or runs outside programs or native libraries.

    Why:
    A submission is the artifact and its code: evaluation may not fetch data, models or help from
    outside (README; debates #847, #1855). Network and hub access is an error; starting outside
    programs (``nvidia-smi`` for a log line) is reported for a reviewer as info, and loading a native
    library as a warning, because the sandbox cannot see what it does. Validation data handed to a
    native library's function (``lib.score(tokens_ptr, ...)``, the byte-level PPM mixers #1850) is scored
    or mixed in code these rules do not read: a warning there, and the static check is incomplete (no
    pass) until a reviewer has read that code or accepts it with an allow and a reason. Downloading a hub *dataset*
    repository (``repo_type="dataset"``) is how the challenge's own data script fetches the shards and
    tokenizer before training: a warning, for a reviewer to check that the data is the challenge's.

    Example:
        from huggingface_hub import hf_hub_download
        path = hf_hub_download("someone/ngram-tables", "counts.npy")

    Fix:
    Ship everything the evaluation needs inside the counted artifact. Scripts that prepare data
    before training and are not imported by the submission are reported as info.
    """

    ID = "GA112"
    NAME = "external-access"
    family = "external-access"
    severity = "error"
    KINDS = (EXTERNAL,)
    VALID = [
        """
import os
def main():
    path = os.path.join("data", "fineweb_val_000000.bin")
    return open(path, "rb").read()
""",
    ]
    INVALID = [
        # the scoring of the validation tokens happens in C, loaded with ctypes
        """
import ctypes
import numpy as np
def evaluate(nll):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)
    lib = ctypes.CDLL("./ppm.so")  # <- fires
    out = np.zeros(2)
    lib.ppm_score(val.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), val.size, out.ctypes.data)  # <- fires
    return out[0]
""",
        """
import urllib.request
def fetch():
    return urllib.request.urlopen("http://example.com/tables.bin").read()  # <- fires
""",
        """
from huggingface_hub import hf_hub_download
def fetch():
    return hf_hub_download("someone/tables", "counts.npy")  # <- fires
""",
        # a model repository is no data preparation
        """
from huggingface_hub import snapshot_download
def fetch():
    return snapshot_download(repo_id="someone/teacher", repo_type="model")  # <- fires
""",
    ]

    def severity_for(self, ev, ctx) -> str:
        if not ctx.in_submission_code(ev.node):
            return "info"  # a standalone script (data preparation) that the submission does not import
        return {"network": "error", "native": "warning", "native-data": "warning",
                "dataset": "warning"}.get(ev.data.get("kind"), "info")

    def unchecked(self, ev) -> bool:
        return ev.data.get("kind") == "native-data"

    def message(self, ev, ctx) -> str:
        what = {"network": "reaches the network", "native": "loads a native library",
                "native-data": "hands validation data to native code that the static rules do not read: what it "
                               "computes from them (a score, a mixture) is not checked",
                "program": "runs an outside program",
                "dataset": "downloads a dataset repository (data preparation: check that it is the challenge's "
                           "data)"}[ev.data.get("kind", "program")]
        where = "" if ctx.in_submission_code(ev.node) else " in a standalone script that the submission does not import"
        return f"`{ctx.code(ev.node)}` {what} ({ev.data.get('call')}){where}"
