"""Writing benchmark results: a Markdown table and a recall-vs-tokens plot (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def write_table(path: Path, title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                notes: Sequence[str] = ()) -> None:
    """A Markdown file: a title, the table, then one paragraph per note."""
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + [f"{note}\n" for note in notes]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot_curves(path: Path, curves: Mapping[str, Sequence[tuple[float, float]]], *,
                points: Mapping[str, tuple[float, float]] | None = None, title: str, xlabel: str,
                ylabel: str, xlog: bool = False) -> None:
    """One line per method through its (x, y) points, single reference points as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, xy in curves.items():
        xs, ys = zip(*xy)
        ax.plot(xs, ys, marker="o", linewidth=2.5 if name.startswith("ctxopt") else 1.2, label=name)
    for name, (x, y) in (points or {}).items():
        ax.scatter([x], [y], marker="*", s=120, zorder=3, label=name)
    if xlog:
        ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
