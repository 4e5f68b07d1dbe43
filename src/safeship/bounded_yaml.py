"""Limits on a YAML file before it is built: size, nesting, aliases and their expansion.

YAML aliases let a few hundred bytes stand for billions of nodes (the "billion
laughs" alias bomb): PyYAML composes them as shared nodes, and anything that
walks the tree, as the config loader does to remember lines and interpolate
variables, expands them. Every command loads the config first, so a hostile or
mistaken file must be refused in milliseconds, not after a minute and gigabytes.

The check reads the event stream once (linear in the text, never recursive,
so deep nesting cannot exhaust the stack) and works out how many nodes the
document would expand to, counting each alias at the size of its anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

MAX_BYTES = 256 * 1024
"""A config file beyond 256 KiB is refused: real ones are a few kilobytes (one at the
limit still loads in well under a second; pure-Python YAML reads ~1 MB/s)."""
MAX_DEPTH = 64
"""Mappings and lists nested deeper than this are refused."""
MAX_ALIASES = 100
"""At most this many aliases (`*name`) in one file: enough to share settings by anchor."""
MAX_NODES = 20_000
# libyaml's parser when PyYAML has it (ten times faster), else the pure-Python one: the same
# events and marks either way.
FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_EXPANDED_BYTES = 1024 * 1024  # what ${VAR}s may add, over every use of every node
"""At most this many nodes once every alias is expanded (a real config has hundreds)."""


@dataclass(frozen=True)
class YamlTooLarge:
    """Which limit a document passes, and the line where it did."""

    line: int
    problem: str


def check_limits(text: str) -> YamlTooLarge | None:
    """The first limit `text` passes, or None; a YAML syntax error is left to the parser."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        return YamlTooLarge(1, f"the file is {size} bytes; at most {MAX_BYTES} are read")
    anchored: dict[str, int] = {}  # anchor -> its node count, expanded
    counts: list[int] = []  # per open collection: its node count so far
    anchors: list[str | None] = []  # per open collection: its anchor
    aliases = 0
    total = 0
    try:
        for event in yaml.parse(text, Loader=FAST_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    return YamlTooLarge(line, f"more than {MAX_ALIASES} aliases (*name)")
                if event.anchor in anchors:
                    return YamlTooLarge(
                        line, f"alias *{event.anchor} refers to a node that contains it"
                    )
                size = anchored.get(str(event.anchor), 1)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                counts.append(1)
                anchors.append(event.anchor)
                if len(counts) > MAX_DEPTH:
                    return YamlTooLarge(line, f"nested more than {MAX_DEPTH} levels deep")
                continue
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                size, anchor = counts.pop(), anchors.pop()
                if anchor is not None:
                    anchored[anchor] = size
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    anchored[event.anchor] = 1
            else:
                continue
            if counts:
                counts[-1] += size
            else:
                total += size
            if total + sum(counts) > MAX_NODES:
                if aliases:
                    return YamlTooLarge(
                        line, f"aliases expand it past {MAX_NODES} nodes (an alias bomb?)"
                    )
                return YamlTooLarge(line, f"more than {MAX_NODES} keys, values and lists")
    except yaml.YAMLError as exc:
        # libyaml stops at its own depth limit (deeper than ours) while reading ahead
        if "maximum nesting depth" in str(exc):
            mark = getattr(exc, "problem_mark", None)
            return YamlTooLarge(
                mark.line + 1 if mark else 1, f"nested more than {MAX_DEPTH} levels deep"
            )
        return None
    return None
