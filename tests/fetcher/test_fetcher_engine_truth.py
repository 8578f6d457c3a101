"""Issue 12, the fetcher's part: the weight set vLLM 0.31.0 reads, ``--expect``, and revisions.

vLLM 0.31.0 references are to the vllm-0.31.0 wheel on PyPI (``vllm/_version.py``:
``0.31.0``, commit ``gdb9527a46``); the GitHub tag could not be fetched here (the repository
snapshot is over the 500 MiB limit), the wheel carries the same Python source.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
from pathlib import Path

import pytest
from fetcher.paths import MANIFEST_NAME, model_dir
from fetcher.selection import select_files
from fetcher_fakehub import FakeHub, FakeRepo
from fetcher_helpers import COMMIT, REPO, blob, run_fetcher

KEY = "modelfleet:models[llama-8b]"


def vllm_031_reads(folder: str) -> set[str]:
    """The weight files vLLM 0.31.0's default loader reads from a local ``folder``.

    A transcription of ``DefaultModelLoader._prepare_weights`` (default_loader.py lines
    138-253) for the default flags (load_format "auto", fall_back_to_pt True, no overrides):
    "auto" becomes "mistral" when any file in the folder (``list_repo_files`` walks it with
    rglob, repo_utils.py line 137) matches ``consolidated*.safetensors`` by basename (line 161);
    then the first of the allowed patterns that globs anything at the top level wins (line
    220); safetensors are filtered by the index (``filter_duplicate_safetensors_files``,
    weight_utils.py line 576, which also fails on a file the index names but the folder lacks),
    pickled files by ``filter_files_not_needed_for_inference`` (line 605).
    """
    everything = [
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    ]
    mistral = any(
        fnmatch.fnmatch(os.path.basename(p), "consolidated*.safetensors") for p in everything
    )
    if mistral:
        patterns, index, safetensors = (
            ["consolidated*.safetensors"],
            "consolidated.safetensors.index.json",
            True,
        )
    else:
        patterns, index, safetensors = (
            ["*.safetensors", "*.bin", "*.pt"],
            "model.safetensors.index.json",
            False,
        )
    files: list[str] = []
    for pattern in patterns:
        files += glob.glob(os.path.join(folder, pattern))
        if files:
            safetensors = safetensors or pattern.endswith(".safetensors")
            break
    if safetensors and os.path.isfile(os.path.join(folder, index)):
        with open(os.path.join(folder, index)) as handle:
            named = {os.path.join(folder, v) for v in json.load(handle)["weight_map"].values()}
        assert named <= set(files), f"vLLM would fail: {named - set(files)} missing"
        files = [f for f in files if f in named]
    elif not safetensors:
        blacklist = [
            "training_args.bin",
            "optimizer.bin",
            "optimizer.pt",
            "scheduler.pt",
            "scaler.pt",
        ]
        files = [f for f in files if not any(f.endswith(x) for x in blacklist)]
    return {os.path.relpath(f, folder) for f in files}


def _weights_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt")}


# The weight set ------------------------------------------------------------------------------

MISTRAL = "mistralai/tiny-mistral"


def _mistral_repo() -> FakeRepo:
    """Mistral-7B-Instruct-v0.3's layout: consolidated weights + params.json, and HF shards."""
    shard1, shard2 = blob(1024 * 1024, 21), blob(1024 * 1024, 22)
    files = {
        "consolidated.safetensors": blob(2 * 1024 * 1024, 20),
        "params.json": json.dumps({"dim": 64, "n_layers": 2, "vocab_size": 32768}).encode(),
        "tekken.json": b'{"config": {}}',
        "tokenizer.model.v3": blob(4096, 23),
        "model-00001-of-00002.safetensors": shard1,
        "model-00002-of-00002.safetensors": shard2,
        "model.safetensors.index.json": json.dumps(
            {
                "weight_map": {
                    "a": "model-00001-of-00002.safetensors",
                    "b": "model-00002-of-00002.safetensors",
                }
            }
        ).encode(),
        "config.json": json.dumps(
            {"architectures": ["MistralForCausalLM"], "torch_dtype": "bfloat16"}
        ).encode(),
        "generation_config.json": b"{}",
        "tokenizer.json": blob(8192, 24),
        "tokenizer_config.json": b"{}",
        "README.md": b"# tiny mistral\n",
    }
    lfs = {
        "consolidated.safetensors",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.model.v3",
        "tokenizer.json",
    }
    return FakeRepo(files=files, lfs=lfs, revisions={"main": COMMIT})


