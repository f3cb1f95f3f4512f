#!/usr/bin/env python3
"""Writes src/CudaFinetune/Demo/demo-sentiment.jsonl, the built-in demo's dataset.

A short-review sentiment task in alpaca format (instruction, input, output): each review is built
from templates and carries clearly positive or clearly negative words (no negations, no mixed
reviews), so the label follows from which sentiment words appear and a tiny model can learn it.
Balanced: as many positive as negative records, in shuffled order. Fixed seed, standard library
only: running it again writes the same bytes.

Usage: python3 scripts/make-demo-dataset.py [OUTPUT]
"""

import json
import os
import random
import sys

SEED = 20240917
PAIRS = 250  # records per label; 500 in all

INSTRUCTION = "Classify the sentiment of this review as positive or negative."

NOUNS = [
    "movie", "book", "restaurant", "hotel", "phone", "laptop", "album", "concert", "game", "coffee",
    "pizza", "service", "headphones", "camera", "sofa", "bakery", "museum", "show", "novel", "app",
    "jacket", "shoes", "car", "bike", "course", "burger", "tour", "keyboard", "blender", "vacuum",
]

POSITIVE_ADJECTIVES = [
    "great", "excellent", "wonderful", "amazing", "fantastic", "delightful", "superb", "lovely",
    "brilliant", "outstanding", "charming", "perfect", "impressive", "enjoyable", "pleasant",
]
NEGATIVE_ADJECTIVES = [
    "terrible", "awful", "horrible", "dreadful", "poor", "disappointing", "bad", "boring",
    "useless", "mediocre", "annoying", "broken", "cheap", "frustrating", "unpleasant",
]

POSITIVE_VERBS = ["loved", "enjoyed", "adored", "liked", "appreciated"]
NEGATIVE_VERBS = ["hated", "disliked", "regretted", "loathed", "despised"]

POSITIVE_PHRASES = [
    "I would recommend it to everyone.",
    "Worth every penny.",
    "I will definitely come back.",
    "It made my day.",
    "Five stars from me.",
    "Highly recommended.",
    "I am very happy with it.",
    "Best purchase this year.",
]
NEGATIVE_PHRASES = [
    "I want my money back.",
    "A complete waste of money.",
    "I will never come back.",
    "It ruined my day.",
    "One star from me.",
    "Avoid it at all costs.",
    "I am very unhappy with it.",
    "Worst purchase this year.",
]

TEMPLATES = [
    "The {noun} was {adj}.",
    "The {noun} was {adj}. {phrase}",
    "What {a_adj} {noun}! {phrase}",
    "I {verb} this {noun}. It was {adj}.",
    "{Adj} {noun}, {adj2} experience. {phrase}",
    "This {noun} is {adj} and {adj2}.",
    "I {verb} the {noun}; truly {adj}.",
    "{phrase} The {noun} was {adj}.",
    "Honestly {a_adj} {noun}. {phrase}",
    "Our {noun} felt {adj} and {adj2}. {phrase}",
]


def review(rng, positive):
    adjectives = POSITIVE_ADJECTIVES if positive else NEGATIVE_ADJECTIVES
    adj, adj2 = rng.sample(adjectives, 2)
    text = rng.choice(TEMPLATES).format(
        noun=rng.choice(NOUNS),
        adj=adj,
        a_adj=("an " if adj[0] in "aeiou" else "a ") + adj,
        Adj=adj.capitalize(),
        adj2=adj2,
        verb=rng.choice(POSITIVE_VERBS if positive else NEGATIVE_VERBS),
        phrase=rng.choice(POSITIVE_PHRASES if positive else NEGATIVE_PHRASES),
    )
    return text[0].upper() + text[1:]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "src", "CudaFinetune", "Demo", "demo-sentiment.jsonl")
    output = sys.argv[1] if len(sys.argv) > 1 else default
    rng = random.Random(SEED)
    records = []
    seen = set()
    for positive in (True, False):
        count = 0
        while count < PAIRS:
            text = review(rng, positive)
            if text in seen:
                continue
            seen.add(text)
            records.append({"instruction": INSTRUCTION, "input": text, "output": "positive" if positive else "negative"})
            count += 1
    rng.shuffle(records)
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=True) + "\n")
    print(f"wrote {len(records)} records to {os.path.normpath(output)}")


if __name__ == "__main__":
    main()
