"""The embedded default data of the main job, written by this project.

Labelled data: short English sentences built from templates and name lists
written here, tagged with PER / LOC / ORG in IOB2. Dev sentences use
templates and names kept out of training, so the tagger must generalise from
characters and context. Unlabelled text for the language model: the same kind
of sentences plus the docstrings of Python's standard library (English text that
ships with Python itself).
"""

import importlib
import pydoc
import random
import re

FIRST_NAMES = [
    "Amara", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kemal", "Lucia", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tamar",
    "Ulrich", "Vera", "Wanjiru", "Xavier", "Yusuf", "Zofia", "Anika", "Bastian", "Carmen", "Dario",
]
LAST_NAMES = [
    "Okafor", "Lindqvist", "Moreau", "Tanaka", "Petrov", "Haddad", "Novak", "Castillo", "Brennan",
    "Kowalski", "Mbeki", "Fischer", "Rossi", "Nakamura", "Duarte", "Johansson", "Kaur", "Whitfield",
    "Abebe", "Varga", "Larsen", "Ortega", "Quinlan", "Sato", "Demir", "Holm",
]
PLACES = [
    "Lisbon", "Nairobi", "Osaka", "Quebec", "Valparaiso", "Tbilisi", "Reykjavik", "Lagos", "Krakow",
    "Montevideo", "Hanoi", "Adelaide", "Bergen", "Cusco", "Dakar", "Edinburgh", "Florence", "Granada",
    "Helsinki", "Izmir", "Jaipur", "Kyoto", "Leipzig", "Marseille", "Porto", "Seville", "Tallinn",
]
ORG_HEADS = ["Northwind", "Bluefield", "Copperleaf", "Silverline", "Greenhaven", "Ironbridge",
             "Redstone", "Brightwater", "Stonegate", "Westbrook", "Clearpath", "Highmoor"]
ORG_TAILS = ["Labs", "Bank", "Institute", "Foundation", "Airlines", "Press", "Group", "University"]

# {PER}, {LOC}, {ORG} are entity slots; other words are plain context.
TRAIN_TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "The office of {ORG} is near the station in {LOC} .",
    "Yesterday {PER} met {PER} at the market .",
    "{ORG} hired {PER} as its new director .",
    "We drove from {LOC} to {LOC} in one day .",
    "According to {PER} , the museum in {LOC} opens at nine .",
    "{PER} said that {ORG} will open a branch in {LOC} .",
    "Shares of {ORG} rose after the report .",
    "My friend {PER} grew up in {LOC} .",
    "The team from {ORG} won the prize .",
    "{PER} wrote a book about the history of {LOC} .",
    "Is it true that {PER} left {ORG} last year ?",
    "The train to {LOC} was late again .",
    "{PER} and {PER} founded {ORG} together .",
    "She moved to {LOC} to study at {ORG} .",
    "The mayor of {LOC} thanked {PER} for the gift .",
    "{ORG} announced a new plan for {LOC} .",
]
DEV_TEMPLATES = [
    "{PER} visited {ORG} in {LOC} last week .",
    "Later that evening {PER} called {PER} from {LOC} .",
    "The weather in {LOC} surprised everyone at {ORG} .",
    "{PER} thinks {ORG} should stay in {LOC} .",
]


def _entity(kind, rng, names):
    if kind == "PER":
        tokens = [rng.choice(names["first"])] + ([rng.choice(names["last"])] if rng.random() < 0.7 else [])
    elif kind == "LOC":
        tokens = [rng.choice(names["places"])]
    else:
        tokens = [rng.choice(names["org_heads"]), rng.choice(ORG_TAILS)]
    return tokens, [f"B-{kind}"] + [f"I-{kind}"] * (len(tokens) - 1)


def _sentences(templates, count, rng, names):
    out = []
    for _ in range(count):
        tokens, tags = [], []
        for word in rng.choice(templates).split():
            match = re.fullmatch(r"\{(PER|LOC|ORG)\}", word)
            if match:
                entity_tokens, entity_tags = _entity(match.group(1), rng, names)
                tokens += entity_tokens
                tags += entity_tags
            else:
                tokens.append(word)
                tags.append("O")
        out.append((tokens, tags))
    return out


def _split_names(rng):
    """Keeps about a fifth of each name list for dev only."""
    names = {}
    for key, values in [("first", FIRST_NAMES), ("last", LAST_NAMES), ("places", PLACES),
                        ("org_heads", ORG_HEADS)]:
        shuffled = values[:]
        rng.shuffle(shuffled)
        cut = max(1, len(shuffled) // 5)
        names[key] = (shuffled[cut:], shuffled)  # (train names, dev names = all)
    train = {k: v[0] for k, v in names.items()}
    dev = {k: v[1] for k, v in names.items()}
    return train, dev


def tagged_sentences(num_train=1200, num_dev=300, seed=0):
    """Returns ``(train, dev)`` lists of ``(tokens, tags)``."""
    rng = random.Random(seed)
    train_names, dev_names = _split_names(rng)
    train = _sentences(TRAIN_TEMPLATES, num_train, rng, train_names)
    dev = _sentences(DEV_TEMPLATES + TRAIN_TEMPLATES[:4], num_dev, rng, dev_names)
    return train, dev


def write_iob2(sentences, path):
    """Writes sentences in the tab-separated IOB2 layout (index, token, tag)."""
    with open(path, "w", encoding="utf-8") as f:
        for tokens, tags in sentences:
            f.write("# text = " + " ".join(tokens) + "\n")
            for i, (token, tag) in enumerate(zip(tokens, tags), start=1):
                f.write(f"{i}\t{token}\t{tag}\n")
            f.write("\n")


STDLIB_MODULES = [
    "argparse", "collections", "csv", "datetime", "decimal", "email", "functools", "heapq",
    "http.client", "inspect", "itertools", "json", "logging", "pathlib", "random", "re",
    "shutil", "socket", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading",
    "unittest", "urllib.parse", "zipfile",
]


def stdlib_sentences():
    """English sentences from the documentation of Python's standard library."""
    sentences = []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - a trimmed Python
            continue
        text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        text = re.sub(r"\s+", " ", re.sub(r"[|\-=]{2,}", " ", text))
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            words = sentence.split()
            if 5 <= len(words) <= 40 and sum(w.isalpha() for w in words) > 0.6 * len(words):
                sentences.append(" ".join(words))
    return sentences


def write_unlabelled_text(path, num_template_sentences=3000, seed=1):
    """Writes the language model's corpus: stdlib docstrings + template sentences."""
    rng = random.Random(seed)
    train_names, _ = _split_names(random.Random(0))
    lines = stdlib_sentences()
    lines += [" ".join(t) for t, _ in _sentences(TRAIN_TEMPLATES, num_template_sentences, rng, train_names)]
    rng.shuffle(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return len(lines)
