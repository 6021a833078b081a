"""``record_of`` builds the same ``PredictionRecord`` as its constructor, only faster."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from instrumentation.store.protocol import PredictionRecord, record_of

VALUES = (
    "p-1",
    "v2",
    1_700_000_000.25,
    "fraud",
    None,
    (0.25, 0.75),
    {"region": "north"},
    "ab" * 16,
    "cd" * 8,
)


@pytest.mark.parametrize(
    "labelled", [(), ("fraud", 1_700_000_060.5)], ids=["unlabelled", "labelled"]
)
def test_a_fast_record_equals_the_constructed_one(labelled: tuple[object, ...]) -> None:
    built = record_of(*VALUES, *labelled)  # type: ignore[arg-type]
    constructed = PredictionRecord(*VALUES, *labelled)  # type: ignore[arg-type]

    assert type(built) is PredictionRecord
    assert built == constructed
    assert repr(built) == repr(constructed)
    assert dataclasses.asdict(built) == dataclasses.asdict(constructed)
    assert built.to_json() == constructed.to_json()


def test_a_fast_record_is_still_frozen() -> None:
    built = record_of(*VALUES)  # type: ignore[arg-type]

    with pytest.raises(dataclasses.FrozenInstanceError):
        built.label = "legit"  # type: ignore[misc]
    assert dataclasses.replace(built, label="legit").label == "legit"


def test_the_builder_names_every_field_in_order() -> None:
    # A field added to the record must be added to the builder too.
    fields = [f.name for f in dataclasses.fields(PredictionRecord)]
    assert list(inspect.signature(record_of).parameters) == fields
