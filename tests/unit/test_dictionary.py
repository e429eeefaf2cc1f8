"""WordNet look-ups (micro/dictionary.py) and the canonicaliser's reading of a shape word by its
definitions. No text-encoder weights are loaded: reading definitions needs only the vocabulary."""

from __future__ import annotations

import copy

import pytest

from reelforge.micro.canonical import PromptCanonicaliser
from reelforge.micro.dictionary import definitions, wordnet_root
from reelforge.micro.text import TextEncoder
from reelforge.micro.vocabulary import SYNONYMS, Vocabulary


def _canonicaliser(vocabulary: Vocabulary = SYNONYMS) -> PromptCanonicaliser:
    # The encoder loads its weights on first use, which reading definitions never makes.
    return PromptCanonicaliser(TextEncoder(), vocabulary)


def test_definitions_come_most_common_sense_first_without_examples() -> None:
    assert (wordnet_root() / "data.noun").is_file()
    senses = definitions("coin")
    assert senses[0] == "a flat metal piece (usually a disc) used as money"
    # The usage examples after the definition are dropped.
    assert all(";" not in sense and '"' not in sense for sense in definitions("ball"))
    # Regular plurals: "-s" first ("cubes" is no "cub"), then "-es" ("boxes").
    for plural, singular in (("bricks", "brick"), ("cubes", "cube"), ("boxes", "box")):
        assert definitions(plural) == definitions(singular) != ()
    assert definitions("cones")[0] == "any cone-shaped artifact"
    assert definitions("Kaiser Roll") == definitions("kaiser_roll") != ()
    assert definitions("xyzzy") == definitions("") == definitions("  ") == ()


def test_the_index_is_searched_from_its_first_entry_to_its_last() -> None:
    """Every entry is found by the binary search, first and last included, and a word
    between two entries is not."""
    lines = (wordnet_root() / "index.noun").read_bytes().decode("latin-1").splitlines()
    lemmas = [line.split(" ", 1)[0] for line in lines if line and not line.startswith(" ")]
    for lemma in (lemmas[0], lemmas[1], lemmas[len(lemmas) // 2], lemmas[-2], lemmas[-1]):
        assert definitions(lemma) != (), lemma
    assert definitions(lemmas[len(lemmas) // 2] + "qqq") == ()


def test_every_shape_word_the_dictionary_reads_is_read_right_when_left_out() -> None:
    """Leave-one-out over the vocabulary: each one-word shape synonym, removed from it, is
    read back through its definitions as its own shape, or not at all."""
    answered = 0
    for shape, words in SYNONYMS["shape"].items():
        for word in words:
            if " " in word or "-" in word:
                continue
            vocabulary = copy.deepcopy(SYNONYMS)
            vocabulary["shape"][shape] = tuple(w for w in words if w != word)
            reading = _canonicaliser(vocabulary).shape_by_definition(word)
            assert reading in (shape, None), word
            answered += reading is not None
    # 19 of the 28 are read; a dictionary that read none would pass the loop above.
    assert answered >= 15


@pytest.mark.parametrize(
    ("word", "shape"),
    [
        ("coin", "circle"),
        ("wheel", "circle"),
        ("button", "circle"),
        ("brick", "square"),
        ("envelope", "square"),
        ("carton", "square"),
        ("arrow", "triangle"),
        ("prism", "triangle"),
    ],
)
def test_everyday_objects_are_read_by_their_definitions(word: str, shape: str) -> None:
    assert _canonicaliser().shape_by_definition(word) == shape


def test_a_definition_naming_two_shapes_or_none_reads_nothing() -> None:
    canonicaliser = _canonicaliser()
    # "small circular or square cases of dough with savory fillings"
    assert canonicaliser.shape_by_definition("ravioli") is None
    assert canonicaliser.shape_by_definition("sofa") is None
    assert canonicaliser.shape_by_definition("xyzzy") is None
