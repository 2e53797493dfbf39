"""Put ctxopt inside an agent: wrap its chat client once, keep calling it as before.

With the real OpenAI SDK (or any OpenAI-compatible client: Azure, vLLM, Ollama, LiteLLM)::

    from openai import OpenAI
    import ctxopt

    client = ctxopt.wrap(OpenAI(), tier="free")
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    print(response.ctxopt_report)   # what was cut, tokens and dollars saved

    # per-user tiers and per-tenant accounting with monthly budget alerts:
    accountant = ctxopt.Accountant(budgets={"acme": 5_000_000}, on_alert=print)
    client = ctxopt.wrap(OpenAI(), tier=lambda call: PLANS[call["user"]], accountant=accountant,
                         tenant=lambda call: TENANT_OF[call["user"]], agent="support")
    ...
    accountant.save("usage.json")   # then: ctxopt report usage.json

This script runs offline against ctxopt's stand-in client, which refuses prompts over its window
the way a real model does. Run: python examples/agent_wrap.py [--save usage.json]
"""

import argparse
import asyncio
import json
from pathlib import Path

import ctxopt
from ctxopt.integrations.stand_in import AsyncStandInClient, ContextLengthExceeded, StandInClient

PLANS = {"alice@acme.com": "free", "bob@acme.com": "pro", "carol@globex.com": "free"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--save", metavar="JSON", help="save the accounting to this file for `ctxopt report`")
    args = parser.parse_args()

    conversation = json.loads((Path(__file__).parent / "oncall_conversation.json").read_text())
    llm = StandInClient(context_window=4096)  # a small 4k-token model, like many local ones

    # 1. Without ctxopt the long on-call conversation does not fit the model.
    try:
        llm.chat.completions.create(model="gpt-4o-mini", messages=conversation)
    except ContextLengthExceeded as exc:
        print(f"without ctxopt: {exc}\n")

    # 2. Wrapped: same call, the messages are fitted to the user's tier on the way out.
    accountant = ctxopt.Accountant(budgets={"acme.com": 12_000},
                                   on_alert=lambda alert: print(f"  budget alert: {alert}"))
    client = ctxopt.wrap(
        llm,
        tier=lambda call: PLANS[call["user"]],
        accountant=accountant,
        tenant=lambda call: call["user"].split("@")[1],
        agent="sre-copilot",
    )
    response = client.chat.completions.create(model="gpt-4o-mini", messages=conversation, user="alice@acme.com")
    print("with ctxopt:", response.choices[0].message.content[:70], "...")
    print(f"the model saw {response.usage.prompt_tokens} prompt tokens\n")
    print(response.ctxopt_report, "\n")
    assert client.last_report is response.ctxopt_report
    assert client.base_url == llm.base_url  # everything but chat calls passes through

    # 3. A day of traffic from two tenants, then the accounting summary.
    for turn in range(8):
        user = list(PLANS)[turn % len(PLANS)]
        client.chat.completions.create(model="gpt-4o-mini", messages=conversation[: 6 + turn], user=user)

    # 4. Async clients work the same way.
    async def ask_async() -> None:
        async_client = ctxopt.wrap(AsyncStandInClient(context_window=4096), tier="free",
                                   accountant=accountant, tenant="globex.com", agent="async-copilot")
        reply = await async_client.chat.completions.create(model="gpt-4o-mini", messages=conversation)
        print(f"async call fitted to {reply.ctxopt_report.tokens_after} tokens\n")

    asyncio.run(ask_async())
    print(accountant.summary())
    if args.save:
        accountant.save(args.save)
        print(f"\nsaved; print it again with: ctxopt report {args.save}")


if __name__ == "__main__":
    main()
