"""The YAML files people write by hand (``metrics.yaml``, ``budgets.yaml``, ``prices.yaml``, a
log mapping), read so that what they wrote is what counts, or they are told why not.

PyYAML keeps the last of a key written twice without a word, so a second ``metrics:`` block (or
the Data page's suggested ``models:`` lines pasted below the file's own) dropped the first;
:class:`UniqueKeyLoader` refuses it. :func:`read_yaml` turns every way a file can fail to be
read (a file named in an environment variable that is not there, a folder, no permission, not
UTF-8, a YAML slip) into one ValueError naming the file (and the line), for a page to show and a
command to print, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from pathlib import Path

import yaml

from lib.formatting import yaml_problem

_MERGE = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a key written twice in one mapping: YAML keeps the last silently, and
    a setting written twice would lose its first value without a word. Keys a merge (``<<:
    *anchor``) brings in may be overridden, as YAML means them to be."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # (its keys are defaults; it has no constructor itself)
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # (SafeConstructor refuses it, saying so)
            if key in seen:  # (429 twice too, not only text)
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is written twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)



class NumbersLoader(UniqueKeyLoader):
    """:class:`UniqueKeyLoader` reading an exponent without a decimal point (``1e-3``, ``5E+2``)
    as the number YAML 1.2 and every other reader take it for: YAML 1.1 wants ``1.0e-3``, so a
    price of ``1e-3`` was the text "1e-3", refused as "not a number"."""


NumbersLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))

class AsWrittenLoader(UniqueKeyLoader):
    """:class:`UniqueKeyLoader` with plain scalars kept as written: YAML 1.1 reads an unquoted
    1.10 as 1.1, 0042 as 34 and on as True, which scoped a budget to a value no request has ($0,
    "on track"). Only null and merge keys (<<: *anchor) keep their meaning; amounts are read as
    numbers by the code that wants them."""


AsWrittenLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag in ("tag:yaml.org,2002:null", _MERGE)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def read_yaml(path: str | os.PathLike, loader: type[yaml.SafeLoader], *, required: bool):
    """The document of the YAML file ``path`` as ``loader`` reads it (None for an empty file or
    one of comments only, and for a missing file that is not ``required``: a default file may be
    absent, a file someone named may not). Raises ValueError naming the file, and the line of a
    YAML slip, when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not required:
            return None
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start + 1})") from None
    except OSError as exc:  # (no permission, a broken link…)
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None


def section(doc, key: str, path: str | os.PathLike, expected: str):
    """``doc[key]`` of a file's document ``doc`` (None for an empty file, or an empty section).
    Other top-level keys may hold anchors the section merges (``base: &base {...}``), but a
    document with keys and not this one is a slip (``budget:``, ``metric:``), which read as an
    empty file: ValueError naming the file and ``expected`` (``a list of budgets``)."""
    if doc is None:
        return None
    if not isinstance(doc, dict) or key not in doc:
        found = (f"; found {', '.join(sorted(map(str, doc)))}" if isinstance(doc, dict) and doc
                 else "")
        raise ValueError(f"{path}: expected `{key}:` and {expected}{found}")
    return doc[key]
