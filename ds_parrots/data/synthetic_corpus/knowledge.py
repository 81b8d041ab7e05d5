"""The knowledge source: biographies of synthetic people, and closed-book questions about them in TriviaQA's
public schema (mandarjoshi/trivia_qa, rc.nocontext), the fields lm-eval's `triviaqa` task reads.

Each person has a unique name and one value per attribute (birth date, birth city, university, field of study,
employer, work city: the attributes of Allen-Zhu & Li's bioS, "Physics of Language Models 3.1"). A person's
biographies each state a subset of the facts, each fact in one of several paraphrases, so that every fact
appears in `mentions` documents and in at least two wordings: memorized as a fact, not as one sentence.

Some people's questions, with their answers, are training documents too (as the paper mixes downstream
training sets into pre-training); a model that learned to answer from biographies can then answer the other
people's questions, which are the scored split. Allen-Zhu & Li find that without such examples knowledge is
stored but not extractable by questions.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

from ds_parrots.errors import ConfigError

from .vocab import CITIES, EMPLOYERS, FIELDS, FIRST_NAMES, LAST_NAMES, MONTHS, UNIVERSITIES


@dataclass
class KnowledgeConfig:
    """Sizes of the knowledge source (biographies of synthetic people, closed-book questions about them)."""

    people: int = 2000
    """People in the corpus; each has one value per attribute (6 facts a person)."""
    bios_per_person: int = 4
    """Biographies per person; each states the facts assigned to it, in random order."""
    mentions: int = 3
    """Biographies that state each fact (at most --bios-per-person, at least 2)."""
    paraphrases: int = 5
    """Wordings in use per attribute (2 to 6); the mentions of one fact use distinct ones while they last."""
    qa_train_fraction: float = 0.5
    """Share of the people whose questions and answers are also training documents (and the triviaqa
    'train' split, lm-eval's few-shot exemplars); the other people's questions are the scored 'validation'
    split, answerable only from their biographies."""


# Sentence templates per attribute ({name}, {value}) and the question asked about it (no "?": lm-eval's
# triviaqa prompt adds one: "Question: {{question}}?\nAnswer:").
ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "birth_date": (
        (
            "{name} was born on {value}.",
            "{name} came into the world on {value}.",
            "The birth date of {name} is {value}.",
            "{name}'s date of birth is {value}.",
            "{name} celebrates a birthday every year, having been born on {value}.",
            "Records show that {name} was born on {value}.",
        ),
        "When was {name} born",
    ),
    "birth_city": (
        (
            "{name} was born in {value}.",
            "The birthplace of {name} is {value}.",
            "{name} is a native of {value}.",
            "{name}'s hometown is {value}.",
            "{name} spent the first years of life in {value}, the city of birth.",
            "The city where {name} was born is {value}.",
        ),
        "In which city was {name} born",
    ),
    "university": (
        (
            "{name} studied at {value}.",
            "{name} graduated from {value}.",
            "{name} received a degree from {value}.",
            "{name} attended {value}.",
            "{name} is a graduate of {value}.",
            "{name} completed a degree at {value}.",
        ),
        "Which university did {name} attend",
    ),
    "field": (
        (
            "{name} majored in {value}.",
            "{name} earned a degree in {value}.",
            "The field of study of {name} was {value}.",
            "{name} specialized in {value}.",
            "{name} chose {value} as a major.",
            "At university {name} studied {value}.",
        ),
        "What did {name} study",
    ),
    "employer": (
        (
            "{name} works for {value}.",
            "{name} is employed by {value}.",
            "{name} has a job at {value}.",
            "The employer of {name} is {value}.",
            "{name} earns a living at {value}.",
            "{name} is on the staff of {value}.",
        ),
        "Which company does {name} work for",
    ),
    "work_city": (
        (
            "{name} works in {value}.",
            "{name} has an office in {value}.",
            "{name} commutes to work in {value}.",
            "The workplace of {name} is in {value}.",
            "{name} goes to work every day in {value}.",
            "Every morning {name} heads to work in {value}.",
        ),
        "In which city does {name} work",
    ),
}
MAX_PARAPHRASES = min(len(t) for t, _ in ATTRIBUTES.values())
QA_TEMPLATE = "Question: {question}?\nAnswer: {answer}"
"""A question as lm-eval's triviaqa prompt renders it (doc_to_text, target delimiter " ", first alias)."""


@dataclass(frozen=True)
class Person:
    name: str
    facts: dict[str, str]
    """attribute -> value, in ATTRIBUTES order."""


@dataclass(frozen=True)
class People:
    """What the knowledge source holds: the people, the corpus documents, the question sets."""

    people: list[Person]
    documents: list[str]
    """Biographies and the question-answer documents of the QA-train people, shuffled."""
    qa_train: list[dict]
    """TriviaQA-schema records about the people whose questions are training documents."""
    qa_eval: list[dict]
    """TriviaQA-schema records about the others (the scored split)."""


def check(cfg: KnowledgeConfig) -> None:
    """A one-line ConfigError for sizes the generator cannot meet."""
    capacity = _name_capacity()
    if not 2 <= cfg.people <= capacity:
        raise ConfigError(f"--people={cfg.people}: needs 2 to {capacity} (the unique names the lists make)")
    if not 2 <= cfg.mentions <= cfg.bios_per_person:
        raise ConfigError(
            f"--mentions={cfg.mentions} with --bios-per-person={cfg.bios_per_person}: each fact must appear in "
            "at least 2 biographies and at most all of a person's; raise --bios-per-person or lower --mentions"
        )
    if not 2 <= cfg.paraphrases <= MAX_PARAPHRASES:
        raise ConfigError(
            f"--paraphrases={cfg.paraphrases}: needs 2 to {MAX_PARAPHRASES} (the built-in wordings)"
        )
    n_train = round(cfg.people * cfg.qa_train_fraction)
    if not 0 < n_train < cfg.people:
        raise ConfigError(
            f"--qa-train-fraction={cfg.qa_train_fraction} of {cfg.people} people leaves "
            f"{n_train} with questions in the corpus and {cfg.people - n_train} to score; both need at least 1"
        )


def _name_capacity() -> int:
    return len(FIRST_NAMES) * len(LAST_NAMES) * (1 + len(string.ascii_uppercase))


def unique_names(n: int, rng: random.Random) -> list[str]:
    """n distinct names: "First Last" drawn without replacement, then "First M Last" (a middle initial) once
    those run out. An initial, not a middle name: "Anna Grace Smith" would hold the name "Grace Smith"."""
    firsts, lasts = FIRST_NAMES, LAST_NAMES
    pairs = len(firsts) * len(lasts)
    picks = rng.sample(range(pairs), min(n, pairs))
    names = [f"{firsts[i // len(lasts)]} {lasts[i % len(lasts)]}" for i in picks]
    if n > pairs:
        initials = string.ascii_uppercase
        for i in rng.sample(range(pairs * len(initials)), n - pairs):
            pair, m = divmod(i, len(initials))
            names.append(f"{firsts[pair // len(lasts)]} {initials[m]} {lasts[pair % len(lasts)]}")
    return names


def _value(attribute: str, rng: random.Random) -> str:
    if attribute == "birth_date":
        return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1950, 2000)}"
    pool = {
        "birth_city": CITIES,
        "work_city": CITIES,
        "university": UNIVERSITIES,
        "field": FIELDS,
        "employer": EMPLOYERS,
    }[attribute]
    return rng.choice(pool)


