"""Prompt canonicalisation: free-form English about the micro world -> the prompt it was trained on.

The micro model follows its canonical prompts ("a red circle moving left on a black
background") every time, and new wording much less often: the pooled sentence embedding it is
conditioned on moves a long way when every word is reworded. `PromptCanonicaliser` reads the
scene out of the prompt word by word instead, and conditions the model on that scene's
canonical prompt:

1. Words (hyphens split them) are matched against `vocabulary.SYNONYMS`, longest entry
   first, so "a golden box rising upward against gray" is read exactly. A background word
   counts only after a background preposition ("on", "against", "atop", ...) when there is
   one, so "a dark blue disc ... on a grey background" is read as gray.
2. A colour word the vocabulary lacks is looked up in a colour-name lexicon
   (`colournames.py`: "cobalt" is a blue, "lavender" a purple), as a phrase and word by word.
3. The subject's last word (before the motion, as an "-ing" word, or the direction or the
   background) is the shape, the words before it the colour. A shape word the vocabulary
   lacks is read by its dictionary definitions (`dictionary.py`, WordNet): the first of its
   noun senses to name a shape in the vocabulary's words decides, if it names one only
   ("coin": "a flat metal piece (usually a disc) used as money").
4. Any other unknown colour or shape word is compared, by its static input embedding in the
   model's own text encoder (all-MiniLM-L6-v2's word-piece embeddings, averaged over the
   word's pieces), with each attribute value's centroid of the same embeddings of its
   synonyms. It is taken when the best centroid is similar enough and ahead of the
   runner-up (`FALLBACK_GATES`): "rhombus" is read as a square.
5. When direction and background are read, the model gets the canonical prompt of the
   scene, a colour or shape not read keeping the prompt's own words in its place ("a glossy
   circle moving left on a black background"), so the model's own reading of that word
   decides. Otherwise (or with no word in the colour's or shape's place) the prompt is
   passed on as written: "a cat sleeping on a sofa" is not the world, and
   `familiarity.py` warns about it.

Why static embeddings, and why the fallback is gated: measured by leave-one-out over the
vocabulary (each synonym classified from the others), the static embeddings' class centroids
beat the pooled embedding of the word alone and nearest-synonym matching (colour 75 % against
67 %, shape 88 % against 79 %). Colour is where the encoder is weakest: it places "lemon"
next to "grape" and "cobalt" next to "sapphire" and "carmine" alike, so a wrong guess would
override a prompt the model might have read right; the gate leaves such words alone, and the
lexicon, which reads 93.9 % of the vocabulary's colour words right, comes first.

Why definitions come before embeddings for shapes: left out of the vocabulary one at a time,
the 28 one-word shape synonyms are read right by both whenever they answer (definitions 19,
embeddings 26, the two together 26), so the vocabulary cannot tell them apart. On 45
everyday objects of plain shape (coin, brick, envelope, sail, prism, ...; none of them a
held-out word or a shape word of the vocabulary), definitions were right in 20 of their 21
answers, embeddings in 23 of 36; definitions first, then embeddings, in 34 of 40
(embeddings first: 27 of 40). Every noun sense may decide, not only the first few: reading
only the first 1, 2, 3 or 5 senses read 9, 12, 15 or 17 of the 28 synonyms rather than 19,
and, with embeddings after them, 30, 32, 34 or 34 of the objects right, never more than 34.
Definitions are not used for colours: they read 35 of the 41 vocabulary colour words they
answer for (85 %), below both the lexicon and the gated embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reelforge.micro.colournames import lexicon_colour
from reelforge.micro.dictionary import definitions, singular_forms
from reelforge.micro.vocabulary import (
    ATTRIBUTES,
    DEFINITION_SHAPE_WORDS,
    SYNONYMS,
    Vocabulary,
)
from reelforge.micro.world import Scene, article

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import torch

    from reelforge.micro.text import TextEncoder

__all__ = [
    "FALLBACK_GATES",
    "PromptCanonicaliser",
    "PromptReading",
]

FALLBACK_GATES: dict[str, tuple[float, float]] = {"colour": (0.30, 0.02), "shape": (0.0, 0.02)}
"""Per attribute, (least cosine similarity to the best centroid, least lead over the
runner-up) for an unknown word to be taken; the gates that keep 90 % precision with the most
coverage, measured leave-one-out over the vocabulary (colour: 55 % of synonyms read, 91 %
right; shape: 94 %, 94 %)."""

# Words that introduce the background; the last one in the prompt starts its phrase.
_BACKGROUND_PREPOSITIONS = frozenset({"on", "against", "atop", "upon", "before", "front"})
# Words never read as an attribute (articles, prepositions, verbs of motion, requests).
_FILLER_WORDS = """a an the of to on in at and with against atop upon before front behind into onto
    from toward towards across along its it is that which moving moves move going goes go
    sliding slides slide gliding travelling traveling heading shifting running rolling
    background backgrounds scene setting surface please make show draw render create
    generate video clip animation of me us small big large little shape object thing one
    single simple plain flat solid coloured colored colour color bright deep pale light
    slowly quickly steadily way direction"""
_FILLER = frozenset(_FILLER_WORDS.split())


@dataclass(frozen=True)
class PromptReading:
    """What the canonicaliser read in one prompt: per attribute its value or None, how
    (`sources`: "word" from the vocabulary, "lexicon" from the colour-name lexicon,
    "dictionary" from a shape word's definitions, "embedding" from the fallback), and the
    prompt's own words in the colour's and the shape's place (`slot_words`), for attributes
    not read."""

    values: dict[str, str | None]
    sources: dict[str, str] = field(default_factory=dict)
    slot_words: dict[str, str] = field(default_factory=dict)

    @property
    def scene(self) -> Scene | None:
        """The scene when every attribute was read."""
        if any(self.values[a] is None for a in ATTRIBUTES):
            return None
        return Scene(**{a: str(self.values[a]) for a in ATTRIBUTES})


class PromptCanonicaliser:
    """Reads colour, shape, direction and background out of a prompt; see the module docstring."""

    def __init__(self, encoder: TextEncoder, vocabulary: Vocabulary = SYNONYMS) -> None:
        self._encoder = encoder
        self._vocabulary = vocabulary
        # (words of the entry) -> (attribute, value); the longest entries are tried first.
        self._entries: dict[tuple[str, ...], tuple[str, str]] = {}
        for attribute, values in vocabulary.items():
            for value, words in values.items():
                for word in words:
                    self._entries[tuple(_words(word))] = (attribute, value)
        self._longest = max(len(key) for key in self._entries)
        # Definitions are read with the vocabulary and the shape words definitions use.
        self._definition_entries = dict(self._entries)
        for shape, words in DEFINITION_SHAPE_WORDS.items():
            for word in words:
                self._definition_entries.setdefault((word,), ("shape", shape))
        self._centroids: dict[str, tuple[list[str], torch.Tensor]] = {}

    def read(self, prompt: str) -> PromptReading:
        """The attributes `prompt` names; unknown words are placed (steps 2 and 3 of the module
        docstring) only when its direction and background were read."""
        words = _words(prompt)
        start = _background_start(words)
        values: dict[str, str | None] = dict.fromkeys(ATTRIBUTES)
        sources: dict[str, str] = {}
        at: dict[str, int] = {}  # where each attribute read was named
        unknown: list[int] = []
        for index, entry in self._scan(words):
            if entry is None:
                if _is_participle(words[index]):
                    at.setdefault("verb", index)
                elif words[index] not in _FILLER:
                    unknown.append(index)
                continue
            attribute, value = entry
            # Outside its phrase a background word (as "dark" in "dark blue") is skipped;
            # the last one wins, as the background is usually named last; the first
            # colour, shape or direction named wins.
            if attribute == "background" and index >= start:
                values[attribute], sources[attribute] = value, "word"
            elif attribute != "background" and values[attribute] is None:
                values[attribute], sources[attribute], at[attribute] = value, "word", index
        # The subject (colour and shape) comes before the motion ("... ball drifting to the
        # left") and the background.
        end = min(at.get("direction", len(words)), at.get("verb", len(words)), start or len(words))
        # Without a direction and a background the prompt is passed on as written, so
        # unknown words are not worth placing.
        if values["direction"] is None or values["background"] is None:
            return PromptReading(values, sources)
        subject = [i for i in unknown if i < end]
        slot_words: dict[str, str] = {}
        if values["shape"] is None and subject:
            head = subject.pop()  # the shape is the subject's last word
            slot_words["shape"] = words[head]
            at["shape"] = head
            values["shape"], how = self._read_shape(words[head])
            if values["shape"] is not None:
                sources["shape"] = how
        colour_candidates = [i for i in subject if i < at.get("shape", end)]
        if values["colour"] is None and colour_candidates:
            slot_words["colour"] = " ".join(words[i] for i in colour_candidates)
            values["colour"], sources["colour"] = self._read_colour(
                [words[i] for i in colour_candidates]
            )
            if values["colour"] is None:
                del sources["colour"]
        return PromptReading(values, sources, slot_words)

    def canonicalise(self, prompt: str, reading: PromptReading | None = None) -> str:
        """The prompt the micro model is best conditioned on for `prompt`: the canonical
        prompt of the scene read, with the prompt's own words for a colour or shape not read;
        `prompt` itself when direction, background or both of those are not read. `reading`
        is `read(prompt)`, for a caller that has it already."""
        reading = self.read(prompt) if reading is None else reading
        values = dict(reading.values)
        if values["direction"] is None or values["background"] is None:
            return prompt
        for attribute in ("colour", "shape"):
            if values[attribute] is None:
                if attribute not in reading.slot_words:
                    return prompt
                values[attribute] = reading.slot_words[attribute]
        colour = str(values["colour"])
        return (
            f"{article(colour)} {colour} {values['shape']} moving {values['direction']} "
            f"on a {values['background']} background"
        )

    def _scan(
        self, words: list[str], entries: Mapping[tuple[str, ...], tuple[str, str]] | None = None
    ) -> Iterator[tuple[int, tuple[str, str] | None]]:
        """`words` matched against the vocabulary (or `entries`), longest entry first:
        (index, (attribute, value)) for each entry found, (index, None) for each word that is
        in none."""
        table = self._entries if entries is None else entries
        index = 0
        while index < len(words):
            for length in range(min(self._longest, len(words) - index), 0, -1):
                entry = table.get(tuple(words[index : index + length]))
                if entry is not None:
                    yield index, entry
                    index += length
                    break
            else:
                yield index, None
                index += 1

    def _read_shape(self, word: str) -> tuple[str | None, str]:
        """The shape an unknown subject word names, and how: by its dictionary definitions,
        else by its embedding's nearest shape, when clearly so."""
        shape = self.shape_by_definition(word)
        if shape is not None:
            return shape, "dictionary"
        guess = self._nearest("shape", word)
        return (guess, "embedding") if guess is not None else (None, "")

    def shape_by_definition(self, word: str) -> str | None:
        """The one shape that the first of `word`'s noun senses to name any shape names, in
        the vocabulary's words or `DEFINITION_SHAPE_WORDS` ("a flat metal piece (usually a
        disc)" -> circle); None when no sense does, or the first that does names two ("small
        circular or square cases of dough")."""
        entries = self._definition_entries
        for definition in definitions(word):
            words = [_singular(w, entries) for w in _words(definition)]
            named = {
                entry[1]
                for _, entry in self._scan(words, entries)
                if entry is not None and entry[0] == "shape"
            }
            if named:
                return named.pop() if len(named) == 1 else None
        return None

    def _read_colour(self, candidates: list[str]) -> tuple[str | None, str]:
        """The world colour the subject's unknown words before its shape name, and how: the
        whole phrase ("cobalt blue"), then each word, in a colour-name lexicon; failing that,
        the first word whose embedding is clearly near one colour's synonyms."""
        phrases = [" ".join(candidates), *candidates] if len(candidates) > 1 else candidates
        for phrase in phrases:
            colour = lexicon_colour(phrase)
            if colour is not None:
                return colour, "lexicon"
        for word in candidates:
            guess = self._nearest("colour", word)
            if guess is not None:
                return guess, "embedding"
        return None, ""

    def _nearest(self, attribute: str, word: str) -> str | None:
        """The value of `attribute` whose synonyms' centroid `word` is nearest, if clearly so
        (`FALLBACK_GATES`)."""
        import torch

        if attribute not in self._centroids:
            vocabulary = self._vocabulary[attribute]
            names = list(vocabulary)
            rows = [self.embed(vocabulary[name]).mean(dim=0) for name in names]
            self._centroids[attribute] = (
                names,
                torch.nn.functional.normalize(torch.stack(rows), dim=-1),
            )
        names, centroids = self._centroids[attribute]
        similarity = centroids @ self.embed([word])[0]
        best, runner_up = similarity.topk(2).values.tolist()
        least, lead = FALLBACK_GATES[attribute]
        if best < least or best - runner_up < lead:
            return None
        return names[int(similarity.argmax())]

    def embed(self, words: tuple[str, ...] | list[str]) -> torch.Tensor:
        """Static input embeddings (N, 384) of `words`, unit length, each the mean over its
        word pieces."""
        return self._encoder.word_embeddings(list(words))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _singular(word: str, entries: Mapping[tuple[str, ...], object]) -> str:
    """`word`, or its singular when only that is an entry ("squares" -> "square", "boxes"
    -> "box"), by the dictionary's rule for plurals."""
    return next((form for form in singular_forms(word) if (form,) in entries), word)


def _is_participle(word: str) -> bool:
    """Whether an unknown word reads as a verb of motion ("drifting", "gliding"): English
    participles end the subject, whatever the verb."""
    return len(word) > 5 and word.endswith("ing")


def _background_start(words: list[str]) -> int:
    """Index of the first word of the background phrase: after the last background
    preposition past the first word; 0 (anywhere) when there is none."""
    for index in range(len(words) - 1, 0, -1):
        if words[index] in _BACKGROUND_PREPOSITIONS:
            return index + 1
    return 0
