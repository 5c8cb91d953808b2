"""Regenerate the sample inputs in data/ (deterministic: same files every time).

python data/make_sample_data.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).parent

CUSTOMERS = [
    ("Ada Lovelace", "EMEA"),
    ("Grace Hopper", "AMER"),
    ("Alan Turing", "EMEA"),
    ("Katherine Johnson", "AMER"),
    ("Edsger Dijkstra", "EMEA"),
    ("Hedy Lamarr", "EMEA"),
    ("Tu Youyou", "APAC"),
    ("Srinivasa Ramanujan", "APAC"),
    ("Margaret Hamilton", "AMER"),
    ("Yukihiro Matsumoto", "APAC"),
]
CURRENCY = {"EMEA": "EUR", "AMER": "USD", "APAC": "JPY"}
STATUSES = ["paid", "paid", "shipped", "pending", "refunded"]
FIELDS = ["key", "Customer Name", " Amount ", "Currency", "REGION", "Order Date", "Items", "Status"]


def sample_records(n: int = 30) -> list[dict]:
    records = []
    for i in range(n):
        name, region = CUSTOMERS[i % len(CUSTOMERS)]
        records.append(
            {
                "key": f"order-{101 + i}",
                "Customer Name": name,
                " Amount ": round(19.99 + (i * 37.5) % 480, 2),
                "Currency": CURRENCY[region],
                "REGION": region,
                "Order Date": f"2026-10-{1 + i % 28:02d}",
                "Items": 1 + (i * 7) % 5,
                "Status": STATUSES[i % len(STATUSES)],
            }
        )
    return records


def messy_records() -> list:
    good = sample_records(12)
    return [
        *good[:4],
        ["order-900", "Ada Lovelace", 10.0],  # not an object (a list)
        42,  # not an object (a number)
        {"Customer Name": "No Key", " Amount ": 5.0},  # missing key
        *good[4:8],
        {"key": None, "Customer Name": "Null Key"},  # null key
        {"key": "  ", "Customer Name": "Blank Key"},  # empty key
        {**good[1], "Status": "resent"},  # duplicate key order-102
        {"key": "order-950", " Amount ": 12.0, "amount": 13.0},  # fields collide on normalize
        {"key": True, "Customer Name": "Boolean Key"},  # a key that is not text
        *good[8:],
    ]


def main() -> None:
    records = sample_records()
    (HERE / "sample_input.json").write_text(json.dumps(records, indent=2) + "\n")
    (HERE / "sample_input.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with (HERE / "sample_input.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(records)
    (HERE / "messy_input.json").write_text(json.dumps(messy_records(), indent=2) + "\n")


if __name__ == "__main__":
    main()
