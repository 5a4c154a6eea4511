"""List the bundled examples, or run one by name."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import probad.examples as examples


def _available() -> dict[str, str]:
    out = {}
    for info in pkgutil.iter_modules(examples.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"probad.examples.{info.name}")
        out[info.name] = (module.__doc__ or "").strip().splitlines()[0]
    return out


def main(argv: list[str]) -> int:
    available = _available()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("probad examples (run one with: python -m probad.examples NAME)\n")
        for name, doc in available.items():
            print(f"  {name:<24} {doc}")
        return 0
    name = argv[0]
    if name not in available:
        print(f"no example called {name!r}; choose one of: {', '.join(available)}", file=sys.stderr)
        return 2
    importlib.import_module(f"probad.examples.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
