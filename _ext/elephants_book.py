"""Small book-wide Sphinx tweaks for "Elephants" (loaded from ``_config.yml`` as a local extension).

1. **Chapter numbers follow the file prefixes.** Sphinx numbers the entries of numbered toctrees
   from 1 (``sphinx-multitoc-numbering`` continues the count across parts), so ``00_hijacking``
   would be chapter 1. After Sphinx has assigned the section numbers, and before it numbers
   figures, theorems and exercises from them, the first component of every number is replaced:
   a document named ``NN_...`` gets ``NN`` (``book/04_value_matrix`` -> 4, so its theorems are
   "Theorem 4.1", ...); the other numbered chapters (the appendix) get letters A, B, ... in toc
   order. sphinx-proof and sphinx-exercise read ``env.toc_fignumbers``, which Sphinx derives
   from these section numbers, so ``{prf:ref}`` and ``{ref}`` texts follow.
2. **No sphinx-thebe scripts.** Live code is off in this book; sphinx-thebe still writes its
   configuration script (``const THEBE_JS_URL = ...``) into every page, twice, which raises
   ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``. The scripts are dropped
   from every page.
3. **No "Print to PDF" entry** in the download menu (it only calls the browser's print dialog),
   and the theme's start mode is "auto" (unset, every page logs a console error).
4. **Author-year bibliography labels.** A pybtex label style ``authoryear`` ("Jiang et al., 2024",
   "Kassner and Schütze, 2020", with a/b suffixes for equal labels) and a formatting style
   ``authoryear`` (unsrt entries, sorted by author, year and title) that uses it; ``_config.yml``
   selects it with ``bibtex_default_style: authoryear``.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

PREFIX = re.compile(r"(?:^|/)(\d+)_[^/]*$")


# ------------------------------------------------------------------------------ chapter numbers
def chapter_numbers(env) -> dict[str, object]:
    """docname -> the number its chapter should carry (an int for ``NN_`` files, else a letter)."""
    mapping: dict[str, object] = {}
    others: dict[object, list[str]] = {}
    for docname, secnums in env.toc_secnumbers.items():
        first = next((n[0] for n in secnums.values() if n), None)
        if first is None:
            continue
        m = PREFIX.search(docname)
        if m:
            mapping[docname] = int(m.group(1))
        else:
            others.setdefault(first, []).append(docname)
    for letter, first in zip(string.ascii_uppercase, sorted(others, key=str)):
        for docname in others[first]:
            mapping[docname] = letter
    return mapping


def _renumber(env) -> None:
    mapping = chapter_numbers(env)

    def fix(number):
        return None if not number else type(number)((new, *number[1:]))

    for docname, new in mapping.items():
        secnums = env.toc_secnumbers[docname]
        for anchor, number in list(secnums.items()):
            if number:
                secnums[anchor] = (new, *number[1:])
        toc = env.tocs.get(docname)
        if toc is not None:
            for ref in toc.findall(nodes.reference):
                if ref.get("secnumber"):
                    ref["secnumber"] = fix(ref["secnumber"])
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = fix(title["secnumber"])


def _wrap(cls) -> None:
    original = cls.__dict__["assign_section_numbers"]
    if getattr(original, "_elephants", False):
        return

    def assign_section_numbers(self, env):
        changed = original(self, env)
        _renumber(env)  # idempotent: a subclass calling super() renumbers once more, harmlessly
        return changed

    assign_section_numbers._elephants = True
    cls.assign_section_numbers = assign_section_numbers


def patch_section_numbers(app, *args) -> None:
    """Wrap every ``assign_section_numbers`` in place: Sphinx's (which sphinx-multitoc-numbering
    replaces) and that of sphinx-external-toc's collector subclass, which renumbers chapters with
    its own counter after calling Sphinx's.

    Called when reading starts: jupyter-book may set up sphinx-multitoc-numbering only after the
    Sphinx application and its builder exist."""
    from sphinx.environment.collectors.toctree import TocTreeCollector

    todo = [TocTreeCollector]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "assign_section_numbers" in cls.__dict__:
            _wrap(cls)


# ----------------------------------------------------------------------- page scripts and buttons
def _is_thebe(js) -> bool:
    name = str(getattr(js, "filename", js) or "")
    body = str(getattr(js, "attributes", {}).get("body", ""))
    return "sphinx-thebe" in name or "thebe@" in name or "THEBE_JS_URL" in body


def tidy_page(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = [js for js in context["script_files"] if not _is_thebe(js)]
    if "css_files" in context:
        context["css_files"] = [
            c for c in context["css_files"] if "sphinx-thebe" not in str(getattr(c, "filename", c))
        ]
    for group in context.get("header_buttons", []) or []:
        if isinstance(group, dict) and "buttons" in group:
            group["buttons"] = [b for b in group["buttons"] if b.get("label") != "download-pdf-button"]


# ---------------------------------------------------------------------- author-year bibliography
def _last_names(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


class AuthorYearLabelStyle(BaseLabelStyle):
    """ "Hopfield, 1982", "Kassner and Schütze, 2020", "Jiang et al., 2024"; equal labels get a, b."""

    def format_label(self, entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_last_names(p) for p in persons]
        if not names:
            who = entry.fields.get("organization") or entry.key
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [self.format_label(e) for e in entries]
        count = Counter(labels)
        seen: Counter = Counter()
        for label in labels:
            if count[label] > 1:
                yield label + string.ascii_lowercase[seen[label]]
                seen[label] += 1
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def default_theme_mode(app, config) -> None:
    """pydata-sphinx-theme reads the start mode from ``html_context["default_mode"]``; unset, every
    page logs "Got invalid theme mode: . Resetting to auto." to the console on a first visit."""
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}


def setup(app):
    app.connect("config-inited", default_theme_mode)
    app.connect("env-before-read-docs", patch_section_numbers)
    # after sphinx-book-theme's header buttons (priority 501)
    app.connect("html-page-context", tidy_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