def test_mistral_style_repository_fetches_only_the_set_vllm_reads(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    hub.repos[MISTRAL] = repo = _mistral_repo()
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    run = run_fetcher(env, f"hf://{MISTRAL}@{COMMIT}", str(tmp_path))

    assert run.returncode == 0, run.stderr
    folder = Path(run.last_line)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "consolidated.safetensors",
            "params.json",
            "tekken.json",
            "tokenizer.model.v3",
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            MANIFEST_NAME,
        ]
    )
    for shard in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        assert hub.downloads(MISTRAL, shard) == 0, shard
    # vLLM 0.31.0 given this folder reads every weight file in it, and only those.
    assert vllm_031_reads(str(folder)) == _weights_in(folder) == {"consolidated.safetensors"}
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["weight_bytes"] == len(repo.files["consolidated.safetensors"])
    skipped = sum(len(repo.files[f"model-0000{i}-of-00002.safetensors"]) for i in (1, 2))
    print(f"\nnot fetched: {skipped} bytes of HF shards that vLLM 0.31.0 would not read")


def test_weights_missing_from_the_index_are_not_fetched(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    repo = hub.repos[REPO]
    # A second copy of the weights in one file, absent from model.safetensors.index.json.
    repo.files["model.safetensors"] = blob(256 * 1024, 30)
    repo.lfs.add("model.safetensors")
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    run = run_fetcher(env, f"hf://{REPO}@{COMMIT}", str(tmp_path))

    assert run.returncode == 0, run.stderr
    folder = Path(run.last_line)
    assert hub.downloads(REPO, "model.safetensors") == 0
    assert (
        vllm_031_reads(str(folder))
        == _weights_in(folder)
        == {
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        }
    )
    assert any(e["event"] == "index-filter" for e in run.events())


@pytest.mark.parametrize(
    ("listing", "weights"),
    [
        # vLLM tries *.safetensors, then *.bin, then *.pt; .pth is never read.
        (["a.safetensors", "b.bin", "c.pt", "d.pth"], {"a.safetensors"}),
        (["b.bin", "c.pt", "training_args.bin"], {"b.bin"}),
        (["c.pt", "optimizer.pt", "d.pth"], {"c.pt"}),
        (["consolidated.00.safetensors", "model.safetensors"], {"consolidated.00.safetensors"}),
    ],
)
def test_selection_is_a_fixed_point_of_vllms_loader(
    tmp_path: Path, listing: list[str], weights: set[str]
) -> None:
    chosen = select_files([*listing, "config.json", "original/consolidated.00.pth"])
    for name in chosen:
        (tmp_path / name).write_bytes(b"x")
    assert {n for n in chosen if n != "config.json"} == weights
    assert vllm_031_reads(str(tmp_path)) == weights


# --expect ------------------------------------------------------------------------------------

AWQ = "acme/tiny-awq"


def _awq_repo() -> FakeRepo:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "torch_dtype": "float16",
        "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128},
    }
    files = {
        "model.safetensors": blob(1024 * 1024, 40),
        "config.json": json.dumps(config).encode(),
        "tokenizer.json": b"{}",
    }
    return FakeRepo(files=files, lfs={"model.safetensors"}, revisions={"main": COMMIT})


def _expect(**fields: object) -> str:
    return json.dumps({"key": KEY, **fields})


