"""Autocreate rules: which metadata a series gets when it is first written.

A rule is `[pattern, "60:90d,1h:5y", x_files_factor, "average"]`; the first
rule whose pattern matches the key wins. `**` may appear anywhere in a rule
pattern. No matching rule means the write is refused for that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from cyclone import patterns
from cyclone.series import AGGREGATION_METHODS, ArchiveArg, SeriesMetadata
from cyclone.store import whisper


def parse_retentions(spec: str) -> list[ArchiveArg]:
    """Parse "60:90d,1h:5y" into archive args (validated as a whisper layout)."""
    archives = [whisper.parseRetentionDef(part.strip()) for part in spec.split(",") if part.strip()]
    if not archives:
        raise ValueError(f"empty retention spec {spec!r}")
    whisper.validateArchiveList(sorted(archives))
    return [ArchiveArg(int(p), int(n)) for p, n in sorted(archives)]


@dataclass(frozen=True)
class AutocreateRule:
    pattern: str
    metadata: SeriesMetadata
    matcher: Callable[[str], bool]

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> "AutocreateRule":
        if not isinstance(raw, (list, tuple)) or len(raw) != 4:
            raise ValueError(f"autocreate rule must be [pattern, retentions, xff, aggregation], got {raw!r}")
        pattern, retentions, xff, agg = raw
        if not isinstance(pattern, str) or not isinstance(retentions, str):
            raise ValueError(f"autocreate rule {raw!r}: pattern and retentions must be strings")
        if not isinstance(xff, (int, float)) or not 0 <= xff <= 1:
            raise ValueError(f"autocreate rule {raw!r}: x_files_factor must be a number in [0, 1]")
        if agg not in AGGREGATION_METHODS:
            raise ValueError(
                f"autocreate rule {raw!r}: aggregation must be one of {', '.join(AGGREGATION_METHODS)}"
            )
        patterns.check_pattern(pattern, allow_globstar_anywhere=True)
        metadata = SeriesMetadata(parse_retentions(retentions), float(xff), AGGREGATION_METHODS[agg])
        return cls(pattern, metadata, patterns.compile_pattern(pattern))


class AutocreateRules:
    """An ordered rule list; shared by the stores of one tree, replaced on reload."""

    def __init__(self, rules: Sequence[Sequence[Any]] = ()) -> None:
        self.rules = [AutocreateRule.parse(r) for r in rules]

    def metadata_for(self, key: str) -> SeriesMetadata | None:
        for rule in self.rules:
            if rule.matcher(key):
                return rule.metadata
        return None

    def replace(self, other: "AutocreateRules") -> None:
        self.rules = other.rules

    def __len__(self) -> int:
        return len(self.rules)
