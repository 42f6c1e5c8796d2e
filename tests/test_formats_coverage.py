"""Every export format has an FP32 export+parity test AND an INT8 quantize+gate test (and a
broken-front-end test), and a quantizer backend. Read from the test files' source (no heavy
imports): adding a format to FORMATS without tests fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from hai_edge.bundle import ModelFormat
from hai_edge.export.formats import FORMATS
from hai_edge.quantize._backend import QUANT_BACKENDS
from hai_edge.quantize.config import SUPPORTED_SCHEMES

HERE = Path(__file__).parent


def _parametrized_ids(test_file: str, test_name: str, argname: str = "fmt") -> list[str]:
    """The literal values a test is parametrized with over ``argname`` (a list constant)."""
    tree = ast.parse((HERE / test_file).read_text())
    consts = {
        t.id: ast.literal_eval(node.value)
        for node in tree.body if isinstance(node, ast.Assign)
        for t in node.targets if isinstance(t, ast.Name)
        and isinstance(node.value, (ast.List, ast.Tuple))
    }
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == test_name:
            for dec in node.decorator_list:
                if (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"
                        and isinstance(dec.args[0], ast.Constant) and dec.args[0].value == argname):
                    values = dec.args[1]
                    return list(consts[values.id] if isinstance(values, ast.Name)
                                else ast.literal_eval(values))
            raise AssertionError(f"{test_file}::{test_name} is not parametrized over {argname}")
    raise AssertionError(f"{test_file} has no test {test_name}")


def test_every_format_has_fp32_and_int8_tests() -> None:
    formats = sorted(FORMATS)
    assert _parametrized_ids("test_export_fp32.py", "test_export_passes_parity") == formats
    assert _parametrized_ids("test_quantize.py", "test_int8_gate_per_format") == formats
    assert _parametrized_ids("test_quantize.py", "test_broken_frontend_is_caught") == formats


def test_every_format_has_a_quantizer_and_a_scheme() -> None:
    fmts = {row.format for row in FORMATS.values()}
    assert fmts == set(QUANT_BACKENDS) == set(SUPPORTED_SCHEMES)
    assert all(isinstance(f, ModelFormat) for f in fmts)


def test_the_coverage_check_can_fail(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(AssertionError, match="has no test"):
        _parametrized_ids("test_quantize.py", "test_no_such_test")
