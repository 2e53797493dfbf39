"""The one-screen text summary of an :class:`~ctxopt.accounting.Accountant`."""

from __future__ import annotations

from collections.abc import Sequence

from ctxopt.accounting.accountant import Accountant, total_row, usage_rows
from ctxopt.accounting.usage import Usage

HEADER = (f"{'tenant':<14} {'agent':<12} {'tier':<8} {'requests':>8} {'tokens in':>11} {'tokens out':>10} "
          f"{'saved':>6} {'$ cost':>10} {'$ saved':>10} {'cache':>6} {'p50 ms':>7} {'p95 ms':>7}")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _row(u: Usage) -> str:
    return (f"{_cut(u.tenant, 14):<14} {_cut(u.agent, 12):<12} {_cut(u.tier, 8):<8} {u.requests:>8,} "
            f"{u.tokens_before:>11,} {u.tokens_after:>10,} {u.saved_share:>6.0%} {u.cost:>10.4f} {u.cost_saved:>10.4f} "
            f"{_rate(u.cache_hit_rate):>6} {u.p50_ms:>7.1f} {u.p95_ms:>7.1f}")


def render(accountant: Accountant, top: int = 15, by: Sequence[str] = ("tenant", "agent", "tier"),
           tenant: str | None = None) -> str:
    tallies = accountant.tallies()  # one read: the rows and the totals above them agree
    rows = usage_rows(tallies, by, tenant=tenant)
    total = total_row(tallies, tenant=tenant)
    tenants = {key[0] for key in tallies if tenant in (None, key[0])}
    lines = [
        f"ctxopt usage: {total.requests:,} requests from {len(tenants)} tenant(s); "
        f"{total.tokens_before:,} -> {total.tokens_after:,} tokens ({total.saved_share:.0%} saved)",
        f"cost ${total.cost:.4f} vs ${total.cost_without_ctxopt:.4f} without ctxopt, "
        + (f"${total.cost_saved:.4f} saved" if total.cost_saved >= 0 else f"${-total.cost_saved:.4f} MORE"),
        f"optimisation latency p50 {total.p50_ms:.1f} ms, p95 {total.p95_ms:.1f} ms; "
        f"embedding cache hit rate {_rate(total.cache_hit_rate)}",
    ]
    if total.billed_requests:
        lines.append(f"billed by providers for {total.billed_requests:,} request(s): {total.billed_prompt_tokens:,} "
                     f"prompt tokens, {total.billed_cached_tokens:,} from cache, ${total.billed_cost:.4f}")
    if rows:
        lines += ["", HEADER] + [_row(u) for u in rows[:top]]
        if len(rows) > top:
            lines.append(f"... {len(rows) - top} more row(s); `ctxopt report --json` lists them all")
    if accountant.budgets:
        lines += ["", "monthly budgets (tokens sent to the model):"]
        for name, status in accountant.budget_status().items():
            if tenant is not None and name != tenant:
                continue
            lines.append(f"  {_cut(name, 16):<16} {status['month'] or 'no use yet':<10} "
                         f"{status['used']:>13,} / {status['budget']:<13,} {status['share']:>5.0%}")
    return "\n".join(lines)
