"""The client compatibility table: a skipped client shows as skipped, with its reason, never as
a failure; tested on its function and on a run of pytest of its own (pytester, in-process)."""

from __future__ import annotations

import pytest

from tests.support.compatibility import Outcome, result, table

pytest_plugins = ["pytester"]

PASSED, FAILED = Outcome("passed"), Outcome("failed")


def skipped(reason: str) -> Outcome:
    return Outcome("skipped", reason)


@pytest.mark.parametrize(
    ("outcomes", "cell"),
    [
        ([PASSED, PASSED], "works"),
        ([PASSED, FAILED], "FAILS (1/2 passed)"),
        ([skipped("Go not installed")], "skipped: Go not installed"),
        ([skipped("b"), skipped("a"), skipped("b")], "skipped: a; b"),
        ([PASSED, skipped("no ruby")], "works (1 skipped: no ruby)"),
        ([FAILED, skipped("no ruby")], "FAILS (0/1 passed, 1 skipped: no ruby)"),
    ],
)
def test_a_clients_cell(outcomes: list[Outcome], cell: str) -> None:
    assert result(outcomes) == cell


def test_the_table_has_a_row_per_client_in_name_order() -> None:
    rows = table({("js", "SDK v3"): {"t1": PASSED}, ("go", "SDK v2"): {"t2": skipped("no Go")}})
    assert rows == [
        "| client | how | result |",
        "|---|---|---|",
        "| go | SDK v2 | skipped: no Go |",
        "| js | SDK v3 | works |",
    ]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "pytest-xdist"])
def test_a_run_prints_skips_as_skips_with_their_reasons(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makeconftest(
        """
        from tests.support import compatibility


        def pytest_configure(config):
            compatibility.configure(config)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def toolchain():
            pytest.skip("Go not installed: apt-get install -y golang")

        @pytest.mark.client("go", "SDK v2")
        def test_go(toolchain):
            pass

        @pytest.mark.client("ruby", "aws-sdk-s3")
        def test_ruby():
            pytest.skip("ruby not installed")

        @pytest.mark.client("js", "SDK v3")
        def test_js():
            pass

        @pytest.mark.client("js", "SDK v3")
        def test_js_too():
            pass

        @pytest.mark.client("curl", "presigned")
        def test_curl():
            assert False
        """
    )
    run = pytester.runpytest_inprocess("-p", "no:cacheprovider", *workers)
    run.assert_outcomes(passed=2, skipped=2, failed=1)
    run.stdout.fnmatch_lines(
        [
            "*client compatibility (this run)*",
            "| client | how | result |",
            "|---|---|---|",
            "| curl | presigned | FAILS (0/1 passed) |",
            "| go | SDK v2 | skipped: Go not installed: apt-get install -y golang |",
            "| js | SDK v3 | works |",
            "| ruby | aws-sdk-s3 | skipped: ruby not installed |",
        ]
    )
