"""PII stripping cost per property, on ordinary and adversarial values (prints figures; not a test).

.venv/bin/python bench/pii_bench.py
"""

from __future__ import annotations

import time

from billing.domain.pii import strip_properties
from billing.domain.tenants import PiiPolicy

CASES = {
    "ordinary event (5 properties)": {
        "tokens": 1200,
        "region": "eu",
        "model": "m1",
        "latency_ms": 83,
        "ok": True,
    },
    "30 KB of letters": {"note": "a" * 30_000},
    "30 KB of digits": {"note": "1" * 30_000},
    "30 KB of 'a.'": {"note": "a." * 15_000},
    "30 KB starting 'a@' then 'a.'": {"note": "a@" + "a." * 15_000},
    "200 nested keys": {f"k{i}": {"v": i, "s": "x" * 20} for i in range(200)},
}


def main() -> None:
    policy = PiiPolicy()
    print(f"{'case':<34} {'per call':>12}")
    for name, properties in CASES.items():
        rounds = 200 if len(str(properties)) < 10_000 else 20
        start = time.perf_counter()
        for _ in range(rounds):
            strip_properties(properties, policy)
        per_call = (time.perf_counter() - start) / rounds
        print(f"{name:<34} {per_call * 1e6:>9.1f} µs")


if __name__ == "__main__":
    main()
