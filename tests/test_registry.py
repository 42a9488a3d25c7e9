import pytest

from fermix.errors import FermixError
from fermix.registry import BACKBONES, DATASETS, METHODS, Registry


@pytest.mark.parametrize(
    ("registry", "name"),
    [(r, n) for r in (METHODS, DATASETS, BACKBONES) for n in r.names()],
)
def test_every_registered_target_imports(registry, name):
    assert callable(registry.get(name))
    assert registry.describe(name)


def test_unknown_name_lists_choices_and_suggests_the_closest():
    with pytest.raises(FermixError, match=r"unknown method `ermm`.*Did you mean `erm`"):
        METHODS.get("ermm")


def test_register_adds_an_entry_and_refuses_a_conflicting_one():
    registry = Registry("thing", {})
    registry.register("x", "fermix.errors:FermixError", "an example")
    assert registry.get("x") is FermixError
    registry.register("x", "fermix.errors:FermixError")  # same target again: fine
    with pytest.raises(FermixError, match="already registered"):
        registry.register("x", "fermix.cli:main")
