"""A RAG support agent over a small knowledge base: ingest -> retrieve -> prune -> fit.

The knowledge base is examples/kb/*.md (Acme Shop's policies). It is ingested into embedded Qdrant
on disk, then every question goes through a pipeline that retrieves the best chunks (hybrid dense +
keyword search inside Qdrant), keeps only their sentences relevant to the question, and fits the
prompt to the free tier. A stand-in for an OpenAI client receives the fitted messages.

Run: python examples/rag_agent.py ["your question"]
"""

import sys
import tempfile
from pathlib import Path

import ctxopt
from ctxopt.ingest import read_documents
from ctxopt.integrations.stand_in import StandInClient
from ctxopt.kb import KnowledgeBase
from ctxopt.stages.prune_chunks import PruneChunks
from ctxopt.stages.retrieve import Retrieve
from ctxopt.stores.qdrant import open_store

KB_DOCS = Path(__file__).parent / "kb"


def main() -> None:
    default = "I opened my headphones 10 days ago, can I still return them and is there a fee?"
    question = sys.argv[1] if len(sys.argv) > 1 else default
    kb_path = tempfile.mkdtemp(prefix="ctxopt-kb-")

    # 1. Ingest (idempotent: running it again writes nothing).
    kb = KnowledgeBase("acme-policies", store=open_store(path=kb_path), chunk_tokens=120, overlap=20)
    print(kb.ingest(read_documents(KB_DOCS), progress=False))
    print(kb.ingest(read_documents(KB_DOCS), progress=False), "(second ingest)\n")

    # 2. The pipeline: plain data, so it could equally live in a pipeline.toml.
    pipeline = ctxopt.Pipeline(stages=[
        Retrieve(kb="acme-policies", path=kb_path, mode="hybrid", k=4),
        PruneChunks(keep_ratio=0.5),
    ], model="gpt-4o-mini")
    stand_in = StandInClient(context_window=4096)
    client = ctxopt.wrap(stand_in, tier="free", pipeline=pipeline)

    history = [
        {"role": "system", "content": "You are Acme Shop's support agent. Answer from the policy context only."},
        {"role": "user", "content": "Hi, I bought noise-cancelling headphones from you."},
        {"role": "assistant", "content": "Thanks for reaching out! How can I help with your headphones?"},
        {"role": "user", "content": question},
    ]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=history)

    report = response.ctxopt_report
    print(report)
    print("\nPolicy context the model sees (pruned to the sentences that matter):")
    for message in stand_in.last_request["messages"]:
        if message["content"].startswith("Relevant context"):
            print("  " + message["content"].replace("\n", "\n    "))
    print(f"\n{response.usage.prompt_tokens} prompt tokens sent; stand-in reply: {response.choices[0].message.content[:80]}")


if __name__ == "__main__":
    main()
