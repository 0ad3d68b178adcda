"""Fields shared by several state types: paths, Assign, Retry and Catch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._jsonpath import JsonPath, compile_path
from ._template import (
    JsonataTemplate,
    PathTemplate,
    compile_jsonata,
    compile_jsonpath_template,
)

__all__ = ("ROOT", "Catcher", "Retrier", "catchers", "jsonata_assign", "opt_path", "path_assign", "retriers")

ROOT = compile_path("$")


@dataclass(slots=True)
class Retrier:
    """One ``Retry`` entry."""

    errors: tuple[str, ...]
    interval: float = 1.0
    max_attempts: int = 3
    backoff: float = 2.0
    max_delay: float | None = None
    jitter: str = "NONE"


@dataclass(slots=True)
class Catcher:
    """One ``Catch`` entry."""

    errors: tuple[str, ...]
    next: str
    result_path: JsonPath | None = ROOT
    assign_path: PathTemplate | None = None
    assign_ata: JsonataTemplate | None = None
    output: JsonataTemplate | None = None


def opt_path(
    raw: Mapping[str, Any], key: str, where: str, problems: list[str], reference: bool = False
) -> JsonPath | None:
    if key not in raw:
        return ROOT
    value = raw[key]
    if value is None:
        return None
    if type(value) is not str:
        problems.append(f"{where}/{key}: must be a JSONPath string or null")
        return ROOT
    try:
        path = compile_path(value)
    except ValueError as exc:
        problems.append(f"{where}/{key}: {exc}")
        return ROOT
    if reference and (not path.definite or path.root != "$"):
        problems.append(f"{where}/{key}: must be a reference path (fields and indexes under '$'), got {value!r}")
        return ROOT
    return path


def path_assign(value: Any, where: str, problems: list[str]) -> PathTemplate | None:
    if type(value) is not dict:
        problems.append(f"{where}/Assign: must be an object")
        return None
    for key in value:
        var = key[:-2] if key.endswith(".$") else key
        if not var.isidentifier() or var == "states":
            problems.append(f"{where}/Assign/{key}: invalid variable name {var!r}")
    return compile_jsonpath_template(value, problems, f"{where}/Assign")


def jsonata_assign(value: Any, where: str, problems: list[str]) -> JsonataTemplate | None:
    if type(value) is not dict:
        problems.append(f"{where}/Assign: must be an object")
        return None
    for key in value:
        if not key.isidentifier() or key == "states":
            problems.append(f"{where}/Assign/{key}: invalid variable name {key!r}")
    return compile_jsonata(value, problems, "Assign", where)


def _errors_field(entry: Mapping[str, Any], where: str, problems: list[str], last: bool) -> tuple[str, ...]:
    errs = entry.get("ErrorEquals")
    if type(errs) is not list or not errs or not all(type(e) is str for e in errs):
        problems.append(f"{where}/ErrorEquals: required, a non-empty array of error names")
        return ()
    if "States.ALL" in errs and (len(errs) != 1 or not last):
        problems.append(f"{where}/ErrorEquals: States.ALL must appear alone and in the last entry")
    return tuple(errs)


def retriers(value: Any, where: str, problems: list[str]) -> tuple[Retrier, ...]:
    if type(value) is not list:
        problems.append(f"{where}: must be an array")
        return ()
    out = []
    allowed = {
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    }
    for i, entry in enumerate(value):
        w = f"{where}/{i}"
        if type(entry) is not dict:
            problems.append(f"{w}: must be an object")
            continue
        for key in entry:
            if key not in allowed:
                problems.append(f"{w}/{key}: field not allowed in a retrier")
        r = Retrier(_errors_field(entry, w, problems, i == len(value) - 1))
        interval = entry.get("IntervalSeconds", 1)
        if type(interval) is not int or interval < 1:
            problems.append(f"{w}/IntervalSeconds: must be a positive integer")
        else:
            r.interval = float(interval)
        attempts = entry.get("MaxAttempts", 3)
        if type(attempts) is not int or attempts < 0:
            problems.append(f"{w}/MaxAttempts: must be a non-negative integer")
        else:
            r.max_attempts = attempts
        backoff = entry.get("BackoffRate", 2.0)
        if type(backoff) not in (int, float) or backoff < 1.0:
            problems.append(f"{w}/BackoffRate: must be a number >= 1.0")
        else:
            r.backoff = float(backoff)
        if "MaxDelaySeconds" in entry:
            md = entry["MaxDelaySeconds"]
            if type(md) is not int or md < 1:
                problems.append(f"{w}/MaxDelaySeconds: must be a positive integer")
            else:
                r.max_delay = float(md)
        jitter = entry.get("JitterStrategy", "NONE")
        if jitter not in ("FULL", "NONE"):
            problems.append(f'{w}/JitterStrategy: must be "FULL" or "NONE"')
        else:
            r.jitter = jitter
        out.append(r)
    return tuple(out)


def catchers(value: Any, where: str, problems: list[str], jsonata: bool) -> tuple[Catcher, ...]:
    if type(value) is not list:
        problems.append(f"{where}: must be an array")
        return ()
    out = []
    for i, entry in enumerate(value):
        w = f"{where}/{i}"
        if type(entry) is not dict:
            problems.append(f"{w}: must be an object")
            continue
        allowed = {"ErrorEquals", "Next", "Comment", "Assign"}
        allowed |= {"Output"} if jsonata else {"ResultPath"}
        for key in entry:
            if key not in allowed:
                problems.append(f"{w}/{key}: field not allowed in a catcher")
        nxt = entry.get("Next")
        if type(nxt) is not str:
            problems.append(f"{w}/Next: required, must be a state name")
            nxt = ""
        c = Catcher(_errors_field(entry, w, problems, i == len(value) - 1), nxt)
        if not jsonata:
            c.result_path = opt_path(entry, "ResultPath", w, problems, reference=True)
            if "Assign" in entry:
                c.assign_path = path_assign(entry["Assign"], w, problems)
        else:
            if "Output" in entry:
                c.output = compile_jsonata(entry["Output"], problems, "Output", w)
            if "Assign" in entry:
                c.assign_ata = jsonata_assign(entry["Assign"], w, problems)
        out.append(c)
    return tuple(out)
