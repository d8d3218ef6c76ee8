"""Probes under the official launch: the shape of the seed violation (PR #715).

Its eval turns the cache on with ``"1" if world_size > 1 else "0"``, reads the table size from
the environment inside the eval (``NGRAM_BUCKETS``, no hyperparameter), and hands the mixed
scores back to torch with ``torch.from_numpy``. The folder here is the bundled target-in-key
example rewritten into that shape (our own code, not the PR's). Under an 8-rank torchrun launch
the cache runs on every rank, ``normalization`` fails with the measured sum over the vocabulary
and ``bucket-collapse`` runs on the environment's table size; launched as one process, the same
code has its cache off and passes.
"""

from __future__ import annotations

import json

import pytest

from tests.cli_run import run_cli
from tests.conftest import rewritten_example

TORCHRUN = "NGRAM_ORDER=7 torchrun --standalone --nproc_per_node=8 train_gpt.py"
ONE_PROCESS = "NGRAM_ORDER=7 torchrun --standalone --nproc_per_node=1 train_gpt.py"

# (text in the bundled example, text of the #715 shape); each must occur exactly once.
REWRITES = [
    ("    ngram_buckets = int(os.environ.get(\"NGRAM_BUCKETS\", 1 << 20))\n", ""),
    ("    mask = np.uint64(args.ngram_buckets - 1)\n"
     "    ctx_table = np.zeros(args.ngram_buckets, dtype=np.int64)\n"
     "    full_table = np.zeros(args.ngram_buckets, dtype=np.int64)\n",
     "    use_cache = bool(int(os.environ.get(\"NGRAM_CACHE\", \"1\" if world_size > 1 else \"0\")))\n"
     "    buckets = int(os.environ.get(\"NGRAM_BUCKETS\", \"4194304\"))\n"
     "    mask = np.uint64(buckets - 1)\n"
     "    ctx_table = np.zeros(buckets, dtype=np.int64)\n"
     "    full_table = np.zeros(buckets, dtype=np.int64)\n"),
    ("np.where(ctx_count >= args.ngram_min_count,", "np.where(use_cache & (ctx_count >= args.ngram_min_count),"),
    ("                loss_sum += float(-np.log(p).sum())\n",
     "                loss_sum += torch.from_numpy(-np.log(p)).to(torch.float64).sum()\n"),
]


def seed_shaped(tmp_path, launch: str):
    dest = rewritten_example(tmp_path / "seed_shape", "ngram_target_in_key", REWRITES)
    readme = (dest / "README.md").read_text()
    assert readme.count("SEED=1337 python train_gpt.py") == 1
    (dest / "README.md").write_text(readme.replace("SEED=1337 python train_gpt.py", launch))
    return dest


def probe(folder) -> tuple[int, dict]:
    r = run_cli("probe", str(folder), "--profile", "ci", "--format", "json", timeout=900)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    return r.returncode, doc


@pytest.fixture(scope="module")
def under_torchrun(tmp_path_factory):
    return probe(seed_shaped(tmp_path_factory.mktemp("torchrun"), TORCHRUN))


def test_the_launch_is_eight_ranks(under_torchrun):
    _, doc = under_torchrun
    assert doc["launch"]["world_size"] == 8
    assert doc["probes"][0]["data"]["entry_point"] == "eval_val_sliding_ngram"


def test_normalization_fails_with_the_measured_sum(under_torchrun):
    rc, doc = under_torchrun
    probes = {p["probe"]: p for p in doc["probes"]}
    norm = probes["normalization"]
    assert norm["status"] == "fail" and norm["family"] == "target-in-key"
    cex = norm["counterexample"]
    assert abs(cex["sum_p"] - 1) > 0.05  # counts of colliding keys, as at the launched load
    assert set(cex["tables"]) == {"$NGRAM_BUCKETS"} and cex["tables"]["$NGRAM_BUCKETS"] < 4194304
    assert rc == 1


def test_bucket_collapse_runs_on_the_environment_table(under_torchrun):
    _, doc = under_torchrun
    collapse = {p["probe"]: p for p in doc["probes"]}["bucket-collapse"]
    assert collapse["status"] == "fail"
    assert collapse["counterexample"]["tables"] == {"$NGRAM_BUCKETS": 4194304}


def test_one_process_has_the_cache_off_and_passes(tmp_path):
    rc, doc = probe(seed_shaped(tmp_path, ONE_PROCESS))
    assert doc["launch"]["world_size"] == 1
    statuses = {p["probe"]: p["status"] for p in doc["probes"]}
    assert statuses["normalization"] == "pass" and statuses["bucket-collapse"] == "pass"
    assert rc == 0, [p for p in doc["probes"] if p["status"] != "pass"]
