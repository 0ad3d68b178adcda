"""Definition validation: every problem reported at once, each with its path."""

from __future__ import annotations

from typing import Any

import pytest

from wayline.runtime.asl import AslDefinitionError, StateMachine


def problems(definition: Any) -> tuple[str, ...]:
    with pytest.raises(AslDefinitionError) as info:
        StateMachine(definition)
    assert isinstance(info.value, ValueError)
    for p in info.value.problems:
        assert p in str(info.value)
    return info.value.problems


def test_unknown_next_is_reported_with_its_path() -> None:
    found = problems({"StartAt": "Charge", "States": {
        "Charge": {"Type": "Pass", "Next": "Chrage"}}})
    assert '/States/Charge/Next: no state named "Chrage"' in found


def test_many_problems_in_one_exception() -> None:
    found = problems({"StartAt": "Nope", "States": {
        "A": {"Type": "Pass"},
        "B": {"Type": "Task", "End": True},
        "C": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.x", "End": True},
        "D": {"Type": "Bogus"},
        "E": {"Type": "Pass", "InputPath": "$[", "End": True},
        "F": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}]},
        "G": {"Type": "Task", "Resource": "r", "End": True,
              "Retry": [{"ErrorEquals": ["States.ALL", "X"], "MaxAttempts": -1,
                         "BackoffRate": 0.5}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Missing"}]},
        "H": {"Type": "Succeed", "Next": "A"},
        "I": {"Type": "Pass", "Parameters": {"a.$": "States.Nope($.x)"}, "End": True},
        "J": {"Type": "Pass", "Output": "{% $x %}", "End": True},
    }})
    expected_prefixes = [
        '/StartAt: no state named "Nope"',
        "/States/A: a Pass state must have Next",
        "/States/B/Resource: required",
        "/States/C: a Wait state needs exactly one of",
        "/States/D/Type: must be one of",
        "/States/E/InputPath: invalid JSONPath",
        "/States/F/Choices/0: a choice rule needs exactly one comparison operator",
        "/States/G/Retry/0/ErrorEquals: States.ALL must appear alone",
        "/States/G/Retry/0/MaxAttempts",
        "/States/G/Retry/0/BackoffRate",
        '/States/G/Catch/0/Next: no state named "Missing"',
        "/States/H: a Succeed state cannot have Next or End",
        "/States/I/Parameters/a.$: unknown intrinsic function",
        "/States/J/Output: field not allowed in a JSONPath state",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in found), (prefix, found)


def test_unreachable_state_is_reported() -> None:
    found = problems({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "End": True}, "Orphan": {"Type": "Pass", "End": True}}})
    assert found == ("/States/Orphan: state is not reachable from StartAt",)


def test_nested_paths_are_reported_for_map_and_parallel() -> None:
    found = problems({"StartAt": "M", "States": {
        "M": {"Type": "Map", "ItemProcessor": {"StartAt": "X", "States": {
            "X": {"Type": "Pass", "Next": "Y"}}}, "Next": "P"},
        "P": {"Type": "Parallel", "Branches": [{"StartAt": "Z", "States": {}}], "End": True}}})
    assert '/States/M/ItemProcessor/States/X/Next: no state named "Y"' in found
    assert any(p.startswith("/States/P/Branches/0/States: required") for p in found)


def test_choice_without_default_is_valid_and_jsonata_syntax_is_checked() -> None:
    StateMachine({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True,
                                             "Next": "D"}]},
        "D": {"Type": "Succeed"}}})
    found = problems({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Output": {"x": "{% $states.input. %}"}, "End": True}}})
    assert found[0].startswith("/States/A/Output/x: invalid JSONata expression")


def test_invalid_json_text_and_fields() -> None:
    assert problems("{not json")[0].startswith("/: the definition is not valid JSON")
    found = problems({"StartAt": "A", "Extra": 1, "States": {
        "A": {"Type": "Pass", "End": True, "Resource": "x"}}})
    assert "/Extra: field not allowed here" in found
    assert "/States/A/Resource: field not allowed in a Pass state" in found


def test_result_path_must_be_a_reference_path() -> None:
    found = problems({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "ResultPath": "$.a[*]", "End": True}}})
    assert found[0].startswith("/States/A/ResultPath: must be a reference path")
