"""Distractor documents that grow SciFact's corpus to 20k-200k chunks for retrieval at scale.

SciFact's queries and judgements stay as they are; what grows is what a search has to wade through.
The distractors come in a fixed order, so a smaller corpus is a prefix of a larger one and the
embedding cache serves every size after the largest was embedded once:

1. **real** public text from ``benchmarks/data``: the 992 Wikipedia paragraphs of HotpotQA's
   sample (id ``hotpot:<n>``) and the 4,124 turns of the LoCoMo conversations (``locomo:<n>``);
2. then a **synthetic** set, labelled as such (``synthetic:<n>``): the first ten words of one
   sentence drawn at random (seeded) from that real pool joined to the last ten words of
   another. It is real language, so a real model embeds it into the same region of the space as
   real text (random vectors would make HNSW look far worse than it is: recall 0.16 at 100k in
   our trial). At about 27 tokens a chunk it embeds about four times faster than a paragraph,
   which is what makes 200k chunks affordable on 2 shared CPU cores; short chunks are also the
   hardest distractors for BM25, whose length normalisation favours them.

No SciFact text is used, so no distractor can repeat the evidence a query is judged on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from functools import lru_cache

from ctxopt.bench.data import data_dir
from ctxopt.ingest.readers import Document

SEED = 14
HALF = 10  # words taken from each of the two sentences of a synthetic distractor


@lru_cache(maxsize=1)
def _real() -> tuple[list[Document], list[str]]:
    """The real distractor documents and the sentence pool the synthetic ones are drawn from."""
    docs: list[Document] = []
    pool: list[str] = []
    hotpot = json.loads((data_dir() / "hotpotqa" / "hotpot_dev_distractor_100.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    for question in hotpot:
        for title, sentences in question["context"]:
            text = " ".join(s.strip() for s in sentences).strip()
            if not text or text in seen:
                continue
            seen.add(text)
            docs.append(Document(id=f"hotpot:{len(docs)}", title=title, text=text, metadata={"source": "hotpotqa"}))
            pool += [s.strip() for s in sentences if len(s.split()) >= 2 * HALF]
    locomo = json.loads((data_dir() / "locomo" / "locomo7.json").read_text(encoding="utf-8"))
    turn = 0
    for sample in locomo:
        conversation = sample["conversation"]
        sessions = sorted((k for k, v in conversation.items() if k.startswith("session_") and isinstance(v, list)),
                          key=lambda k: int(k.split("_")[1]))
        for session in sessions:
            for message in conversation[session]:
                text = str(message.get("text", "")).strip()
                if not text:
                    continue
                docs.append(Document(id=f"locomo:{turn}", text=f"{message.get('speaker', '')}: {text}",
                                     metadata={"source": "locomo"}))
                turn += 1
                if len(text.split()) >= 2 * HALF:
                    pool.append(text)
    return docs, sorted(set(pool))


def real_count() -> int:
    """How many real (not synthetic) distractors there are."""
    return len(_real()[0])


def distractors(n: int, *, seed: int = SEED) -> Iterator[Document]:
    """The first ``n`` distractors: the real ones, then synthetic sentence pairs."""
    docs, pool = _real()
    yield from docs[:n]
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    made = len(docs)
    while made < n:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        head, tail = pool[a].split()[:HALF], pool[b].split()[-HALF:]
        yield Document(id=f"synthetic:{made - len(docs)}", text=" ".join(head + tail), metadata={"source": "synthetic"})
        made += 1
