"""Which files of a model repository vLLM needs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
_SAFETENSORS_INDEX = ("*.safetensors.index.json",)
_PICKLED_INDEX = ("*.bin.index.json", "*.pt.index.json", "*.pth.index.json")
_SAFETENSORS = ("*.safetensors", *_SAFETENSORS_INDEX)
_PICKLED = ("*.bin", "*.pt", "*.pth", *_PICKLED_INDEX)
# Training leftovers that share the weights' extensions; vLLM skips them too.
_NOT_WEIGHTS = frozenset(
    {
        "training_args.bin",
        "optimizer.bin",
        "optimizer.pt",
        "scheduler.pt",
        "scaler.pt",
        "rng_state.pth",
    }
)


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(path, pattern) for pattern in patterns)


def _is_weight(path: str) -> bool:
    return path.endswith((".safetensors", ".bin", ".pt", ".pth")) and path not in _NOT_WEIGHTS


def select_files(
    paths: Iterable[str], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[str]:
    """The subset of repository ``paths`` to download, sorted.

    Only top-level files are taken by default (repositories keep other formats in folders such
    as ``original/``): safetensors weights, and configuration, tokenizer and code files;
    ``.bin``/``.pt``/``.pth`` weights only when there is no safetensors file at all. Other
    weight formats (GGUF, ONNX, Flax, TensorFlow) are never taken.
    ``include`` globs add any path (folders too), ``exclude`` globs remove, both on the full path.
    """
    all_paths = sorted(set(paths))
    top = [p for p in all_paths if "/" not in p]
    has_safetensors = any(fnmatchcase(p, "*.safetensors") for p in top)
    weights, other_index = (
        (_SAFETENSORS, _PICKLED_INDEX) if has_safetensors else (_PICKLED, _SAFETENSORS_INDEX)
    )
    chosen = {
        p
        for p in top
        if (_matches(p, _SUPPORT_PATTERNS) and not _matches(p, other_index))
        or (_matches(p, weights) and p not in _NOT_WEIGHTS)
    }
    chosen.update(p for p in all_paths if _matches(p, include))
    return sorted(p for p in chosen if not _matches(p, exclude))


def has_weights(paths: Iterable[str]) -> bool:
    return any(_is_weight(p.rsplit("/", 1)[-1]) for p in paths)
