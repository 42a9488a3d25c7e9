from __future__ import annotations

import pytest

from fermix.data.label_spaces import (
    ALIASES,
    LABEL_SPACES,
    LabelSpace,
    canonical_name,
    get_label_space,
    map_label,
)
from fermix.errors import FermixError


def test_label_orders_are_the_documented_ones():
    basic7 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
    assert LABEL_SPACES["basic7"].classes == basic7
    assert LABEL_SPACES["basic8"].classes == (*basic7, "contempt")
    assert LABEL_SPACES["mixbasic6"].classes == (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "surprise",
    )
    assert LABEL_SPACES["iemocap4"].classes == ("neutral", "happy", "sad", "angry")
    for key, space in LABEL_SPACES.items():
        assert space.name == key
        assert space.num_classes == len(space.classes) == len(set(space.classes))


def test_index_is_case_insensitive():
    space = get_label_space("basic7")
    assert space.index("Happy") == 1
    assert space.index("ANGER") == 6


def test_index_of_unknown_class_names_the_known_classes():
    with pytest.raises(FermixError, match=r"contempt.*neutral, happy"):
        get_label_space("basic7").index("contempt")


def test_unknown_label_space_lists_known_names():
    with pytest.raises(FermixError, match=r"basic7.*mixbasic6"):
        get_label_space("basic9")


def test_dict_round_trip_is_plain_python():
    space = LABEL_SPACES["mixbasic6"]
    d = space.to_dict()
    assert d == {"name": "mixbasic6", "classes": list(space.classes)}
    assert type(d["classes"]) is list
    assert LabelSpace.from_dict(d) == space


def test_label_space_is_frozen_and_stores_a_tuple():
    space = LabelSpace("x", ["a", "b"])  # type: ignore[arg-type]
    assert space.classes == ("a", "b")
    with pytest.raises(AttributeError):
        space.name = "y"  # type: ignore[misc]


def test_canonical_name_lowercases_and_resolves_aliases():
    assert canonical_name("Happiness") == "happy"
    assert canonical_name(" SADNESS ") == "sad"
    assert canonical_name("angry") == "anger"
    assert canonical_name("Surprised") == "surprise"
    assert canonical_name("fearful") == "fear"
    assert canonical_name("disgusted") == "disgust"
    assert canonical_name("Neutral") == "neutral"
    assert canonical_name("unheard_of") == "unheard_of"
    assert all(v in LABEL_SPACES["basic8"].classes for v in ALIASES.values())


def test_map_label_matches_aliases_on_both_sides():
    assert map_label(LABEL_SPACES["basic7"], "Happiness") == 1
    assert map_label(LABEL_SPACES["mixbasic6"], "happy") == 3
    assert map_label(LABEL_SPACES["iemocap4"], "anger") == 3
    with pytest.raises(FermixError, match="contempt"):
        map_label(LABEL_SPACES["basic7"], "contempt")
