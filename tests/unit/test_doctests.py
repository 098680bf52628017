"""The examples in module docstrings run."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["nmlsim.units", "nmlsim.equations", "nmlsim.builder"])
def test_module_examples(module):
    res = doctest.testmod(importlib.import_module(module))
    assert res.attempted > 0 and res.failed == 0
