"""Every URL key the pages read or write is known to the link check (lib/ui/filters.PAGE_KEYS),
so a shared link is never told that one of the app's own keys is unknown."""

from __future__ import annotations

import ast
from pathlib import Path

from lib.filters import TIME_KEYS, Filters, column_for_key
from lib.ui.filters import PAGE_KEYS

PROJECT = Path(__file__).resolve().parents[1]
# widgets' URL helpers and the position of their key argument
HELPERS = {"query_value": 0, "query_selectbox": 2, "query_text": 1, "query_number": 1}


def keys_in_code() -> set[str]:
    """String keys passed to the URL helpers, open_page's keyword arguments,
    st.query_params[...] subscripts and .get/.get_all calls, in app.py, pages/ and lib/ui/."""
    found = set()
    files = [PROJECT / "app.py", *(PROJECT / "pages").glob("*.py"),
             *(PROJECT / "lib" / "ui").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                at = HELPERS.get(name)
                if at is not None and len(node.args) > at and \
                        isinstance(node.args[at], ast.Constant):
                    found.add(node.args[at].value)
                if name == "open_page":
                    found |= {k.arg for k in node.keywords if k.arg}
                # st.query_params.get("x") / .get_all("x")
                if name in ("get", "get_all") and isinstance(node.func, ast.Attribute) and \
                        isinstance(node.func.value, ast.Attribute) and \
                        node.func.value.attr == "query_params" and node.args and \
                        isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "query_params":
                found.add(node.slice.value)
    return found


def test_every_key_the_code_uses_is_known_to_the_link_check():
    used = keys_in_code()
    # the finder finds what it should (a broken finder would pass vacuously)
    assert {"by", "request", "window", "metric", "objective"} <= used
    page_keys = {k for k in used if k not in TIME_KEYS and column_for_key(k) is None}
    assert page_keys <= PAGE_KEYS, page_keys - PAGE_KEYS


def test_a_mistyped_filter_key_is_named_and_the_app_s_keys_are_not():
    said = Filters.query_problems({"modle": "gpt-4o", "model": "gpt-4o", "by": "feature",
                                   "request": "r1", "attr.team": "red", "range": "24h"},
                                  PAGE_KEYS)
    assert said == ["key `modle` is no filter Sightline knows: nothing is filtered on it"]
    said = Filters.query_problems({f"k{i}": "x" for i in range(7)}, PAGE_KEYS)
    assert said == ["keys `k0`, `k1`, `k2`, `k3`, `k4` … are no filter Sightline knows: "
                    "nothing is filtered on them"]
    # without the pages' keys, keys are not checked (as from_query, which ignores them)
    assert Filters.query_problems({"modle": "gpt-4o"}) == []
