"""The upload-time check runs in a child process with memory and time limits."""

from __future__ import annotations

import pytest

from controlplane.pdp.opa_engine import opa_available
from controlplane.pdp.sandbox import check_in_sandbox

HEADER = "package caracal.authz\n"
#: regorus would try to allocate ~24 GB: in the service's own process this aborts it.
ALLOCATES_24_GB = HEADER + "result := count(numbers.range(1, 1000000000)) > 0\n"
#: Literals 12 brackets deep take regorus 0.05-0.1 s each to parse: thirty pass the 1 s
#: parse limit well within the check's deadline.
SLOW_TO_PARSE = (
    HEADER
    + "result := true\n"
    + "".join(f"x{i} := " + "[" * 12 + "1" + "]" * 12 + "\n" for i in range(30))
)
#: Four hundred of them run far past the 10 s deadline.
PAST_THE_DEADLINE = (
    HEADER
    + "result := true\n"
    + "".join(f"x{i} := " + "[" * 12 + "1" + "]" * 12 + "\n" for i in range(400))
)


def test_good_and_bad_modules_are_told_apart() -> None:
    assert check_in_sandbox(HEADER + "result := true\n") is None
    error = check_in_sandbox(HEADER + "result := {\n")
    assert error is not None and error.message.startswith("policy.rego:3:")


@pytest.mark.parametrize(
    "opa",
    [False, pytest.param(True, marks=pytest.mark.skipif(not opa_available(), reason="no OPA"))],
    ids=["regorus", "with-opa"],
)
def test_memory_exhaustion_kills_only_the_child_and_the_next_check_works(opa: bool) -> None:
    error = check_in_sandbox(ALLOCATES_24_GB, opa=opa)
    assert error is not None and "memory" in error.message
    assert check_in_sandbox(HEADER + "result := false\n", opa=opa) is None


def test_slow_parses_and_overruns_are_refused() -> None:
    error = check_in_sandbox(SLOW_TO_PARSE)
    assert error is not None and "parsing took" in error.message
    error = check_in_sandbox(PAST_THE_DEADLINE)
    assert error is not None and "longer than 10 s" in error.message
    assert check_in_sandbox(HEADER + "result := true\n") is None
