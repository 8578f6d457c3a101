"""Which files of a model repository vLLM needs: exactly the weight set its default loader reads.

The weight rules follow vLLM 0.31.0, ``vllm/model_executor/model_loader/default_loader.py``,
``DefaultModelLoader._prepare_weights`` (read from the vllm-0.31.0 wheel on PyPI), with the
default flags (``--load-format auto``, ``--config-format auto``):

1. ``load_format == "auto"`` becomes ``"mistral"`` when any file matches
   ``consolidated*.safetensors`` (``list_filtered_repo_files``, on the local folder vLLM is
   given), and then only ``consolidated*.safetensors`` are read, filtered by
   ``consolidated.safetensors.index.json`` when present. The config follows: with
   ``params.json`` beside them, ``get_config`` picks ``config_format="mistral"``
   (``vllm/transformers_utils/config.py``, ``is_mistral_model_repo``). A Mistral-style
   repository that also holds sharded HF weights (Mistral-7B-Instruct-v0.3: 14.5 GB of each)
   therefore has its ``model-*.safetensors`` never read: they are not fetched.
2. Otherwise ``"hf"``: the patterns ``*.safetensors``, ``*.bin``, ``*.pt`` are tried in this
   order on the top level of the folder and the first that matches anything is the weight set
   (``.pth`` is never read). Safetensors are then filtered by ``model.safetensors.index.json``
   when present (``weight_utils.filter_duplicate_safetensors_files``: files absent from its
   ``weight_map`` are not read, a file it names that is missing is an error); pickled weights by
   ``weight_utils.filter_files_not_needed_for_inference`` (training leftovers).

The index filter needs the index's content, so ``select_files`` names the index that governs
(``WeightRule.index``) and the fetcher applies ``weights_in_index`` once it has that file.
Because only the chosen set is fetched, vLLM pointed at the fetched folder takes the same
branch again and reads every weight file in it: the selection is a fixed point.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

# Top-level configuration, tokenizer and code files, by pattern rather than by name: they weigh
# kilobytes, new architectures bring new ones (video_preprocessor_config.json, tekken.json,
# adapter_config.json for LoRA adapters), and a missing one fails vLLM at start-up.
_SUPPORT_PATTERNS = (
    "*.json",  # config, generation config, tokenizer, processor, weight index, adapter config
    "*.jinja",  # chat templates
    "*.txt",  # merges.txt, vocab.txt
    "*.model",  # sentencepiece tokenizers
    "tokenizer.model.*",  # Mistral's tokenizer.model.v3
    "*.tiktoken",
    "*.py",  # custom modelling code for --trust-remote-code models
)
_INDEXES = (
    "*.safetensors.index.json",
    "*.bin.index.json",
    "*.pt.index.json",
    "*.pth.index.json",
)
HF_INDEX = "model.safetensors.index.json"  # transformers' SAFE_WEIGHTS_INDEX_NAME
MISTRAL_INDEX = "consolidated.safetensors.index.json"
# weight_utils.filter_files_not_needed_for_inference (vLLM 0.31.0): matched with endswith.
_NOT_FOR_INFERENCE = (
    "training_args.bin",
    "optimizer.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


@dataclass(frozen=True)
class WeightRule:
    """The branch of vLLM's loader a folder takes: ``mistral``, ``safetensors`` or ``pickled``."""

    kind: str
    patterns: tuple[str, ...]  # the weight files, by pattern on top-level names
    index: str | None  # the index whose weight_map filters them, if the folder has it


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(path, pattern) for pattern in patterns)


def is_weight(path: str) -> bool:
    """A file vLLM's default loader may read as weights (top level, by extension)."""
    return "/" not in path and path.endswith(WEIGHT_SUFFIXES) and not _not_for_inference(path)


def is_support(path: str) -> bool:
    """A configuration, tokenizer or code file (kilobytes to megabytes), by its name."""
    return _matches(path.rsplit("/", 1)[-1], _SUPPORT_PATTERNS)


def _not_for_inference(path: str) -> bool:
    return path.endswith(_NOT_FOR_INFERENCE)


def weight_rule(top: Sequence[str]) -> WeightRule | None:
    """What vLLM 0.31.0 reads among the top-level names ``top``; None if it finds no weights."""
    names = set(top)
    if any(fnmatchcase(p, "consolidated*.safetensors") for p in names):
        index = MISTRAL_INDEX if MISTRAL_INDEX in names else None
        return WeightRule("mistral", ("consolidated*.safetensors",), index)
    if any(fnmatchcase(p, "*.safetensors") for p in names):
        index = HF_INDEX if HF_INDEX in names else None
        return WeightRule("safetensors", ("*.safetensors",), index)
    for pattern in ("*.bin", "*.pt"):
        if any(fnmatchcase(p, pattern) and not _not_for_inference(p) for p in names):
            return WeightRule("pickled", (pattern,), None)
    return None


def select_files(
    paths: Iterable[str], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[str]:
    """The subset of repository ``paths`` to download, sorted (before the index filter).

    Top-level files only by default (repositories keep other formats in folders such as
    ``original/``): the weight set of ``weight_rule`` plus its index, and configuration,
    tokenizer and code files; other weight formats (GGUF, ONNX, Flax, TensorFlow, ``.pth``) and
    the indexes of sets that are not read are never taken. ``include`` globs add any path
    (folders too), ``exclude`` globs remove, both on the full path.
    """
    all_paths = sorted(set(paths))
    top = [p for p in all_paths if "/" not in p]
    rule = weight_rule(top)
    chosen = {p for p in top if _matches(p, _SUPPORT_PATTERNS) and not _matches(p, _INDEXES)}
    if rule is not None:
        chosen.update(p for p in top if _matches(p, rule.patterns) and not _not_for_inference(p))
        if rule.index is not None:
            chosen.add(rule.index)
        if rule.kind == "pickled":
            # Their indexes are small and transformers-shaped tools read them; vLLM does not.
            chosen.update(p for p in top if _matches(p, _INDEXES[1:]))
    chosen.update(p for p in all_paths if _matches(p, include))
    return sorted(p for p in chosen if not _matches(p, exclude))


def weights_in_index(index_json: bytes) -> set[str]:
    """The file names an index's ``weight_map`` points to (what vLLM reads of the set)."""
    data = json.loads(index_json)
    weight_map = data["weight_map"]
    if not isinstance(weight_map, dict):
        raise ValueError("weight_map is not an object")
    return {str(name) for name in weight_map.values()}


def has_weights(paths: Iterable[str]) -> bool:
    return any(is_weight(p) for p in paths)


def weight_total(files: Iterable[tuple[str, int]]) -> int:
    """Total size of the weight files among ``(path, size)`` pairs."""
    return sum(size for path, size in files if is_weight(path))
