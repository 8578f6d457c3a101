"""pyproject.toml's pytest `filterwarnings` silences exactly pulumi_aws's rename notices.

pytest applies those filters around every test, so the assertions below run under them. Each
test first shows, with every filter off, that this pulumi_aws really emits the text the filter is
written against (a filter that matched nothing would otherwise pass unnoticed).
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest
from pulumi_aws.s3 import _inputs as s3_inputs

# Modules of pulumi_aws that warn when imported, one per wording it uses: the short form
# ("s3.BucketV2 has been deprecated in favor of s3.Bucket") and the type-token form
# ("aws.s3/bucketaclv2.BucketAclV2 has been deprecated in favor of aws.s3/bucketacl.BucketAcl").
RENAMED = [
    "pulumi_aws.s3.bucket_v2",
    "pulumi_aws.s3.bucket_acl_v2",
    "pulumi_aws.ec2.encryption_control",
]


def deprecations_on_import(module: str) -> list[str]:
    """Execute a fresh copy of `module` (the loaded one stays as it is) and return the messages of
    the DeprecationWarnings that the active filters let through."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    # Same package, so its relative imports resolve; a name under pulumi_aws, so the filter's
    # module part applies as it does to the real import.
    copy = importlib.util.spec_from_file_location(f"{module}_filter_probe", spec.origin)
    assert copy is not None and copy.loader is not None
    with warnings.catch_warnings(record=True) as caught:
        copy.loader.exec_module(importlib.util.module_from_spec(copy))
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("module", RENAMED)
def test_pulumi_aws_rename_notices_are_ignored(module: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        unfiltered = deprecations_on_import(module)
    assert unfiltered, f"{module} no longer warns on import: drop or update the filter"
    assert all(" has been deprecated in favor of " in m for m in unfiltered), unfiltered

    assert deprecations_on_import(module) == []


def test_a_deprecated_argument_the_project_would_pass_still_warns() -> None:
    with warnings.catch_warnings(record=True) as caught:
        s3_inputs.BucketAclAccessControlPolicyGrantGranteeArgs(
            type="CanonicalUser", id="0123", display_name="owner"
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any(m.startswith("display_name is deprecated") for m in messages), messages
