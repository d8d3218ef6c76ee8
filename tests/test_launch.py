"""The official-launch resolver on README and run-script snippets in every form the records use.

Each expected value is read off the snippet by hand: the environment the launched process sees, the
world size torchrun gives it, and the line each value was written on.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.launch import OFFICIAL_WORLD_SIZE, Launch, resolve_launch, resolve_launches

FENCE = "```"


def folder(tmp_path: Path, readme: str | None = None, **files: str) -> Path:
    root = tmp_path / "sub"
    root.mkdir()
    (root / "train_gpt.py").write_text("print('hi')\n")
    if readme is not None:
        (root / "README.md").write_text(textwrap.dedent(readme))
    for name, text in files.items():
        p = root / name.replace("__", "/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def only(root: Path) -> Launch:
    launches = resolve_launches(root)
    assert len(launches) == 1, [l.origin for l in launches]
    return launches[0]


def test_prefix_assignments_before_torchrun(tmp_path):
    root = folder(tmp_path, f"""\
        # Record
        {FENCE}bash
        NGRAM_CACHE=1 NGRAM_ALPHA=0.40 torchrun --standalone --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"NGRAM_CACHE": "1", "NGRAM_ALPHA": "0.40"}
    assert launch.world_size == 8
    assert launch.env["WORLD_SIZE"] == "8" and launch.env["LOCAL_WORLD_SIZE"] == "8"
    assert launch.env["RANK"] == "0" and launch.env["LOCAL_RANK"] == "0"
    assert launch.sources["NGRAM_CACHE"] == "README.md:3"
    assert launch.sources["WORLD_SIZE"] == "torchrun --nproc_per_node=8 (README.md:3)"
    assert launch.origin == "README.md:3"
    assert launch.script == "train_gpt.py"
    assert launch.command == "NGRAM_CACHE=1 NGRAM_ALPHA=0.40 torchrun --standalone --nproc_per_node=8 train_gpt.py"


def test_continued_lines_are_one_launch(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        SEED=1337 XSA_LAST_N=11 \\
          MATRIX_LR=0.025 \\
          torchrun --standalone --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"SEED": "1337", "XSA_LAST_N": "11", "MATRIX_LR": "0.025"}
    assert launch.origin == "README.md:2-4"
    assert launch.sources["MATRIX_LR"] == "README.md:2-4"


def test_markdown_escaped_fence(tmp_path):
    # Some records were written through an editor that escapes underscores and backslashes.
    root = folder(tmp_path, f"""\
        {FENCE}bash
        RUN\\_ID=v2\\_int6 \\\\
        MAX\\_WALLCLOCK\\_SECONDS=600 \\\\
        torchrun --standalone --nproc\\_per\\_node=8 train\\_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"RUN_ID": "v2_int6", "MAX_WALLCLOCK_SECONDS": "600"}
    assert launch.script == "train_gpt.py" and launch.world_size == 8


def test_export_lines_and_env_command(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}bash
        export TTT_ENABLED=1
        export TTT_LR=0.005
        env QK_GAIN=5.0 python3 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"TTT_ENABLED": "1", "TTT_LR": "0.005", "QK_GAIN": "5.0"}
    assert launch.sources == {**launch.sources, "TTT_ENABLED": "README.md:2", "TTT_LR": "README.md:3", "QK_GAIN": "README.md:4"}
    # a plain python launch names no rank count: the challenge's 8 ranks
    assert launch.world_size == OFFICIAL_WORLD_SIZE
    assert launch.sources["WORLD_SIZE"].startswith("official default")


def test_env_block_in_a_fence_applies_to_the_launch(tmp_path):
    # The #715 layout: the settings in one fence (with notes after them), the launch in another.
    root = folder(tmp_path, f"""\
        ## Configuration
        {FENCE}bash
        ITERATIONS=20000 (wallclock-capped at ~5589 steps)
        # N-gram cache (eval-time only):
        NGRAM_CACHE=1  NGRAM_ALPHA=0.40  NGRAM_ORDER=7
        torch==2.9.1
        {FENCE}

        ## Reproduction
        {FENCE}bash
        python3 data/cached_challenge_fineweb.py --variant sp1024
        SEED=1337 NGRAM_ORDER=5 \\
          torchrun --standalone --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"ITERATIONS": "20000", "NGRAM_CACHE": "1", "NGRAM_ALPHA": "0.40",
                                 "NGRAM_ORDER": "5", "SEED": "1337"}
    assert launch.sources["NGRAM_CACHE"] == "README.md:5"
    assert launch.sources["NGRAM_ORDER"] == "README.md:12-13"  # the launch line's own value wins
    assert launch.origin == "README.md:12-13"


