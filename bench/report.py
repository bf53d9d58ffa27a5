"""The one results table, and the spec's targets checked against it.

Every ratio is against the raw batch-32 throughput measured in the same run, so the table
compares like with like whatever the machine's speed or load that day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loadgen import LOADS, Load, WrkResult

RAW_BATCHES = ("1", "8", "32", "64")
REFERENCE_BATCH = "32"
HEADER = (
    "| model | measurement | req/s | sentences/s | p50 ms | p99 ms | errors | % of raw batch 32"
    " | CPU ms/sentence |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|",
)
BLANK = "–"


@dataclass
class Results:
    models: list[str]
    servers: list[str]
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    loads: dict[tuple[str, str, str], WrkResult] = field(default_factory=dict)
    peaks_mb: dict[str, list[float]] = field(default_factory=dict)

    def reference(self, model: str) -> float:
        return float(self.raw[model]["batches"][REFERENCE_BATCH]["sentences_per_s"])

    def sentences_per_s(self, server: str, model: str, load: Load) -> float:
        return self.loads[(server, model, load.key)].requests_per_s * load.sentences


def _number(value: float, decimals: int = 0) -> str:
    return BLANK if math.isnan(value) else f"{value:,.{decimals}f}"


def _ms(value: float) -> str:
    return BLANK if math.isnan(value) else f"{value:.2f}"


def _percent(value: float, reference: float) -> str:
    return f"{100 * value / reference:.0f}%" if reference > 0 else BLANK


def _errors(result: WrkResult) -> str:
    if result.requests == 0:
        return "**no request completed**"
    if result.errors == 0:
        return "0"
    parts = []
    if result.non_2xx:
        parts.append(f"{result.non_2xx} non-2xx")
    if result.socket_errors:
        parts.append(f"{result.socket_errors} socket")
    return "**" + ", ".join(parts) + "**"


def _cpu_per_sentence(result: WrkResult, load: Load) -> float:
    done = result.requests * load.sentences
    return result.server_cpu_s * 1000 / done if done else math.nan


def raw_rows(results: Results, model: str) -> list[str]:
    reference = results.reference(model)
    rows = []
    for batch in RAW_BATCHES:
        stats = results.raw[model]["batches"][batch]
        rate = float(stats["sentences_per_s"])
        rows.append(
            f"| {model} | raw session.run, batch {batch} | {BLANK} | {_number(rate)}"
            f" | {_ms(stats['p50_ms'])} | {BLANK} | {BLANK} | {_percent(rate, reference)}"
            f" | {_ms(stats['cpu_ms_per_sentence'])} |"
        )
    return rows


def load_rows(results: Results, model: str) -> list[str]:
    reference = results.reference(model)
    rows = []
    for load in LOADS:
        for server in results.servers:
            result = results.loads[(server, model, load.key)]
            rate = results.sentences_per_s(server, model, load)
            decimals = 1 if result.requests_per_s < 100 else 0
            rows.append(
                f"| {model} | {server} {load.label} | {_number(result.requests_per_s, decimals)}"
                f" | {_number(rate)} | {_ms(result.p50_ms)} | {_ms(result.p99_ms)}"
                f" | {_errors(result)} | {_percent(rate, reference)}"
                f" | {_ms(_cpu_per_sentence(result, load))} |"
            )
    return rows


def memory_rows(results: Results) -> list[str]:
    rows = []
    for server in results.servers:
        peaks = results.peaks_mb.get(server, [])
        each = ", ".join(f"{p:.0f}" for p in peaks) or "not read"
        top = f"max {max(peaks):.0f} MB" if peaks else BLANK
        cells = " | ".join([BLANK] * 7)
        rows.append(
            f"| all models | {server} peak RSS per worker (VmHWM): {top} (each: {each}) | {cells} |"
        )
    return rows


def table(results: Results) -> str:
    lines = list(HEADER)
    for model in results.models:
        lines += raw_rows(results, model) + load_rows(results, model)
    lines += memory_rows(results)
    return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    met: bool
    text: str

    def line(self) -> str:
        return f"- {'MET   ' if self.met else 'MISSED'} {self.text}"


def _throughput_target(results: Results, model: str, load: Load, share: float) -> Verdict:
    result = results.loads[("sentserve", model, load.key)]
    rate = results.sentences_per_s("sentserve", model, load)
    reference = results.reference(model)
    met = result.requests > 0 and result.errors == 0 and rate >= share * reference
    text = (
        f"{model} load {load.label}: {rate:,.0f} sentences/s ="
        f" {_percent(rate, reference)} of raw batch 32 ({reference:,.0f}/s);"
        f" target >= {share:.0%}{_naive_note(results, model, load, reference)}"
    )
    return Verdict(met, text + ("" if result.errors == 0 else f"; errors: {_errors(result)}"))


def _naive_note(results: Results, model: str, load: Load, reference: float) -> str:
    if "naive" not in results.servers:
        return ""
    rate = results.sentences_per_s("naive", model, load)
    return f" (naive: {_percent(rate, reference)})"


def _latency_target(results: Results, model: str) -> Verdict:
    load = LOADS[0]
    result = results.loads[("sentserve", model, load.key)]
    raw_p50 = float(results.raw[model]["batches"]["1"]["p50_ms"])
    met = result.requests > 0 and result.errors == 0 and result.p50_ms <= raw_p50 + 1.0
    text = (
        f"{model} load {load.label}: p50 {_ms(result.p50_ms)} ms; target <= raw batch-1 p50"
        f" {raw_p50:.2f} ms + 1 ms = {raw_p50 + 1:.2f} ms"
    )
    return Verdict(met, text)


def verdicts(results: Results) -> list[Verdict]:
    """The spec's targets, for the models of this run that have one."""
    by_key = {load.key: load for load in LOADS}
    found = []
    if "lstm-multilingual" in results.models:
        found.append(_throughput_target(results, "lstm-multilingual", by_key["b"], 0.75))
    if "bow-spanish" in results.models:
        found.append(_throughput_target(results, "bow-spanish", by_key["c"], 0.60))
    found += [_latency_target(results, model) for model in results.models]
    return found
