"""How the Edge store's HNSW graph for large bases was chosen: one base of SciFact plus distractors,
built once per graph (``m``, ``ef_construct``), then searched at several beams (``hnsw_ef``) in
dense and hybrid mode, each against exact search on the same base.

    .venv/bin/python benchmarks/hnsw_graphs.py 200000 32 512 128,256,512,1024
    .venv/bin/python benchmarks/hnsw_graphs.py --summary     # results/retrieval_scale/graphs/README.md

Each run writes ``results/retrieval_scale/graphs/<size>_m<m>_efc<ef_construct>.json``. Not part of
``ctxopt bench``: a 200k build takes 8-11 minutes per graph, and the distractors must have been
embedded by ``ctxopt bench retrieval_scale`` first (their cache is reused). The graph the store
uses by default came out of these runs (``graph_for`` in ``ctxopt/stores/edge.py``).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

OUT = Path("results/retrieval_scale/graphs")


def build_and_search(size: int, m: int, ef_construct: int, beams: list[int]) -> dict:
    from ctxopt.bench import retrieval_scale as rs
    from ctxopt.bench.data import load_beir
    from ctxopt.bench.metrics import evaluate, percentile
    from ctxopt.bench.retrieval import CHUNK_TOKENS, OVERLAP, _docs
    from ctxopt.embed.base import get_embedder
    from ctxopt.ingest.readers import Document
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stores.base import TUNED_FUSION
    from ctxopt.stores.edge import EdgeStore

    corpus, queries, qrels = load_beir("scifact", "test")
    scifact = [Document(id=d, title=r["title"], text=r["text"]) for d, r in corpus.items()]
    embedder = rs._embedder(get_embedder())
    vectors = dict(zip(queries, embedder.embed(list(queries.values()))))
    docs = rs.grown(scifact, size)
    work = Path(tempfile.mkdtemp(prefix="ctxopt-graphs-"))
    store = EdgeStore(work, m=m, ef_construct=ef_construct)
    kb = KnowledgeBase("scale", store=store, embedder=embedder, chunk_tokens=CHUNK_TOKENS, overlap=OVERLAP)
    summary = kb.ingest(docs)
    out: dict = {"size": size, "m": m, "ef_construct": ef_construct, "chunks": summary.chunks_total,
                 "build_s": round(summary.seconds - summary.embed_seconds, 1)}

    def run(mode: str, exact: bool):
        hits, _ = rs._run_queries(kb, queries, vectors, mode, exact, TUNED_FUSION)
        rankings = {q: _docs([(d, 0.0) for _, d in h]) for q, h in hits.items()}
        _, top10 = rs._run_queries(kb, queries, vectors, mode, exact, TUNED_FUSION, k=10)
        return hits, evaluate(rankings, qrels)["ndcg@10"], percentile(top10, 95) * 1000

    try:
        for mode in ("dense", "hybrid"):
            exact_hits, exact_ndcg, _ = run(mode, True)
            out[f"{mode}_exact"] = round(exact_ndcg, 4)
            for beam in beams:
                store.hnsw_ef = beam
                hits, ndcg, p95 = run(mode, False)
                out[f"{mode}_ef{beam}"] = {"ndcg": round(ndcg, 4), "p95": round(p95, 2),
                                           "recall10": round(rs._overlap_at_10(hits, exact_hits), 4)}
                print(mode, beam, out[f"{mode}_ef{beam}"], "exact", out[f"{mode}_exact"], flush=True)
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def summary() -> str:
    lines = ["# HNSW graphs at scale: nDCG@10 against exact search on one base per graph", "",
             "| chunks | m | ef_construct | build s | mode | hnsw_ef | nDCG@10 | exact | recall@10 | p95 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        for mode in ("dense", "hybrid"):
            for key in sorted((k for k in r if k.startswith(f"{mode}_ef")), key=lambda k: int(k.split("ef")[1])):
                v = r[key]
                lines.append(f"| {r['chunks']:,} | {r['m']} | {r['ef_construct']} | {r['build_s']} | {mode} | "
                             f"{key.split('ef')[1]} | {v['ndcg']:.4f} | {r[f'{mode}_exact']:.4f} | "
                             f"{v['recall10']:.4f} | {v['p95']} |")
    lines += ["", "Measured on 2 cores shared with other jobs (load average 1.4-3.5): build times are indicative. "
              "m=16 with ef_construct=256 (the small-base graph) at 200k is in ../200k/ (hnsw_ef 128) and "
              "../200k_hnsw_ef512/."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["--summary"]:
        (OUT / "README.md").write_text(summary(), encoding="utf-8")
    else:
        size, m, efc = (int(a) for a in sys.argv[1:4])
        result = build_and_search(size, m, efc, [int(b) for b in sys.argv[4].split(",")])
        (OUT / f"{size}_m{m}_efc{efc}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
