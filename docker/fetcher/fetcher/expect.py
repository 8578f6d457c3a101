"""``--expect JSON``: check that the checkpoint is what the stack's plan assumed, before any GPU.

The plan (modelfleet) computes one expectation per model and per LoRA adapter source and passes
it to the pre-warm runs and to the fetcher init containers::

    {"key": "modelfleet:models[llama-8b]", "quant_method": null, "torch_dtype": "bfloat16",
     "weight_bytes": 16060522496, "weight_bytes_tolerance": 0.15, "max_lora_rank": null}

Every field but ``key`` is optional; a field that is absent is not checked. ``quant_method``
``null`` is a check (the checkpoint must not be quantized); ``torch_dtype`` and
``max_lora_rank`` ``null`` are not. A mismatch raises ``ExpectationError`` (exit code 8) with one
line that names the stack key and what would fix it, and the completion manifest is not written.

What vLLM 0.31.0 reads, and so what is compared:

- Quantization: ``config.json`` ``quantization_config`` (or the same key in its ``text_config``),
  else ``compression_config`` (compressed-tensors), else ``hf_quant_config.json`` (ModelOpt
  0.29 and before): ``vllm/transformers_utils/config.py`` (``get_config``, "ModelOpt 0.29.0 and
  before saves the quantization config in a separate hf_quant_config.json") and
  ``vllm/model_executor/model_loader/weight_utils.py`` (``get_quant_config``).
- Equal spellings: names are compared lower-cased (vLLM lower-cases ``quant_method`` in
  ``auto_awq.py``/``auto_gptq.py`` ``override_quantization_method``) with ``_`` and ``-`` alike
  (the checkpoint says ``compressed-tensors``, people write ``compressed_tensors``). An AWQ
  checkpoint (``quant_method: awq``) is served by ``awq``, ``awq_marlin``, ``auto_awq`` and
  ``marlin``, a GPTQ one by ``gptq``, ``gptq_marlin``, ``auto_gptq`` and ``marlin``
  (``auto_awq.py`` lines 263-286, ``auto_gptq.py`` lines 214-232): those are equal here too.
- dtype: ``config.json`` ``torch_dtype``, or ``dtype`` (transformers 5 renamed it), or the same
  in ``text_config``; ``half`` is ``float16`` and ``float`` is ``float32`` as in vLLM's
  ``_STR_DTYPE_TO_TORCH_DTYPE`` (``vllm/config/model.py``).
- LoRA rank: ``adapter_config.json`` ``r`` must be at most ``--max-lora-rank``
  (``vllm/lora/peft_helper.py``: "LoRA rank ... is greater than max_lora_rank" fails the load).
- Weight bytes: the sizes of the weight files fetched (those vLLM reads, see selection.py).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fetcher.errors import ExitCode, ExpectationError, FetchError

_DEFAULT_TOLERANCE = 0.15

# Serving names that load a checkpoint whose quant_method is the key.
_SERVES = {
    "awq": {"awq", "awq-marlin", "auto-awq", "marlin"},
    "gptq": {"gptq", "gptq-marlin", "auto-gptq", "marlin"},
}
_DTYPE_ALIASES = {"half": "float16", "float": "float32", "bf16": "bfloat16", "fp16": "float16"}


class Expectation(BaseModel):
    """The ``--expect`` document. Unknown fields are refused so that a typo is not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=300)
    quant_method: str | None = Field(default=None, min_length=1, max_length=64)
    torch_dtype: str | None = Field(default=None, min_length=1, max_length=32)
    weight_bytes: int | None = Field(default=None, gt=0)
    weight_bytes_tolerance: float | None = Field(default=None, ge=0.0, le=1.0)
    max_lora_rank: int | None = Field(default=None, gt=0)

    @property
    def tolerance(self) -> float:
        """``weight_bytes_tolerance``, 0.15 when absent or null."""
        if self.weight_bytes_tolerance is None:
            return _DEFAULT_TOLERANCE
        return self.weight_bytes_tolerance

    @property
    def checks_quant_method(self) -> bool:
        # Absent: not checked. Present and null: the checkpoint must be unquantized.
        return "quant_method" in self.model_fields_set


def parse_expectation(text: str) -> Expectation:
    """Validate ``--expect``; a bad document is a usage error (exit 2) naming the field."""
    try:
        return Expectation.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise FetchError(f"--expect: {where}: {first['msg']}", ExitCode.USAGE) from None


