from checks.static.engine import Rule


class ExternalAccess(Rule):
    """The code reaches the network, downloads from a hub, or runs outside programs or native libraries.

    Why:
    A submission is the artifact and its code: evaluation may not fetch data, models or help from
    outside (README; debates #847, #1855). Network and hub access is an error; starting outside
    programs (``nvidia-smi`` for a log line) is reported for a reviewer as info, and loading a native
    library as a warning, because the sandbox cannot see what it does. Downloading a hub *dataset*
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
    KINDS = ("ext",)
    VALID = [
        """
import os
def main():
    path = os.path.join("data", "fineweb_val_000000.bin")
    return open(path, "rb").read()
""",
    ]
    INVALID = [
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
        return {"network": "error", "native": "warning", "dataset": "warning"}.get(ev.data.get("kind"), "info")

    def message(self, ev, ctx) -> str:
        what = {"network": "reaches the network", "native": "loads a native library",
                "program": "runs an outside program",
                "dataset": "downloads a dataset repository (data preparation: check that it is the challenge's "
                           "data)"}[ev.data.get("kind", "program")]
        where = "" if ctx.in_submission_code(ev.node) else " in a standalone script that the submission does not import"
        return f"`{ctx.code(ev.node)}` {what} ({ev.data.get('call')}){where}"
