"""Numbers in the text. PubMed RCT comes in two forms: numbers kept, or every number replaced by `@`
(the `_numbers_replaced_with_at_sign` release and the hub copy `armanc/pubmed-rct20k`). A model trained
on the `@` form must see `@` when it labels raw text too: the form is detected at download, carried in
the model's config and applied to raw text at prediction time.
"""
from __future__ import annotations

import re
from typing import Iterable

AT, DIGITS = "@", "digits"
FORMS = (AT, DIGITS)
# A run of digits with its decimal or thousands separators: "0.05" -> "@", "IL-6" -> "IL-@", "6MWD" -> "@MWD",
# "95 % CI 1.1-2.3" -> "@ % CI @-@" (as in the published `@` files).
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
DIGIT = re.compile(r"\d")
AT_NUMBER = re.compile(r"(?<!\w)@|@(?!\w)")  # an `@` standing for a number, not one inside an e-mail address


def at_sign(text: str) -> str:
    """`text` with every number replaced by `@`."""
    return NUMBER.sub(AT, text)


def detect(texts: Iterable[str], max_digit_share: float = 0.001, min_at_share: float = 0.05) -> str:
    """'@' when (almost) no sentence holds a digit and many hold an `@` for a number; else 'digits'.

    PubMed 20k in the `@` form: digits in no sentence, `@` in about half of them."""
    n = with_digit = with_at = 0
    for t in texts:
        n += 1
        with_digit += DIGIT.search(t) is not None
        with_at += AT_NUMBER.search(t) is not None
    if n and with_digit <= max_digit_share * n and with_at >= min_at_share * n:
        return AT
    return DIGITS


def rewrite(texts: list[str], form: str) -> list[str]:
    """The model's input for raw `texts`: numbers replaced by `@` for a model trained on that form."""
    if form not in FORMS:
        raise ValueError(f"number form '{form}' is not one of {FORMS}")
    return [at_sign(t) for t in texts] if form == AT else texts
