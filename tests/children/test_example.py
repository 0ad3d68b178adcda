"""The runnable example of child workflows, updates and an eternal run says what it claims."""

from __future__ import annotations

from _support import run_example


def test_the_children_updates_and_eternal_run_example_runs() -> None:
    lines = run_example("children_updates_eternal.py")
    assert lines == [
        "order: ['box(tea)', 'box(cup)'] {'total': 19.0}",
        "cart counts: [1, 2, 3, 4, 5, 6, 7]",
        "rejected by the run: item-6 is already in the cart",
        "rejected by the validator: an item is a non-empty string",
        "retried: 8 8",  # the same answer, and the item added once
        "cart history: 7 events, segment 2",  # continued as new after 3 and 6 items
    ]
