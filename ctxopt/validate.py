"""Checks for values that come from outside: one message's fields, JSON and TOML text.

Each check turns what would escape as a raw Python exception (a ``TypeError`` from ``json.dumps``,
a ``RecursionError`` from a parser, a ``UnicodeEncodeError`` far downstream) into a
:class:`~ctxopt.errors.CtxoptError` that says where the bad value is and how to fix it.

>>> check_message({"role": "user", "content": "Hi", "sent": b"today"}, "message 0")
Traceback (most recent call last):
...
ctxopt.errors.InputError: message 0 field 'sent' holds bytes, which is not a JSON value; ...
>>> parse_json('{"n": ' + "9" * 5000 + "}", "usage.json")
Traceback (most recent call last):
...
ctxopt.errors.InputError: usage.json holds an integer with more than 4300 digits; write it as a string
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Mapping
from typing import Any

from ctxopt.errors import ConfigError, InputError

# Python refuses to turn longer digit strings into ints (CVE-2020-10735); JSON and TOML parsers hit it.
MAX_DIGITS = sys.get_int_max_str_digits() or 4300
_PLAIN_KEYS = frozenset({"role", "content"})
_JSON_TYPES = "str, number, true/false, null, list or object"
# A lone surrogate can only enter decoded JSON through a \uD800-\uDFFF escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def check_message(message: Mapping[str, Any], where: str) -> None:
    """InputError unless ``message``'s field values can be sent to a model: ``role`` and
    ``tool_call_id`` are strings, ``tool_calls`` is a list of objects each with a str ``id`` (and a
    ``function`` object with a str ``name`` when given), and every value is JSON (no bytes, dates,
    sets, objects or cycles), content parts included."""
    role = message.get("role")
    if role is not None and not isinstance(role, str):  # a missing role is named where roles are read
        raise InputError(f"{where} role must be a string, got {type(role).__name__} {role!r}")
    if message.keys() <= _PLAIN_KEYS and isinstance(message.get("content"), str):  # most turns: done, fast
        return
    call_id = message.get("tool_call_id")
    if call_id is not None and not isinstance(call_id, str):
        raise InputError(f"{where} tool_call_id must be a string, got {type(call_id).__name__} {call_id!r}")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        _check_tool_calls(tool_calls, where)
    for key, value in message.items():
        if not isinstance(key, str):
            raise InputError(f"{where} has a field named {key!r}; field names must be strings")
        if value is None or isinstance(value, str):
            continue
        try:
            json.dumps(value)
        except RecursionError:
            raise InputError(f"{where} field {key!r} is nested too deeply to send as JSON; flatten it") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where} field {key!r} {_not_json(value, exc)}") from None


def _check_tool_calls(tool_calls: Any, where: str) -> None:
    shape = "tool_calls must be a list of {'id': str, 'type': 'function', 'function': {'name': str, 'arguments': str}}"
    if not isinstance(tool_calls, list):
        raise InputError(f"{where} {shape}, got {type(tool_calls).__name__}")
    for n, call in enumerate(tool_calls):
        if not isinstance(call, Mapping) or not isinstance(call.get("id"), str):
            raise InputError(f"{where} tool call {n} must be an object with a str 'id'; {shape}")
        function = call.get("function")
        if function is not None and not (isinstance(function, Mapping) and isinstance(function.get("name"), str)):
            raise InputError(f"{where} tool call {n}: 'function' must be an object with a str 'name'; {shape}")


def _not_json(value: Any, exc: Exception) -> str:
    """Why ``value`` cannot be JSON, and what to send instead."""
    if "Circular" in str(exc):
        return "refers to itself (a circular reference), which JSON cannot hold; send a copy without the cycle"
    if "integer string conversion" in str(exc):
        return f"holds an integer with more than {MAX_DIGITS} digits; send it as a string"
    found = _first_non_json(value)
    name = type(found).__name__
    fix = {"bytes": "decode it to str", "datetime": "send date.isoformat()", "date": "send date.isoformat()",
           "set": "send a list", "frozenset": "send a list", "tuple": "send a list"}.get(name, "convert it first")
    return f"holds {name}, which is not a JSON value; {fix} (JSON values: {_JSON_TYPES})"


def _first_non_json(value: Any) -> Any:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, (str, int, float)):
            return item
    return value


def parse_json(text: str, where: str) -> Any:
    """The JSON value in ``text``, or an InputError naming ``where`` (a file, a file and line):
    invalid JSON, nesting deeper than Python can read, an integer too long to convert, or a
    lone surrogate escape (``\\ud800``: half a UTF-16 pair, not a character)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InputError(f"{where} is nested too deeply to read (lists or objects inside each other over "
                         f"about {sys.getrecursionlimit()} levels); flatten it") from None
    except ValueError:  # only the integer-length limit reaches here
        raise InputError(f"{where} holds an integer with more than {MAX_DIGITS} digits; write it as a string") from None
    if _SURROGATE_ESCAPE.search(text):
        check_text(data, where)
    return data


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """The TOML table in ``text``, or a ConfigError naming ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to read; flatten its arrays and tables") from None
    except ValueError:  # the integer-length limit
        raise ConfigError(f"{where} holds an integer with more than {MAX_DIGITS} digits") from None


def check_text(value: Any, where: str) -> None:
    """InputError if a string in ``value`` (nested lists and dicts included) holds a lone surrogate:
    text that cannot be written as UTF-8, so it could not be stored, hashed or sent to a model."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                around = item[max(0, exc.start - 20):exc.end + 20]
                raise InputError(f"{where} holds a lone surrogate {item[exc.start]!r} (half of a UTF-16 pair, not "
                                 f"a character) in {around!r}; remove it or write the whole character") from None
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