def test_expectation_mismatch_fails_before_the_weights_and_a_fixed_stack_resumes(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    hub.repos[AWQ] = _awq_repo()
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    source = f"hf://{AWQ}@{COMMIT}"
    wrong = _expect(quant_method=None, torch_dtype="bfloat16", weight_bytes=1048576)

    first = run_fetcher(env, source, str(tmp_path), "--expect", wrong)
    again = run_fetcher(env, source, str(tmp_path), "--expect", wrong)

    line = (
        f"{KEY}.dtype: checkpoint is AWQ (config.json quantization_config.quant_method=awq) "
        "but the stack says bfloat16; set dtype: awq"
    )
    for run in (first, again):
        assert run.returncode == 8, run.stderr
        assert run.stdout == "" and "Traceback" not in run.stderr
        assert run.events()[-1]["message"] == line
        assert run.events()[-1]["exit_code"] == 8
    folder = Path(model_dir(source, str(tmp_path)))
    assert not folder.exists()  # no manifest, no model folder
    assert hub.downloads(AWQ, "model.safetensors") == 0  # failed before the weights

    fixed = _expect(quant_method="awq_marlin", torch_dtype="float16", weight_bytes=1048576)
    ok = run_fetcher(env, source, str(tmp_path), "--expect", fixed)

    assert ok.returncode == 0, ok.stderr
    assert hub.downloads(AWQ, "config.json") == 1  # verified once, reused by every rerun
    assert hub.downloads(AWQ, "model.safetensors") == 1
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["expect"]["quant_method"] == "awq_marlin"

    # The same checks hold on a folder that is already complete, which stays untouched.
    present = run_fetcher(env, source, str(tmp_path), "--expect", wrong)
    assert present.returncode == 8 and present.events()[-1]["message"] == line
    assert (folder / MANIFEST_NAME).exists()


def test_weight_bytes_outside_the_tolerance_fail_naming_the_key(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    source = f"hf://{REPO}@{COMMIT}"
    weights = 512 * 1024 + 3 * 1024 * 1024  # the two shards of the tiny model

    half = run_fetcher(env, source, str(tmp_path), "--expect", _expect(weight_bytes=weights * 2))
    near = run_fetcher(
        env,
        source,
        str(tmp_path),
        "--expect",
        _expect(weight_bytes=int(weights * 1.1), weight_bytes_tolerance=0.15, quant_method=None),
    )

    assert half.returncode == 8, half.stderr
    message = half.events()[-1]["message"]
    assert message.startswith(f"{KEY}: checkpoint weights are {weights} bytes, 0.50x the ")
    assert near.returncode == 0, near.stderr


def test_lora_adapter_rank_above_max_lora_rank_fails(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    adapter = "acme/tiny-lora"
    hub.repos[adapter] = FakeRepo(
        files={
            "adapter_config.json": json.dumps({"r": 64, "lora_alpha": 16}).encode(),
            "adapter_model.safetensors": blob(64 * 1024, 50),
        },
        lfs={"adapter_model.safetensors"},
        revisions={"main": COMMIT},
    )
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    source = f"hf://{adapter}@{COMMIT}"
    key = "modelfleet:models[llama-8b].adapters[support]"

    low = run_fetcher(
        env, source, str(tmp_path), "--expect", json.dumps({"key": key, "max_lora_rank": 16})
    )
    high = run_fetcher(
        env, source, str(tmp_path), "--expect", json.dumps({"key": key, "max_lora_rank": 64})
    )

    assert low.returncode == 8, low.stderr
    assert low.events()[-1]["message"] == (
        f"{key}.max_lora_rank: adapter rank is 64 (adapter_config.json r) but the engine is "
        "started with --max-lora-rank 16; set max_lora_rank: 64"
    )
    assert high.returncode == 0, high.stderr


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"quant_method": null}', "--expect: key: Field required"),
        (
            '{"key": "k", "weight_bytes": -1}',
            "--expect: weight_bytes: Input should be greater than 0",
        ),
        (
            '{"key": "k", "torch_dtyp": "bfloat16"}',
            "--expect: torch_dtyp: Extra inputs are not permitted",
        ),
        ("not json", "--expect: document: Invalid JSON"),
    ],
)
def test_malformed_expectation_is_a_usage_error(
    fetcher_env: dict[str, str], tmp_path: Path, document: str, message: str
) -> None:
    run = run_fetcher(fetcher_env, f"hf://{REPO}@{COMMIT}", str(tmp_path), "--expect", document)
    assert run.returncode == 2
    assert run.events()[-1]["message"].startswith(message), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_quantization_spellings_vllm_treats_as_equal() -> None:
    from fetcher.expect import Expectation, quant_matches

    # auto_awq.py / auto_gptq.py override_quantization_method (vLLM 0.31.0 lines 263 / 214).
    assert quant_matches("awq", "awq_marlin") and quant_matches("AWQ", "marlin")
    assert quant_matches("gptq", "gptq_marlin") and not quant_matches("gptq", "awq")
    assert quant_matches("compressed-tensors", "compressed_tensors")
    assert not quant_matches("fp8", "awq")
    assert Expectation(key="k").checks_quant_method is False
    assert (
        Expectation.model_validate_json('{"key": "k", "weight_bytes_tolerance": null}').tolerance
        == 0.15
    )
    assert Expectation(key="k", quant_method=None).checks_quant_method is True


