"""Compile a definition into immutable state objects, collecting every problem found.

Validation and compilation are one pass: each field is checked where it is compiled, and
problems are recorded with their path (``/States/Charge/Next: ...``) instead of raised, so
a definition with many mistakes is reported in one exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._choice import compile_condition, compile_rule, parse_wait_timestamp
from ._fields import (
    ROOT,
    Catcher,
    Retrier,
    catchers,
    jsonata_assign,
    opt_path,
    path_assign,
    retriers,
)
from ._jsonata import compile_expression, is_expression
from ._jsonpath import JsonPath, compile_path
from ._template import (
    JsonataTemplate,
    PathTemplate,
    compile_dynamic,
    compile_jsonata,
    compile_jsonpath_template,
)

__all__ = ("Catcher", "Program", "Retrier", "State", "compile_program")

STATE_TYPES = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_JSONPATH_IO = {"InputPath", "OutputPath"}
_ALLOWED: dict[str, tuple[set[str], set[str], set[str]]] = {
    # type: (both languages, JSONPath only, JSONata only)
    "Pass": (_FLOW | {"Assign"}, _JSONPATH_IO | {"ResultPath", "Parameters", "Result"}, {"Output"}),
    "Task": (
        _FLOW | {"Resource", "Retry", "Catch", "Assign", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
        _JSONPATH_IO | {"ResultPath", "Parameters", "ResultSelector", "TimeoutSecondsPath", "HeartbeatSecondsPath"},
        {"Arguments", "Output"},
    ),
    "Choice": ({"Choices", "Default", "Assign"}, _JSONPATH_IO, {"Output"}),
    "Wait": (_FLOW | {"Seconds", "Timestamp", "Assign"}, _JSONPATH_IO | {"SecondsPath", "TimestampPath"}, {"Output"}),
    "Succeed": (set(), _JSONPATH_IO, {"Output"}),
    "Fail": ({"Error", "Cause"}, {"ErrorPath", "CausePath"}, set()),
    "Parallel": (
        _FLOW | {"Branches", "Retry", "Catch", "Assign"},
        _JSONPATH_IO | {"ResultPath", "Parameters", "ResultSelector"},
        {"Arguments", "Output"},
    ),
    "Map": (
        _FLOW
        | {
            "ItemProcessor",
            "Iterator",
            "ItemSelector",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "MaxConcurrency",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "Label",
            "Retry",
            "Catch",
            "Assign",
        },
        _JSONPATH_IO
        | {
            "ItemsPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCountPath",
        },
        {"Items", "Output"},
    ),
}


@dataclass(slots=True)
class State:
    """A compiled state. Fields that do not apply to a type keep their defaults."""

    name: str
    type: str
    where: str
    jsonata: bool
    next: str | None = None
    end: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)
    # JSONPath input/output processing; None means the field was null.
    input_path: JsonPath | None = ROOT
    output_path: JsonPath | None = ROOT
    result_path: JsonPath | None = ROOT
    parameters: PathTemplate | None = None
    result_selector: PathTemplate | None = None
    assign_path: PathTemplate | None = None
    has_result: bool = False
    result: Any = None
    # JSONata
    arguments: JsonataTemplate | None = None
    output: JsonataTemplate | None = None
    assign_ata: JsonataTemplate | None = None
    # Task
    resource: str = ""
    timeout: Any = None  # number, JsonPath, or JsonataTemplate
    heartbeat: Any = None
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    # Choice: (rule or condition, next, assign_path, assign_ata); a JSONPath rule returns a
    # bool, a JSONata condition an awaitable bool (it may be evaluated off the event loop)
    choices: tuple[tuple[Callable[..., Any], str, Any, Any], ...] = ()
    default: str | None = None
    # Wait: ("seconds"|"timestamp", value kind, value)
    wait: tuple[str, Any] | None = None
    # Fail: each is ("lit", v) | ("tmpl", PathTemplate) | ("ata", JsonataTemplate)
    error: tuple[str, Any] | None = None
    cause: tuple[str, Any] | None = None
    # Parallel / Map
    branches: tuple[Program, ...] = ()
    processor: Program | None = None
    distributed: bool = False
    items_path: JsonPath | None = ROOT
    items: Any = None  # JsonataTemplate or None
    item_selector: Any = None  # PathTemplate or JsonataTemplate
    max_concurrency: Any = 0
    tolerated_count: Any = None
    tolerated_percentage: Any = None
    batcher: Mapping[str, Any] | None = None
    reader: Any = None  # (resource, arguments template, max items) of an ItemReader
    # Whether anything in the state may read the context object ($$ or $states.context).
    uses_context: bool = True


@dataclass(slots=True)
class Program:
    """A compiled set of states: the machine itself, a Parallel branch or a Map processor."""

    start: str
    states: dict[str, State]
    definition: Mapping[str, Any]
    query_language: str


def compile_program(definition: Any, where: str, problems: list[str], query_language: str, top: bool) -> Program:
    """Compile ``definition`` (a machine, a branch or an item processor)."""
    if type(definition) is not dict:
        problems.append(f"{where or '/'}: must be an object")
        return Program("", {}, {}, query_language)
    ql = definition.get("QueryLanguage", query_language) if top else query_language
    if ql not in ("JSONPath", "JSONata"):
        problems.append(f'{where}/QueryLanguage: must be "JSONPath" or "JSONata"')
        ql = "JSONPath"
    allowed = {"StartAt", "States", "Comment"}
    if top:
        allowed |= {"Version", "TimeoutSeconds", "QueryLanguage"}
    else:
        allowed |= {"ProcessorConfig"}
    for key in definition:
        if key not in allowed:
            problems.append(f"{where}/{key}: field not allowed here")
    start = definition.get("StartAt")
    states_raw = definition.get("States")
    if type(start) is not str:
        problems.append(f"{where}/StartAt: required, must be a state name")
        start = ""
    if type(states_raw) is not dict or not states_raw:
        problems.append(f"{where}/States: required, must be a non-empty object")
        return Program(start, {}, definition, ql)
    states: dict[str, State] = {}
    for name, raw in states_raw.items():
        if len(name) > 80:
            problems.append(f"{where}/States/{name}: state names are at most 80 characters")
        states[name] = _compile_state(name, raw, f"{where}/States/{name}", problems, ql)
    timeout = definition.get("TimeoutSeconds") if top else None
    if timeout is not None and (type(timeout) is not int or timeout < 1):
        problems.append(f"{where}/TimeoutSeconds: must be a positive integer")
    if start and start not in states:
        problems.append(f'{where}/StartAt: no state named "{start}"')
    _check_transitions(states, problems)
    if start in states:
        _check_reachable(start, states, problems)
    return Program(start, states, definition, ql)


def _targets(state: State) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if state.next is not None:
        out.append(("Next", state.next))
    for i, (_rule, nxt, _a, _b) in enumerate(state.choices):
        out.append((f"Choices/{i}/Next", nxt))
    if state.default is not None:
        out.append(("Default", state.default))
    for i, catcher in enumerate(state.catch):
        out.append((f"Catch/{i}/Next", catcher.next))
    return out


def _check_transitions(states: dict[str, State], problems: list[str]) -> None:
    for state in states.values():
        for fld, target in _targets(state):
            if target not in states:
                problems.append(f'{state.where}/{fld}: no state named "{target}"')


def _check_reachable(start: str, states: dict[str, State], problems: list[str]) -> None:
    seen = {start}
    todo = [start]
    while todo:
        for _fld, target in _targets(states[todo.pop()]):
            if target in states and target not in seen:
                seen.add(target)
                todo.append(target)
    for name, state in states.items():
        if name not in seen:
            problems.append(f"{state.where}: state is not reachable from StartAt")


def _compile_state(name: str, raw: Any, where: str, problems: list[str], ql: str) -> State:
    if type(raw) is not dict:
        problems.append(f"{where}: must be an object")
        return State(name, "Pass", where, False, end=True)
    typ = raw.get("Type")
    if typ not in STATE_TYPES:
        problems.append(f"{where}/Type: must be one of {', '.join(STATE_TYPES)}, got {typ!r}")
        return State(name, "Pass", where, False, end=True, raw=raw)
    lang = raw.get("QueryLanguage", ql)
    if lang not in ("JSONPath", "JSONata"):
        problems.append(f'{where}/QueryLanguage: must be "JSONPath" or "JSONata"')
        lang = ql
    elif ql == "JSONata" and lang == "JSONPath":
        problems.append(f"{where}/QueryLanguage: a state cannot use JSONPath when the machine uses JSONata")
    jsonata = lang == "JSONata"
    st = State(name, typ, where, jsonata, raw=raw)
    text = json.dumps(raw)
    st.uses_context = "$$" in text or (jsonata and "context" in text)
    both, path_only, ata_only = _ALLOWED[typ]
    for key in raw:
        if key in _COMMON or key in both:
            continue
        if (key in path_only and not jsonata) or (key in ata_only and jsonata):
            continue
        if key in path_only or key in ata_only:
            lang_name = "JSONata" if jsonata else "JSONPath"
            problems.append(f"{where}/{key}: field not allowed in a {lang_name} state")
        else:
            problems.append(f"{where}/{key}: field not allowed in a {typ} state")
    if typ in ("Pass", "Task", "Wait", "Parallel", "Map"):
        _flow(st, raw, where, problems)
    elif ("Next" in raw or "End" in raw) and typ != "Choice":
        problems.append(f"{where}: a {typ} state cannot have Next or End")
    if jsonata:
        if "Output" in raw:
            st.output = compile_jsonata(raw["Output"], problems, "Output", where)
        if "Arguments" in raw:
            st.arguments = compile_jsonata(raw["Arguments"], problems, "Arguments", where)
        if "Assign" in raw:
            st.assign_ata = jsonata_assign(raw["Assign"], where, problems)
    else:
        st.input_path = opt_path(raw, "InputPath", where, problems)
        st.output_path = opt_path(raw, "OutputPath", where, problems)
        st.result_path = opt_path(raw, "ResultPath", where, problems, reference=True)
        for fld in ("Parameters", "ResultSelector"):
            if fld in raw:
                tmpl = compile_jsonpath_template(raw[fld], problems, f"{where}/{fld}")
                setattr(st, "parameters" if fld == "Parameters" else "result_selector", tmpl)
        if "Assign" in raw:
            st.assign_path = path_assign(raw["Assign"], where, problems)
    if "Retry" in raw:
        st.retry = retriers(raw["Retry"], f"{where}/Retry", problems)
    if "Catch" in raw:
        st.catch = catchers(raw["Catch"], f"{where}/Catch", problems, jsonata)
    compiler = _TYPE_COMPILERS.get(typ)
    if compiler is not None:
        compiler(st, raw, where, problems, ql)
    return st


def _flow(st: State, raw: Mapping[str, Any], where: str, problems: list[str]) -> None:
    has_next, end = "Next" in raw, raw.get("End")
    if has_next and end:
        problems.append(f"{where}: a state cannot have both Next and End")
    elif not has_next and end is not True:
        problems.append(f'{where}: a {st.type} state must have Next or "End": true')
    if has_next:
        if type(raw["Next"]) is not str:
            problems.append(f"{where}/Next: must be a state name")
        else:
            st.next = raw["Next"]
    st.end = end is True and not has_next
    if "End" in raw and type(end) is not bool:
        problems.append(f"{where}/End: must be true or false")


# ------------------------------------------------------------------ type-specific parts


def _number_or_dynamic(
    raw: Mapping[str, Any],
    key: str,
    st: State,
    where: str,
    problems: list[str],
    integer: bool = True,
    minimum: float = 0,
) -> Any:
    """A numeric field that may come as a literal, a ``*Path`` or a JSONata expression."""
    path_key = key + "Path"
    if key in raw and path_key in raw:
        problems.append(f"{where}: {key} and {path_key} are mutually exclusive")
    if key in raw:
        value = raw[key]
        if st.jsonata and is_expression(value):
            try:
                return ("ata", compile_expression(value))
            except ValueError as exc:
                problems.append(f"{where}/{key}: {exc}")
                return None
        ok = type(value) is int or (not integer and type(value) is float)
        if not ok or value < minimum:
            kind = "an integer" if integer else "a number"
            problems.append(f"{where}/{key}: must be {kind} >= {minimum}")
            return None
        return ("lit", value)
    if path_key in raw:
        value = raw[path_key]
        try:
            return ("path", compile_path(value)) if type(value) is str else None
        except ValueError as exc:
            problems.append(f"{where}/{path_key}: {exc}")
    return None


def _task(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    resource = raw.get("Resource")
    if type(resource) is not str or not resource:
        problems.append(f"{where}/Resource: required, must be a string")
    else:
        st.resource = resource
    st.timeout = _number_or_dynamic(raw, "TimeoutSeconds", st, where, problems, minimum=1)
    st.heartbeat = _number_or_dynamic(raw, "HeartbeatSeconds", st, where, problems, minimum=1)


def _choice(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    if "Next" in raw or "End" in raw:
        problems.append(f"{where}: a Choice state cannot have Next or End")
    rules = raw.get("Choices")
    if type(rules) is not list or not rules:
        problems.append(f"{where}/Choices: required, a non-empty array")
        rules = []
    out = []
    for i, rule in enumerate(rules):
        w = f"{where}/Choices/{i}"
        if type(rule) is not dict:
            problems.append(f"{w}: must be an object")
            continue
        nxt = rule.get("Next")
        if type(nxt) is not str:
            problems.append(f"{w}/Next: required, must be a state name")
            nxt = ""
        assign_path: Any = None
        assign_ata: Any = None
        if st.jsonata:
            for key in rule:
                if key not in ("Condition", "Next", "Assign", "Output", "Comment"):
                    problems.append(f"{w}/{key}: field not allowed in a JSONata choice rule")
            fn: Callable[..., Any] = compile_condition(rule.get("Condition"), w, problems)
            if "Assign" in rule:
                assign_ata = jsonata_assign(rule["Assign"], w, problems)
            if "Output" in rule:
                assign_path = compile_jsonata(rule["Output"], problems, "Output", w)
        else:
            body = {k: v for k, v in rule.items() if k != "Assign"}
            fn = compile_rule(body, w, problems, top=True)
            if "Assign" in rule:
                assign_path = path_assign(rule["Assign"], w, problems)
        out.append((fn, nxt, assign_path, assign_ata))
    st.choices = tuple(out)
    if "Default" in raw:
        if type(raw["Default"]) is not str:
            problems.append(f"{where}/Default: must be a state name")
        else:
            st.default = raw["Default"]


def _wait(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    keys = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in raw]
    if len(keys) != 1:
        problems.append(
            f"{where}: a Wait state needs exactly one of Seconds, SecondsPath, "
            f"Timestamp, TimestampPath (got {', '.join(keys) or 'none'})"
        )
        st.wait = ("seconds", ("lit", 0))
        return
    key = keys[0]
    value = raw[key]
    if st.jsonata and is_expression(value):
        try:
            expr = compile_expression(value)
        except ValueError as exc:
            problems.append(f"{where}/{key}: {exc}")
            expr = None
        st.wait = (key.lower(), ("ata", expr))
    elif key == "Seconds":
        if type(value) is not int or value < 0:
            problems.append(f"{where}/Seconds: must be a non-negative integer")
        st.wait = ("seconds", ("lit", value))
    elif key == "Timestamp":
        if parse_wait_timestamp(value) is None:
            problems.append(f"{where}/Timestamp: must be an RFC 3339 timestamp")
        st.wait = ("timestamp", ("lit", value))
    else:
        try:
            path = compile_path(value) if type(value) is str else None
        except ValueError as exc:
            problems.append(f"{where}/{key}: {exc}")
            path = None
        if path is None:
            problems.append(f"{where}/{key}: must be a JSONPath")
        st.wait = (key.lower(), ("path", path))


def _fail(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    for key in ("Error", "Cause"):
        if key in raw and key + "Path" in raw:
            problems.append(f"{where}: {key} and {key}Path are mutually exclusive")
        value: tuple[str, Any] | None = None
        if key in raw:
            v = raw[key]
            if st.jsonata and is_expression(v):
                value = ("ata", compile_jsonata(v, problems, key, where))
            elif type(v) is not str:
                problems.append(f"{where}/{key}: must be a string")
            else:
                value = ("lit", v)
        elif key + "Path" in raw:
            v = raw[key + "Path"]
            if type(v) is not str:
                problems.append(f"{where}/{key}Path: must be a JSONPath or intrinsic function")
            else:
                value = ("tmpl", compile_dynamic(v, key + "Path", problems, f"{where}/{key}Path"))
        if key == "Error":
            st.error = value
        else:
            st.cause = value


def _parallel(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    branches = raw.get("Branches")
    if type(branches) is not list or not branches:
        problems.append(f"{where}/Branches: required, a non-empty array")
        return
    st.branches = tuple(
        compile_program(b, f"{where}/Branches/{i}", problems, ql if not st.jsonata else "JSONata", False)
        for i, b in enumerate(branches)
    )


def _map(st: State, raw: Mapping[str, Any], where: str, problems: list[str], ql: str) -> None:
    key = "ItemProcessor" if "ItemProcessor" in raw else "Iterator"
    if key not in raw:
        problems.append(f"{where}: a Map state needs ItemProcessor (or Iterator)")
        return
    if "ItemProcessor" in raw and "Iterator" in raw:
        problems.append(f"{where}: ItemProcessor and Iterator are mutually exclusive")
    proc = raw[key]
    config = proc.get("ProcessorConfig", {}) if type(proc) is dict else {}
    mode = config.get("Mode", "INLINE") if type(config) is dict else "INLINE"
    if mode not in ("INLINE", "DISTRIBUTED"):
        problems.append(f"{where}/{key}/ProcessorConfig/Mode: must be INLINE or DISTRIBUTED")
    st.distributed = mode == "DISTRIBUTED"
    sub_ql = "JSONata" if st.jsonata else ql
    if type(proc) is dict and "QueryLanguage" in proc:
        sub_ql = proc["QueryLanguage"]
    st.processor = compile_program(proc, f"{where}/{key}", problems, sub_ql, False)
    if st.jsonata:
        if "Items" in raw:
            items = raw["Items"]
            if not is_expression(items) and type(items) is not list:
                problems.append(f"{where}/Items: must be an array or a JSONata expression")
            st.items = compile_jsonata(items, problems, "Items", where)
        if "ItemSelector" in raw:
            st.item_selector = compile_jsonata(raw["ItemSelector"], problems, "ItemSelector", where)
    else:
        if "ItemsPath" in raw:
            st.items_path = opt_path(raw, "ItemsPath", where, problems)
        for fld in ("ItemSelector", "Parameters"):
            if fld in raw:
                st.item_selector = compile_jsonpath_template(raw[fld], problems, f"{where}/{fld}")
        st.parameters = None  # Parameters in a Map is the legacy ItemSelector
    if "ItemSelector" in raw and "Parameters" in raw:
        problems.append(f"{where}: ItemSelector and Parameters are mutually exclusive")
    st.max_concurrency = _number_or_dynamic(raw, "MaxConcurrency", st, where, problems) or ("lit", 0)
    st.tolerated_count = _number_or_dynamic(raw, "ToleratedFailureCount", st, where, problems)
    st.tolerated_percentage = _number_or_dynamic(raw, "ToleratedFailurePercentage", st, where, problems, integer=False)
    pct = st.tolerated_percentage
    if pct and pct[0] == "lit" and pct[1] > 100:
        problems.append(f"{where}/ToleratedFailurePercentage: must be between 0 and 100")
    if "ItemBatcher" in raw:
        batcher = raw["ItemBatcher"]
        if type(batcher) is not dict:
            problems.append(f"{where}/ItemBatcher: must be an object")
        else:
            st.batcher = _item_batcher(batcher, st, f"{where}/ItemBatcher", problems)
    if "ItemReader" in raw:
        st.reader = _item_reader(raw["ItemReader"], st, f"{where}/ItemReader", problems)


def _item_batcher(batcher: Mapping[str, Any], st: State, where: str, problems: list[str]) -> dict[str, Any]:
    """ItemBatcher: batch size limits (literal, path or JSONata) and the BatchInput."""
    allowed = {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
    if not st.jsonata:
        allowed |= {"MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath"}
    for key in batcher:
        if key not in allowed:
            problems.append(f"{where}/{key}: field not allowed in an ItemBatcher")
    out: dict[str, Any] = {
        "max_items": _number_or_dynamic(batcher, "MaxItemsPerBatch", st, where, problems, minimum=1),
        "max_bytes": _number_or_dynamic(batcher, "MaxInputBytesPerBatch", st, where, problems, minimum=1),
        "input": None,
    }
    if "BatchInput" in batcher:
        value = batcher["BatchInput"]
        out["input"] = (
            compile_jsonata(value, problems, "ItemBatcher/BatchInput", where)
            if st.jsonata
            else compile_jsonpath_template(value, problems, f"{where}/BatchInput")
        )
    return out


def _item_reader(value: Any, st: State, where: str, problems: list[str]) -> Any:
    """ItemReader: a resource the host calls to fetch the items (S3 objects and the like)."""
    if type(value) is not dict or type(value.get("Resource")) is not str:
        problems.append(f"{where}: must be an object with a Resource")
        return None
    allowed = {"Resource", "ReaderConfig", "Arguments" if st.jsonata else "Parameters"}
    for key in value:
        if key not in allowed:
            problems.append(f"{where}/{key}: field not allowed in an ItemReader")
    if st.jsonata:
        args: Any = compile_jsonata(value.get("Arguments", {}), problems, "ItemReader/Arguments", where)
    else:
        args = compile_jsonpath_template(value.get("Parameters", {}), problems, f"{where}/Parameters")
    config = value.get("ReaderConfig", {})
    max_items = config.get("MaxItems") if type(config) is dict else None
    if max_items is not None and (type(max_items) is not int or max_items < 0):
        problems.append(f"{where}/ReaderConfig/MaxItems: must be a non-negative integer")
        max_items = None
    return (value["Resource"], args, max_items)


_TYPE_COMPILERS: dict[str, Callable[[State, Mapping[str, Any], str, list[str], str], None]] = {
    "Task": _task,
    "Choice": _choice,
    "Wait": _wait,
    "Fail": _fail,
    "Parallel": _parallel,
    "Map": _map,
}