def test_nproc_forms_and_nnodes(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        torchrun --nproc-per-node 4 --nnodes=2 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.world_size == 8
    assert launch.env["LOCAL_WORLD_SIZE"] == "4" and launch.env["WORLD_SIZE"] == "8"
    assert launch.for_rank(5) == {**launch.env, "RANK": "5", "LOCAL_RANK": "1"}
    with pytest.raises(ValueError):
        launch.for_rank(8)


def test_single_gpu_launch_is_honoured(tmp_path):
    root = folder(tmp_path, "Run `torchrun --standalone --nproc_per_node=1 train_gpt.py` on one H100.\n")
    launch = only(root)
    assert launch.world_size == 1 and launch.env["WORLD_SIZE"] == "1"
    assert launch.origin == "README.md:1"


def test_python_module_launcher_and_uv_run(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        A=1 uv run python -m torch.distributed.run --nproc_per_node=2 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"A": "1"} and launch.world_size == 2


def test_no_launch_line_is_the_official_default(tmp_path):
    root = folder(tmp_path, "# A record\n\nSee `run.sh` for the settings.\n")
    launch = only(root)
    assert launch.origin == "official default" and launch.command is None
    assert launch.world_size == 8
    assert launch.env == {"WORLD_SIZE": "8", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "8"}
    assert set(launch.sources.values()) == {"official default"}


def test_no_readme_reads_the_shipped_scripts(tmp_path):
    root = folder(tmp_path, None, **{"run.sh": """\
        #!/bin/bash
        export NGRAM_BUCKETS=4194304
        LOCAL_ONLY=7
        torchrun --standalone --nproc_per_node=8 train_gpt.py
        """})
    launch = only(root)
    # a plain shell variable is not exported: the launched process does not see it
    assert launch.settings() == {"NGRAM_BUCKETS": "4194304"}
    assert launch.origin == "run.sh:4"


def test_readme_calls_a_shipped_run_script(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        SEED=42 bash run.sh
        {FENCE}
        """, **{"run.sh": """\
        #!/bin/bash
        set -e
        DATA_DIR="${DATA_DIR:-/data}"
        SEED="${SEED:-1337}"
        env_vars=(
          DATA_PATH="$DATA_DIR/fineweb" CACHE=1
          SEED="$SEED"
        )
        env "${env_vars[@]}" torchrun --standalone --nproc_per_node=8 train_gpt.py
        """})
    launch = only(root)
    assert launch.settings() == {"SEED": "42", "DATA_PATH": "/data/fineweb", "CACHE": "1"}
    assert launch.origin == "run.sh:9 (via README.md:2)"
    assert launch.sources["CACHE"] == "run.sh:6"


def test_script_in_a_subfolder_with_exports(tmp_path):
    root = folder(tmp_path, "Evaluate with `SEED=7 bash eval/eval.sh`.\n", **{"eval__eval.sh": """\
        export EVAL_STRIDE=64
        python train_gpt.py
        """})
    launch = only(root)
    assert launch.settings() == {"SEED": "7", "EVAL_STRIDE": "64"}
    assert launch.origin == "eval/eval.sh:2 (via README.md:1)"


def test_a_seed_loop_is_one_launch_per_seed(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}bash
        export TTT_ENABLED=1
        for SEED in 42 0 1234; do
          SEED=$SEED torchrun --standalone --nproc_per_node=8 train_gpt.py
        done
        {FENCE}
        """)
    launches = resolve_launches(root)
    assert [l.env["SEED"] for l in launches] == ["42", "0", "1234"]
    assert all(l.env["TTT_ENABLED"] == "1" for l in launches)


def test_unknown_values_are_left_out(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        SEED=<SEED> RUN_ID=$(date +%s) MODE=full torchrun --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    assert only(root).settings() == {"MODE": "full"}


def test_data_preparation_commands_are_not_launches(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        python3 data/cached_challenge_fineweb.py --variant sp1024
        python3 prepare_caseops_data.py
        pip install -r requirements.txt
        {FENCE}
        """)
    assert only(root).origin == "official default"


def test_the_launch_of_the_claim_is_chosen_by_its_log(tmp_path):
    # Two ablations; the only log prints the settings of the second.
    root = folder(tmp_path, f"""\
        {FENCE}
        ATTN_VARIANT=base torchrun --standalone --nproc_per_node=8 train_gpt.py
        ATTN_VARIANT=dg torchrun --standalone --nproc_per_node=8 train_gpt.py
        {FENCE}
        """, **{"train.log": "attn_variant: dg\nstep:1/100 val_bpb:1.5\n"})
    assert [l.env["ATTN_VARIANT"] for l in resolve_launches(root)] == ["base", "dg"]
    assert resolve_launch(root).env["ATTN_VARIANT"] == "dg"


class _Claim:
    def __init__(self, seeds):
        self._seeds = seeds

    def seed_ids(self):
        return self._seeds


def test_the_claimed_seed_picks_its_launch(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        SEED=1 MODE=a torchrun --standalone --nproc_per_node=8 train_gpt.py
        SEED=2 MODE=b torchrun --standalone --nproc_per_node=8 train_gpt.py
        {FENCE}
        """, **{"logs__seed1.log": "seed:1\nmode: a\n", "logs__seed2.log": "seed:2\nmode: b\n"})
    assert resolve_launch(root, _Claim([2])).env["MODE"] == "b"
    assert resolve_launch(root, _Claim([1])).env["MODE"] == "a"
    # no claim, and every log agrees with some launch equally: the first
    assert resolve_launch(root).env["MODE"] == "a"


def test_no_matching_log_is_the_first_launch(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        MODE=a torchrun --nproc_per_node=8 train_gpt.py
        MODE=b torchrun --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    assert resolve_launch(root).env["MODE"] == "a"


def test_report_shape(tmp_path):
    root = folder(tmp_path, "`X=1 torchrun --nproc_per_node=8 train_gpt.py`\n")
    report = only(root).to_report()
    assert set(report) == {"env", "world_size", "sources", "command", "origin"}
    assert report["env"]["X"] == "1" and report["world_size"] == 8
    json.dumps(report)


def test_an_unterminated_quote_in_prose_does_not_break_reading(tmp_path):
    root = folder(tmp_path, f"""\
        {FENCE}
        # don't forget the data
        X=1 torchrun --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    assert only(root).settings() == {"X": "1"}


# ---- every part reads the same launch ------------------------------------------------------------

GATED = """\
import os
import numpy as np
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
CACHE = os.environ.get("NGRAM_CACHE", "0") == "1"
def evaluate(model, table):
    stream = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    acc = 0.0
    for t in range(1, len(stream) - 1):
        p = model(stream[: t + 1])[stream[t + 1]]
        if {cond}:
            p = 0.5 * p + 0.5 * table[(stream[t] * 31 + stream[t + 1]) % 4096] / 100
        acc += -np.log(p)
    return acc
"""


def _ga101_severities(root: Path) -> list[str]:
    from checks.static import engine

    found, _ = engine.check_folder(str(root), use_cache=False)
    return [f["severity"] for f in found if f["rule"] == "GA101"]


@pytest.mark.parametrize("cond,readme,files,severity", [
    # the #715 layout: the setting in an env block, the launch line without it
    ("CACHE", f"{FENCE}\nNGRAM_CACHE=1  NGRAM_ALPHA=0.40\n{FENCE}\n\n{FENCE}\ntorchrun --nproc_per_node=8 train_gpt.py\n{FENCE}\n",
     {}, "error"),
    ("CACHE", None, {"run.sh": "export NGRAM_CACHE=1\ntorchrun --nproc_per_node=8 train_gpt.py\n"}, "error"),
    ("CACHE", None, {"run.sh": "NGRAM_CACHE=1\ntorchrun --nproc_per_node=8 train_gpt.py\n"}, "info"),  # not exported
    ("CACHE", f"{FENCE}\nNGRAM_CACHE=0 torchrun --nproc_per_node=8 train_gpt.py\n{FENCE}\n", {}, "info"),
    ("WORLD_SIZE > 1", None, {}, "error"),  # the official 8 ranks
    ("WORLD_SIZE > 1", "`torchrun --nproc_per_node=1 train_gpt.py`\n", {}, "info"),  # the launch runs one rank
])
def test_static_rules_see_the_launch(tmp_path, cond, readme, files, severity):
    root = folder(tmp_path, readme, **files)
    (root / "train_gpt.py").write_text(GATED.format(cond=cond))
    assert _ga101_severities(root) == [severity]


def test_the_imported_submission_sees_the_launch(tmp_path):
    from harness.sandbox import run_sandboxed

    root = folder(tmp_path, f"{FENCE}\nNGRAM_CACHE=1 LD_PRELOAD=/x.so torchrun --nproc_per_node=4 train_gpt.py\n{FENCE}\n")
    (root / "train_gpt.py").write_text(
        "import os\nRESULT = [os.environ.get(k) for k in ('NGRAM_CACHE', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'RANK', 'LD_PRELOAD')]\n")
    launch = resolve_launch(root)
    r = run_sandboxed("tests.sandbox_drivers:import_entry", {"entry": "$SUBMISSION/train_gpt.py",
                                                             "launch_env": dict(launch.env)}, copy_dir=root)
    # the settings and the world size; the rank is the caller's to set, the loader's settings are not applied
    assert r.ok and r.value == {"result": ["1", "4", "4", None, None]}
    r = run_sandboxed("tests.sandbox_drivers:import_entry", {"entry": "$SUBMISSION/train_gpt.py"}, copy_dir=root)
    assert r.ok and r.value == {"result": [None, "8", "8", None, None]}  # no launch given: the official default


def test_every_report_format_shows_the_launch(tmp_path):
    from tests.cli_run import check_output, run_cli

    root = folder(tmp_path, f"{FENCE}\nNGRAM_CACHE=1 torchrun --standalone --nproc_per_node=8 train_gpt.py\n{FENCE}\n")
    proc = run_cli("check", str(root), "--format", "json")
    doc = check_output("json", proc.stdout)
    assert doc["launch"]["env"]["NGRAM_CACHE"] == "1" and doc["launch"]["world_size"] == 8
    assert doc["launch"]["sources"]["NGRAM_CACHE"] == "README.md:2"
    assert doc["launch"]["origin"] == "README.md:2"
    text = run_cli("check", str(root)).stdout
    assert "Launch  8 ranks, from README.md:2" in text and "NGRAM_CACHE" in text
    md = check_output("markdown", run_cli("check", str(root), "--format", "markdown").stdout)
    assert "Launch: 8 ranks, from README.md:2" in md and "| `NGRAM_CACHE` | 1 | README.md:2 |" in md


@pytest.mark.parametrize("readme, world, line", [
    ("# Study\n\n> Non-record submission (trained on 1×A100-40GB PCIe, ~10.7h per run).\n\n"
     "| | before | now |\n|---|---|---|\n| Hardware | 4×A100-40GB | 1×A100-40GB |\n", 1, 3),
    ("# Run\n\nIt does not beat the 8×H100 baseline on this card.\n\n- GPU: 1×RTX 5090, 600s wallclock\n", 1, 5),
    ("# Record\n\n| Hardware | 8xH100 SXM |\n", 8, 3),
])
def test_a_folder_without_a_launch_line_runs_on_the_hardware_its_readme_states(tmp_path, readme, world, line):
    launch = only(folder(tmp_path, readme))
    assert launch.world_size == world and launch.env["WORLD_SIZE"] == str(world)
    assert launch.origin == f"hardware stated in README.md:{line}"


def test_prose_about_other_hardware_is_no_statement_and_a_launch_line_wins(tmp_path):
    prose = "# Run\n\nThe gap to the 8×H100 baseline comes from fewer steps.\n"
    assert only(folder(tmp_path, prose)).origin == "official default"
    (tmp_path / "b").mkdir()
    launched = only(folder(tmp_path / "b", "# Run\n\nTrained on 1×A100.\n\n    torchrun --nproc_per_node=2 train_gpt.py\n"))
    assert launched.world_size == 2


@pytest.mark.parametrize("hardware,world", [("", OFFICIAL_WORLD_SIZE), ("Trained on 1×A100.\n\n", 1)])
def test_env_block_without_a_launch_line_sets_the_settings_of_the_run(tmp_path, hardware, world):
    # The #959 layout: "Key Environment Variables" in a fence, no torchrun line anywhere.
    root = folder(tmp_path, f"# Run\n\n{hardware}## Key Environment Variables\n\n{FENCE}bash\n"
                            f"NGRAM_EVAL_ENABLED=1\nNGRAM_FULL_RESCORE=1\n{FENCE}\n")
    launch = only(root)
    assert launch.settings() == {"NGRAM_EVAL_ENABLED": "1", "NGRAM_FULL_RESCORE": "1"}
    line = 7 if not hardware else 9
    assert launch.sources["NGRAM_FULL_RESCORE"] == f"README.md:{line}"
    assert launch.world_size == world and launch.env["WORLD_SIZE"] == str(world)
    assert launch.origin.endswith("settings of README.md")


def test_a_readme_table_of_settings_sets_the_run_and_lines_win(tmp_path):
    # The #853 layout: "| Parameter | Value |" with a row per variable, values as a reader writes them.
    root = folder(tmp_path, f"""\
        # Run

        | Configuration | BPB |
        |---|---|
        | NGRAM_ORDER | 0.2952 |

        ## Eval configuration

        | Parameter | Value |
        |-----------|-------|
        | NGRAM_EVAL_CHUNK_TOKENS | 262,144 |
        | `NGRAM_TWO_PASS_ENABLED` | 1 |
        | NGRAM_EVAL_ORDER_MULTS | 0.3,0.3,0.97 |
        | TTT_ENABLED | 0 (no test-time training) |
        | Warmup steps | 20 |

        {FENCE}bash
        TTT_ENABLED=1 torchrun --nproc_per_node=8 train_gpt.py
        {FENCE}
        """)
    launch = only(root)
    assert launch.settings() == {"NGRAM_EVAL_CHUNK_TOKENS": "262144", "NGRAM_TWO_PASS_ENABLED": "1",
                                 "NGRAM_EVAL_ORDER_MULTS": "0.3,0.3,0.97", "TTT_ENABLED": "1"}
    assert launch.sources["NGRAM_TWO_PASS_ENABLED"] == "README.md:12"
    assert launch.sources["TTT_ENABLED"] == "README.md:18"  # the launch line wins over the table
