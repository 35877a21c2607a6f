"""What a language model is asked about a row, and how its answer becomes class probabilities.

Shared by the local model (llm.py), which scores each label name after the prompt, and the endpoint
(endpoint.py), which reads the first answer token's top log-probabilities or parses the answer's text.
The label names are listed in the prompt, with underscores shown as spaces ("Social_Preventive_Medicine"
reads "Social Preventive Medicine"); multiple choice lists the options and answers with their letter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainables.data import Examples

DEFAULT_NOUN = "category"  # what a class is called in the prompt; "subject" for MedMCQA's subjects


def display_name(label: str) -> str:
    return " ".join(str(label).replace("_", " ").split())


@dataclass(frozen=True)
class PromptBuilder:
    """The user message for row i of `examples`: the instruction, the row, the label names (or, for multiple
    choice, the options, whose letters are the label names)."""

    label_names: tuple[str, ...]
    noun: str = DEFAULT_NOUN

    def message(self, examples: Examples, i: int) -> str:
        if examples.options is not None:
            options = "\n".join(f"{letter}. {option}" for letter, option in
                                zip(self.label_names, examples.options[i], strict=True))
            return (f"Answer this multiple-choice question.\n\nQuestion: {examples.text[i]}\n{options}\n\n"
                    f"Answer with the letter of the correct option only ({', '.join(self.label_names)}).")
        names = ", ".join(display_name(name) for name in self.label_names)
        return (f"Which {self.noun} does this text belong to? The {self.noun}s: {names}.\n\n"
                f"Text:\n{examples.text[i]}\n\nAnswer with the {self.noun}'s name only.")


def probs_from_logprobs(scores: np.ndarray) -> np.ndarray:
    """(rows, labels) log-probabilities of each label's answer -> probabilities over the labels: the model's
    own probabilities renormalised over the label set (a softmax of the log-probabilities), in float64."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z&]+", " ", display_name(text).lower()).split())


def parse_answer(text: str, label_names: Sequence[str]) -> int | None:
    """The label a free-text answer names, or None. An answer equal to a name (case, underscores and
    punctuation aside) names it; otherwise the names found in it as whole words, leaving out a name found
    only inside a longer one ("Medicine" in "Social Preventive Medicine"), must be exactly one."""
    answer = _normal(text)
    names = [_normal(name) for name in label_names]
    if answer in names:
        return names.index(answer)
    found = [i for i, name in enumerate(names) if name and re.search(rf"(?<![0-9a-z]){re.escape(name)}(?![0-9a-z])",
                                                                      answer)]
    longest = [i for i in found if not any(j != i and names[i] in names[j] for j in found)]
    return longest[0] if len(longest) == 1 else None


def label_position(text: str, label: str) -> int | None:
    """Where in `text` the label's name begins (matched as parse_answer matches it: case, underscores and
    punctuation between its words aside), or None."""
    words = _normal(label).split()
    if not words:
        return None
    pattern = r"(?<![0-9a-z])" + r"[^0-9a-z&]+".join(map(re.escape, words)) + r"(?![0-9a-z])"
    found = re.search(pattern, text, flags=re.IGNORECASE)
    return found.start() if found else None


def first_token_probs(top: Sequence[tuple[str, float]], label_names: Sequence[str]) -> np.ndarray | None:
    """The first answer token's top log-probabilities [(token, logprob), ...] -> probabilities over the labels.

    A token counts for every label whose name (as _normal writes it) begins with the token's text, its
    probability split evenly among them ("Ph" begins Pharmacology and Physiology: half each). Labels no top
    token reaches share what the top tokens leave (1 - their total probability) evenly: each is at most that
    likely, and none is ruled out. Then the labels' shares are renormalised. None when no top token begins
    any label (the caller falls back on the answer's text)."""
    names = [_normal(name) for name in label_names]
    mass = np.zeros(len(names))
    total = 0.0
    for token, logprob in top:
        p = math.exp(logprob)
        total += p
        piece = _normal(token)
        matches = [i for i, name in enumerate(names) if piece and name.startswith(piece)]
        for i in matches:
            mass[i] += p / len(matches)
    if not mass.any():
        return None
    unreached = mass == 0
    if unreached.any():
        mass[unreached] = max(0.0, 1.0 - total) / unreached.sum()
    return mass / mass.sum()