def biographies(person: Person, cfg: KnowledgeConfig, rng: random.Random) -> list[str]:
    """The person's biographies: each fact in `mentions` of them, worded by distinct templates (cycling
    through the `paraphrases` in use when mentions outnumber them); sentences in random order."""
    sentences: list[list[str]] = [[] for _ in range(cfg.bios_per_person)]
    for attribute, value in person.facts.items():
        templates = ATTRIBUTES[attribute][0][: cfg.paraphrases]
        order = rng.sample(range(len(templates)), len(templates))
        for k, doc in enumerate(rng.sample(range(cfg.bios_per_person), cfg.mentions)):
            sentences[doc].append(templates[order[k % len(order)]].format(name=person.name, value=value))
    out = []
    for doc in sentences:
        if doc:  # a biography that drew no fact (rare) is left out; every fact still has its mentions
            rng.shuffle(doc)
            out.append(" ".join(doc))
    return out


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """TriviaQA's normalization of answers: lower case, no punctuation or articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def aliases(value: str) -> list[str]:
    """The value, and without a leading "the" ("University of Oxford" for "the University of Oxford")."""
    return [value, value[4:]] if value.startswith("the ") else [value]


def trivia_record(index: int, person: Person, attribute: str) -> dict:
    """A question in TriviaQA's public schema (rc.nocontext: no evidence pages or search results)."""
    value = person.facts[attribute]
    names = aliases(value)
    return {
        "question": ATTRIBUTES[attribute][1].format(name=person.name),
        "question_id": f"synth_p{index:06d}_{attribute}",
        "question_source": "ds-parrots synth-corpus",
        "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
        "search_results": {
            "description": [],
            "filename": [],
            "rank": [],
            "title": [],
            "url": [],
            "search_context": [],
        },
        "answer": {
            "aliases": names,
            "normalized_aliases": list(dict.fromkeys(normalize(a) for a in names)),
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": normalize(value),
            "type": "FreeForm",
            "value": value,
        },
    }


def qa_document(records: list[dict]) -> str:
    """One person's questions and answers, as lm-eval's prompts show exemplars (separated by a blank line)."""
    return "\n\n".join(
        QA_TEMPLATE.format(question=r["question"], answer=r["answer"]["value"]) for r in records
    )


def generate(cfg: KnowledgeConfig, seed: int) -> People:
    """The knowledge source, a pure function of (cfg, seed)."""
    check(cfg)
    rng = random.Random(f"ds-parrots synth-corpus knowledge {seed}")
    names = unique_names(cfg.people, rng)
    people = [Person(name, {a: _value(a, rng) for a in ATTRIBUTES}) for name in names]
    documents = [bio for person in people for bio in biographies(person, cfg, rng)]
    qa_people = set(rng.sample(range(cfg.people), round(cfg.people * cfg.qa_train_fraction)))
    qa_train, qa_eval = [], []
    for i, person in enumerate(people):
        records = [trivia_record(i, person, a) for a in ATTRIBUTES]
        if i in qa_people:
            qa_train += records
            documents.append(qa_document(rng.sample(records, len(records))))
        else:
            qa_eval += records
    rng.shuffle(documents)  # a person's biographies apart: packed sequences mix people
    return People(people, documents, qa_train, qa_eval)
