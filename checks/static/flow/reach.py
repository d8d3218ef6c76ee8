"""Functions that do not run in the official run: every call of them is in code the launch switches off
(``if h.etlb_enabled:`` with the setting off), or in functions that do not run themselves. What is found
inside such a function is reported as present but off (info), as it is for code off in the function
that holds it. Only plain functions count (a method may be reached through calls the walk does not see:
``model(x)`` through a compiled wrapper); a function used other than by a direct call runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .callsites import key_of


@dataclass
class Reach:
    sites: dict = field(default_factory=dict)  # callee key -> {(caller key or None, call is off: True, or why (runlogs.py))}
    plain: set = field(default_factory=set)  # keys of functions that are not methods
    escaped: set = field(default_factory=set)  # keys of functions used other than by a direct call, in code that runs
    found_in: dict = field(default_factory=dict)  # fact key -> {(function whose walk recorded it, recorded off)}

    def call(self, caller, callee, off: bool | str) -> None:
        k = key_of(callee)
        if callee.cls is None:
            self.plain.add(k)
        self.sites.setdefault(k, set()).add((key_of(caller) if caller is not None else None, off))

    def escape(self, f) -> None:
        self.escaped.add(key_of(f))

    def found(self, fact_key, walker_f, off: bool | str) -> None:
        self.found_in.setdefault(fact_key, set()).add((key_of(walker_f) if walker_f is not None else None, off))

    def not_run(self) -> set:
        """Keys of the plain functions no call that runs reaches."""
        candidates = {k for k in self.sites if k in self.plain and k not in self.escaped}
        live: set = set()
        grew = True
        while grew:
            grew = False
            for k in candidates - live:
                if any(not off and (c is None or c not in candidates or c in live) for c, off in self.sites[k]):
                    live.add(k)
                    grew = True
        return candidates - live

    def switch_off(self, facts: dict) -> None:
        """Facts recorded only off or in functions that do not run are off."""
        dead = self.not_run()
        if not dead:
            return
        for key, where in self.found_in.items():
            if key in facts and where and all(off or f in dead for f, off in where):
                facts[key].disabled = self._why(where, dead)

    def _why(self, where, dead: set) -> bool | str:
        """Why a fact found ``where`` is off: the logs' reason where every place says that one, else True
        (off under the launch)."""
        offs = {off for f, off in where if off} | {off for f, _ in where if f in dead for _, off in self.sites[f] if off}
        return offs.pop() if len(offs) == 1 else True
