"""Free-text column values: plain `user_12`-style ones, or realistic ones from faker.

Both providers draw only from their own random source, so switching `--faker` on changes
the text of the rows and nothing else (same ids, interactions and changes).
"""

from __future__ import annotations

import random
import re
from typing import Any, Protocol

USERNAME_MAX = 50
LOCATION_MAX = 100

CITIES = (
    "Berlin, Germany",
    "Lisbon, Portugal",
    "Austin, USA",
    "Toronto, Canada",
    "Osaka, Japan",
    "Lyon, France",
    "Melbourne, Australia",
    "Nairobi, Kenya",
    "Pune, India",
    "Santiago, Chile",
)


class Values(Protocol):
    """What the table builders need from a provider of text values."""

    def names(self, user_id: int) -> tuple[str, str]: ...
    def username(self, user_id: int, first: str, last: str) -> str: ...
    def email(self, user_id: int, first: str, last: str) -> str: ...
    def location(self) -> str: ...
    def item_name(self, item_id: int) -> str: ...
    def description(self, item_id: int) -> str: ...
    def review_text(self, rating: int) -> str: ...


class PlainValues:
    """Values that say which row they belong to: readable in a failing test's output."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}/values")

    def names(self, user_id: int) -> tuple[str, str]:
        return f"First{user_id}", f"Last{user_id}"

    def username(self, user_id: int, first: str, last: str) -> str:
        return f"user_{user_id}"

    def email(self, user_id: int, first: str, last: str) -> str:
        return f"user_{user_id}@example.com"

    def location(self) -> str:
        return self._rng.choice(CITIES)

    def item_name(self, item_id: int) -> str:
        return f"Item {item_id}"

    def description(self, item_id: int) -> str:
        return f"Description of item {item_id}."

    def review_text(self, rating: int) -> str:
        return f"Rated {rating} out of 5."


class FakerValues:
    """Realistic values; deterministic for a given seed and faker version."""

    def __init__(self, seed: int) -> None:
        try:
            from faker import Faker
        except ImportError as error:
            raise ImportError(
                "--faker needs the faker package: pip install 'personalization-streams[local]'"
            ) from error
        self._fake: Any = Faker("en_US")
        self._fake.seed_instance(seed)

    def names(self, user_id: int) -> tuple[str, str]:
        return self._fake.first_name(), self._fake.last_name()

    def username(self, user_id: int, first: str, last: str) -> str:
        return self._fake.numerify(f"{_handle(first)}.{_handle(last)}##")

    def email(self, user_id: int, first: str, last: str) -> str:
        return f"{_handle(first)}.{_handle(last)}{user_id}@{self._fake.free_email_domain()}"

    def location(self) -> str:
        return f"{self._fake.city()}, {self._fake.country()}"[:LOCATION_MAX]

    def item_name(self, item_id: int) -> str:
        return self._fake.catch_phrase()[:100]

    def description(self, item_id: int) -> str:
        return self._fake.sentence(nb_words=14)

    def review_text(self, rating: int) -> str:
        return self._fake.paragraph(nb_sentences=2)


def _handle(name: str) -> str:
    """A name as it may appear in a username or an email address."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def make_values(seed: int, faker: bool) -> Values:
    return FakerValues(seed) if faker else PlainValues(seed)


class Usernames:
    """Hands out usernames that are unique (the column is UNIQUE) and fit VARCHAR(50).

    A taken candidate gets a numeric suffix; names are never reused, even after a rename,
    so a rename never collides with a row that has not been updated yet.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, candidate: str) -> str:
        name = candidate[:USERNAME_MAX]
        suffix = 1
        while name in self._taken:
            suffix += 1
            tail = f"_{suffix}"
            name = candidate[: USERNAME_MAX - len(tail)] + tail
        self._taken.add(name)
        return name