def _norm_quant(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _norm_dtype(name: str) -> str:
    value = name.strip().lower().removeprefix("torch.")
    return _DTYPE_ALIASES.get(value, value)


def quant_matches(checkpoint: str, expected: str) -> bool:
    have, want = _norm_quant(checkpoint), _norm_quant(expected)
    return have == want or want in _SERVES.get(have, set())


def fp8_scheme(method: str, quant: dict[str, Any]) -> bool:
    """A serialized FP8 checkpoint under another method name: compressed-tensors with 8-bit
    float weights in every group (RedHatAI's FP8 repositories), ModelOpt's FP8, or FBGEMM's.

    A stack that states `checkpoint: fp8` for a repository the catalog does not know expects
    `fp8`; vLLM 0.31.0 serves all of these as FP8 from their own config, so they match it.
    """
    name = _norm_quant(method)
    if name == "fbgemm-fp8":
        return True
    if name == "modelopt":
        inner = quant.get("quantization")
        return isinstance(inner, dict) and str(inner.get("quant_algo", "")).upper() == "FP8"
    if name != "compressed-tensors":
        return False
    groups = quant.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        return False
    for group in groups.values():
        weights = group.get("weights") if isinstance(group, dict) else None
        if not (
            isinstance(weights, dict)
            and weights.get("num_bits") == 8
            and weights.get("type") == "float"
        ):
            return False
    return True


def _read_json(folder: str, name: str) -> dict[str, Any] | None:
    path = os.path.join(folder, name)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot read {name} of the checkpoint: {exc}") from exc
    return data if isinstance(data, dict) else None


def _quant_config(config: dict[str, Any], folder: str) -> tuple[str, dict[str, Any]] | None:
    """(where it was found, the quantization config) as vLLM 0.31.0 finds it, or None."""
    text = config.get("text_config")
    for where, holder, field in (
        ("config.json quantization_config", config, "quantization_config"),
        ("config.json text_config.quantization_config", text, "quantization_config"),
        ("config.json compression_config", config, "compression_config"),
    ):
        if isinstance(holder, dict) and isinstance(holder.get(field), dict):
            return where, holder[field]
    separate = _read_json(folder, "hf_quant_config.json")
    if separate is not None:
        return "hf_quant_config.json", separate
    return None


def _quant_method(quant: dict[str, Any]) -> str:
    method = quant.get("quant_method")
    if isinstance(method, str) and method:
        return method
    # ModelOpt's hf_quant_config.json: {"quantization": {"quant_algo": "FP8", ...}}.
    inner = quant.get("quantization")
    if isinstance(inner, dict) and isinstance(inner.get("quant_algo"), str):
        return "modelopt"
    return "unknown"


def _torch_dtype(config: dict[str, Any]) -> str | None:
    for holder in (config, config.get("text_config")):
        if isinstance(holder, dict):
            for field in ("torch_dtype", "dtype"):
                value = holder.get(field)
                if isinstance(value, str) and value:
                    return value
    return None


def check(expect: Expectation, folder: str, weight_bytes: int) -> None:
    """Compare the fetched checkpoint in ``folder`` with ``expect``; raise on the first mismatch.

    ``weight_bytes`` is the total size of the weight files fetched. Reads ``config.json``,
    ``hf_quant_config.json`` and ``adapter_config.json`` only (kilobytes).
    """
    key = expect.key
    config = _read_json(folder, "config.json")
    precision = expect.checks_quant_method or expect.torch_dtype is not None
    if precision and config is None and _read_json(folder, "adapter_config.json") is None:
        raise ExpectationError(
            f"{key}: cannot check the checkpoint's precision: it has no config.json"
        )
    if config is not None and expect.checks_quant_method:
        found = _quant_config(config, folder)
        says = expect.quant_method or expect.torch_dtype or "unquantized"
        if found is not None:
            where, quant = found
            method = _quant_method(quant)
            matches = expect.quant_method is not None and (
                quant_matches(method, expect.quant_method)
                or (_norm_quant(expect.quant_method) == "fp8" and fp8_scheme(method, quant))
            )
            if not matches:
                raise ExpectationError(
                    f"{key}.dtype: checkpoint is {method.upper()} ({where}.quant_method="
                    f"{method}) but the stack says {says}; set dtype: {method}"
                )
        elif expect.quant_method is not None:
            have = _norm_dtype(_torch_dtype(config) or "bfloat16")
            raise ExpectationError(
                f"{key}.dtype: checkpoint is not quantized (config.json has no "
                f"quantization_config, torch_dtype={have}) but the stack says {says}; set "
                f"checkpoint: {have}, or point the source at a {says} checkpoint"
            )
    if config is not None and expect.torch_dtype is not None:
        found_dtype = _torch_dtype(config)
        if found_dtype is not None and _norm_dtype(found_dtype) != _norm_dtype(expect.torch_dtype):
            have = _norm_dtype(found_dtype)
            raise ExpectationError(
                f"{key}.checkpoint: checkpoint is {have} (config.json torch_dtype={found_dtype}) "
                f"but the stack says {expect.torch_dtype}; set checkpoint: {have}"
            )
    if expect.weight_bytes is not None:
        tolerance = expect.tolerance
        low = expect.weight_bytes * (1 - tolerance)
        high = expect.weight_bytes * (1 + tolerance)
        if not low <= weight_bytes <= high:
            ratio = weight_bytes / expect.weight_bytes
            raise ExpectationError(
                f"{key}: checkpoint weights are {weight_bytes} bytes, {ratio:.2f}x the "
                f"{expect.weight_bytes} the plan sized the download, load and health window "
                f"for (tolerance ±{tolerance:.0%}); set the model's "
                "checkpoint format (or parameter count) in the stack to what the repository holds"
            )
    if expect.max_lora_rank is not None:
        adapter = _read_json(folder, "adapter_config.json")
        if adapter is None:
            raise ExpectationError(
                f"{key}: max_lora_rank given but the source has no adapter_config.json; "
                "is it a LoRA adapter?"
            )
        rank = adapter.get("r")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
            raise ExpectationError(f"{key}: adapter_config.json has no valid rank r ({rank!r})")
        if rank > expect.max_lora_rank:
            raise ExpectationError(
                f"{key}.max_lora_rank: adapter rank is {rank} (adapter_config.json r) but the "
                f"engine is started with --max-lora-rank {expect.max_lora_rank}; set "
                f"max_lora_rank: {_next_rank(rank)}"
            )


# vllm/config/lora.py MaxLoRARanks (0.31.0): the values --max-lora-rank accepts.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _next_rank(rank: int) -> int:
    return next((r for r in LORA_RANKS if r >= rank), rank)
