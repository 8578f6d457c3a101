"""Which files of a model repository vLLM needs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

# Top-level files that vLLM (and transformers' tokenizers it uses) reads besides the weights.
_SUPPORT_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "chat_template.json",
        "chat_template.jinja",
        "preprocessor_config.json",
        "processor_config.json",
        # LoRA adapters (vLLM --lora-modules) next to adapter_model.safetensors.
        "adapter_config.json",
        # Mistral-format checkpoints (--tokenizer-mode mistral / --config-format mistral).
        "params.json",
        "tekken.json",
    }
)
_SUPPORT_PATTERNS = (
    "tokenizer.model*",  # sentencepiece, including Mistral's tokenizer.model.v3
    "*.tiktoken",
    "*.py",  # custom modelling code for --trust-remote-code models; tiny
)
_SAFETENSORS = ("*.safetensors", "*.safetensors.index.json")
_PICKLED = ("*.bin", "*.pt", "*.pth", "*.bin.index.json", "*.pt.index.json")
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
    as ``original/``): safetensors weights and their index, config, tokenizer and generation
    config; ``.bin``/``.pt``/``.pth`` weights only when there is no safetensors file at all.
    ``include`` globs add any path (folders too), ``exclude`` globs remove, both on the full path.
    """
    all_paths = sorted(set(paths))
    top = [p for p in all_paths if "/" not in p]
    has_safetensors = any(fnmatchcase(p, "*.safetensors") for p in top)
    weights = _SAFETENSORS if has_safetensors else _PICKLED
    chosen = {
        p
        for p in top
        if p in _SUPPORT_FILES
        or _matches(p, _SUPPORT_PATTERNS)
        or (_matches(p, weights) and p not in _NOT_WEIGHTS)
    }
    chosen.update(p for p in all_paths if _matches(p, include))
    return sorted(p for p in chosen if not _matches(p, exclude))


def has_weights(paths: Iterable[str]) -> bool:
    return any(_is_weight(p.rsplit("/", 1)[-1]) for p in paths)