def test_a_stated_fp8_checkpoint_accepts_the_serialized_fp8_formats(tmp_path: Path) -> None:
    """`checkpoint: fp8` on a repository the catalog does not know expects `fp8`; RedHatAI's
    FP8 repositories say `compressed-tensors` (8-bit float weights), and vLLM serves them as
    FP8 from their own config, so they match. An int4 compressed-tensors one does not."""
    import json as _json

    from fetcher.errors import ExpectationError
    from fetcher.expect import Expectation, check

    def config(bits: int, kind: str) -> None:
        group = {"weights": {"num_bits": bits, "type": kind, "strategy": "channel"}}
        quant = {"quant_method": "compressed-tensors", "config_groups": {"group_0": group}}
        (tmp_path / "config.json").write_text(
            _json.dumps({"torch_dtype": "bfloat16", "quantization_config": quant})
        )

    expect = Expectation(key="modelfleet:models[m]", quant_method="fp8")
    config(8, "float")
    check(expect, str(tmp_path), 0)
    config(4, "int")
    with pytest.raises(ExpectationError, match=r"modelfleet:models\[m\]\.dtype"):
        check(expect, str(tmp_path), 0)


# Revisions -----------------------------------------------------------------------------------

NEW_COMMIT = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"


def test_a_moved_branch_is_fetched_again_reusing_unchanged_files(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    source = f"hf://{REPO}@main"
    first = run_fetcher(env, source, str(tmp_path))
    assert first.returncode == 0, first.stderr
    repo = hub.repos[REPO]
    repo.revisions["main"] = NEW_COMMIT
    repo.files["tokenizer_config.json"] = b'{"model_max_length": 131072}'

    moved = run_fetcher(env, source, str(tmp_path))

    assert moved.returncode == 0, moved.stderr
    assert moved.last_line == first.last_line  # the path the task definition uses stays
    folder = Path(moved.last_line)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["resolved_revision"] == NEW_COMMIT
    assert (folder / "tokenizer_config.json").read_bytes() == repo.files["tokenizer_config.json"]
    assert hub.downloads(REPO, "model-00002-of-00002.safetensors") == 1  # re-verified, kept
    resolved = [e for e in moved.events() if e["event"] == "resolved"]
    assert resolved and resolved[0]["commit"] == NEW_COMMIT
    done = moved.events()[-1]
    assert done["event"] == "done" and done["resolved_revision"] == NEW_COMMIT


def test_a_branch_folder_is_used_as_is_when_the_hub_cannot_be_reached(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    first = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    assert first.returncode == 0, first.stderr
    unreachable = {**env, "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there

    offline = run_fetcher(unreachable, f"hf://{REPO}@main", str(tmp_path), timeout=60)
    never_fetched = run_fetcher(unreachable, f"hf://{REPO}@other", str(tmp_path), timeout=60)

    assert offline.returncode == 0, offline.stderr
    assert offline.last_line == first.last_line
    warning = [e for e in offline.events() if e["event"] == "resolve-failed"]
    assert warning and COMMIT in warning[0]["message"]
    assert never_fetched.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in never_fetched.events()[-1]["message"]
