"""Tables of results: lines printed as the runs finish, and the Markdown written at the end."""

from __future__ import annotations

from typing import Any

from bench.events import EMITTERS, CommitCeiling, EventsResult
from bench.events_floor import FloorResult
from bench.imports_load import import_lines

#: Issue 19's targets: L-KERN's rate as a share of the floor's, per workload.
RATE_TARGETS = {
    "W1": 0.65,
    "W2": 0.65,
    "W3": 0.5,
    "W6": 0.5,
    "W7 upload": 0.5,
    "W7 download": 0.5,
    "W8 search": 0.5,
}
#: W8's stock changes: a rate of their own, at 64 connections, with no errors.
W8_STOCK_TARGET = 300.0
#: How a search may slow down from the smallest size to the largest: L-KERN's rate at
#: the largest as a share of its rate at the smallest (W3, W3s), or its p50 there as a
#: multiple of its p50 at the smallest (W8 search).
RATE_KEPT_TARGETS = {"W3": 0.2, "W3s": 0.7}
W8_P50_GROWTH_TARGET = 2.0
#: W1's p99 may be at most this multiple of the floor's, at 64 connections.
W1_P99_TARGET = 1.5
W4_P99_TARGET_MS = 50.0
#: W4: the highest sustained rate, events/s.
W4_RATE_TARGET = 2000
#: W5: GetContact calls/s as a share of the bare gRPC floor's.
W5_TARGET = 0.6

HTTP_HEADER = (
    f"{'size':>9} {'load':4} {'conns':>5} | {'L-KERN req/s':>12} {'p50 ms':>8} {'p99 ms':>8} | "
    f"{'floor req/s':>11} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>5} {'p99 x':>6} {'errors':>6}"
)
EVENTS_HEADER = (
    f"\n{'W4 events/s':>11} {'/commit':>7} {'achieved':>8} {'handled':>8} {'p50 ms':>8} "
    f"{'p99 ms':>8} "
    f"{'pub p50':>8} {'pub p99':>8} "
    f"{'max backlog':>11} {'end backlog':>11} {'busy':>5} sustained"
)


def _ratio(row: dict[str, Any], base: str = "floor", of: str = "lkern") -> float:
    """``of``'s rate as a share of ``base``'s."""
    rate = row[base]["rate"]
    return row[of]["rate"] / rate if rate else 0.0


def _p99_multiple(row: dict[str, Any]) -> float:
    floor = row["floor"]["p99_ms"]
    return row["lkern"]["p99_ms"] / floor if floor else 0.0


def http_line(row: dict[str, Any]) -> str:
    lk, fl = row["lkern"], row["floor"]
    return (
        f"{row['size']:>9} {row['workload']:4} {row['connections']:>5} | "
        f"{lk['rate']:>12.0f} {lk['p50_ms']:>8.1f} {lk['p99_ms']:>8.1f} | "
        f"{fl['rate']:>11.0f} {fl['p50_ms']:>8.1f} {fl['p99_ms']:>8.1f} | "
        f"{_ratio(row):>5.2f} {_p99_multiple(row):>6.1f} {lk['errors'] + fl['errors']:>6}"
    )


FILES_HEADER = (
    f"{'W7 1 MiB':11} {'conns':>5} | {'L-KERN files/s':>14} {'p50 ms':>8} {'p99 ms':>8} | "
    f"{'floor files/s':>13} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>5} {'errors':>6} "
    f"{'client CPU':>10}"
)


def files_line(row: dict[str, Any]) -> str:
    lk, fl = row["lkern"], row["floor"]
    return (
        f"{row['workload'].removeprefix('W7 '):11} {row['connections']:>5} | "
        f"{lk['rate']:>14.1f} {lk['p50_ms']:>8.1f} {lk['p99_ms']:>8.1f} | "
        f"{fl['rate']:>13.1f} {fl['p50_ms']:>8.1f} {fl['p99_ms']:>8.1f} | "
        f"{_ratio(row):>5.2f} {lk['errors'] + fl['errors']:>6} "
        f"{max(lk['client_cpu_share'], fl['client_cpu_share']):>10.0%}"
    )


def memory_line(memory: dict[str, Any]) -> str:
    """RSS of the issues replica and of the floor before and at the peak of the uploads."""
    lk, fl = memory["lkern"], memory["floor"]
    return (
        f"\nmemory while {lk['uploads']} uploads of 1 MiB run at once: issues replica "
        f"{lk['before_mib']:.0f} MiB before, {lk['peak_mib']:.0f} MiB at the peak "
        f"(+{lk['peak_mib'] - lk['before_mib']:.0f}); floor {fl['before_mib']:.0f} → "
        f"{fl['peak_mib']:.0f} MiB (+{fl['peak_mib'] - fl['before_mib']:.0f})"
    )


def layers_line(row: dict[str, Any]) -> str:
    """W1 on the floor with L-KERN's request layers: the price of the layers themselves."""
    la = row["layers"]
    return (
        f"{'':>9} {'':4} {'':>5} | {'floor + layers':>14} {la['rate']:>7.0f} req/s, "
        f"p50 {la['p50_ms']:.1f} ms, p99 {la['p99_ms']:.1f} ms: "
        f"{_ratio(row, of='layers'):.2f} of the floor, "
        f"L-KERN {_ratio(row, 'layers'):.2f} of it"
    )


def workers_line(row: dict[str, Any], workers: int) -> str:
    """W1 against contacts served by several worker processes, beside one."""
    wk = row["workers"]
    return (
        f"{'':>9} {'':4} {'':>5} | {f'{workers} workers':>14} {wk['rate']:>7.0f} req/s, "
        f"p50 {wk['p50_ms']:.1f} ms, p99 {wk['p99_ms']:.1f} ms: "
        f"{_ratio(row, 'lkern', 'workers'):.2f}x one worker, "
        f"{_ratio(row, of='workers'):.2f} of the floor, {wk['errors']} errors"
    )


def events_line(result: EventsResult) -> str:
    return (
        f"{result.target_rate:>11} {result.per_commit:>7} {result.achieved_rate:>8.0f} "
        f"{result.handled:>8} "
        f"{result.p50_ms:>8.1f} {result.p99_ms:>8.1f} {result.publish_p50_ms:>8.1f} "
        f"{result.publish_p99_ms:>8.1f} {result.max_backlog:>11} "
        f"{result.final_backlog:>11} {result.machine_busy:>5.0%} "
        f"{'yes' if result.sustained else 'no'}"
    )


def ceiling_line(ceiling: CommitCeiling) -> str:
    return (
        f"{'ceiling':>11}: {EMITTERS} connections commit {ceiling.with_notify:.0f}/s with a "
        f"NOTIFY, {ceiling.without_notify:.0f}/s without (one row each)"
    )


def events_floor_line(result: FloorResult) -> str:
    return (
        f"{'floor':>11} {result.rate:>5}/s: achieved {result.achieved:.0f}, received "
        f"{result.received}, end to end p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"produce p50 {result.produce_p50_ms:.1f} ms, p99 {result.produce_p99_ms:.1f} ms"
    )


def _calls_rate(result: dict[str, Any]) -> float:
    return result["calls"] / result["seconds"] if result["seconds"] else 0.0


def _grpc_figures(result: dict[str, Any]) -> str:
    return (
        f"{_calls_rate(result):.0f} calls/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, {result['errors']} errors, "
        f"client CPU {result['client_cpu_share']:.0%} of a core"
    )


def grpc_ratio(result: dict[str, Any], floor: dict[str, Any]) -> float:
    floor_rate = _calls_rate(floor)
    return _calls_rate(result) / floor_rate if floor_rate else 0.0


def grpc_line(result: dict[str, Any], floor: dict[str, Any] | None = None) -> str:
    """W5 at its concurrency; beside the gRPC floor (bench/floor/grpc_contacts.py) when run."""
    line = f"\nW5 GetContact at {result['concurrency']} in flight: L-KERN {_grpc_figures(result)}"
    if floor is None:
        return line
    ratio = grpc_ratio(result, floor)
    return (
        f"{line}\n{'':>3}floor {_grpc_figures(floor)}\n"
        f"{'':>3}ratio {ratio:.2f} (target ≥ {W5_TARGET})"
    )


def _verdict(row: dict[str, Any]) -> str:
    if row["workload"] == "W8 stock":
        if row["connections"] != 64:
            return "—"
        rate = row["lkern"]["rate"]
        return f"{'≥' if rate >= W8_STOCK_TARGET else '<'} {W8_STOCK_TARGET:.0f}/s"
    target = RATE_TARGETS.get(row["workload"])
    checks = [f"ratio {'≥' if _ratio(row) >= target else '<'} {target}"] if target else []
    if row["workload"] == "W1" and row["connections"] == 64:
        ok = _p99_multiple(row) <= W1_P99_TARGET
        checks.append(f"p99 {'≤' if ok else '>'} {W1_P99_TARGET:g}x floor")
    return ", ".join(checks) or "—"


def _http_table(rows: list[dict[str, Any]], noun: str) -> list[str]:
    lines = [
        f"| {noun} | workload | conns | L-KERN req/s | p50 ms | p99 ms | floor req/s | p50 ms "
        "| p99 ms | ratio | errors | target |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lk, fl = row["lkern"], row["floor"]
        lines.append(
            f"| {row['size']:,} | {row['workload']} | {row['connections']} | {lk['rate']:.0f} "
            f"| {lk['p50_ms']:.1f} | {lk['p99_ms']:.1f} | {fl['rate']:.0f} | {fl['p50_ms']:.1f} "
            f"| {fl['p99_ms']:.1f} | {_ratio(row):.2f} | {lk['errors'] + fl['errors']} "
            f"| {_verdict(row)} |"
        )
    return lines


def _by_size(rows: list[dict[str, Any]], workload: str) -> dict[int, dict[int, dict[str, Any]]]:
    """L-KERN's figures of ``workload``, by connection count, then by size."""
    table: dict[int, dict[int, dict[str, Any]]] = {}
    for row in rows:
        if row["workload"] == workload:
            table.setdefault(row["connections"], {})[row["size"]] = row["lkern"]
    return table


def search_growth(rows: list[dict[str, Any]]) -> str:
    """W8 search's L-KERN p50 at the largest size against the smallest, per connection
    count (empty with one size)."""
    parts = []
    for count, sizes in sorted(_by_size(rows, "W8 search").items()):
        small, large = min(sizes), max(sizes)
        if small != large and sizes[small]["p50_ms"]:
            growth = sizes[large]["p50_ms"] / sizes[small]["p50_ms"]
            ok = "≤" if growth <= W8_P50_GROWTH_TARGET else ">"
            parts.append(
                f"{count} connections: {sizes[large]['p50_ms']:.1f} / "
                f"{sizes[small]['p50_ms']:.1f} ms = {growth:.2f} x "
                f"({ok} {W8_P50_GROWTH_TARGET:g} x)"
            )
    return (
        f"W8 search p50 at the largest size against the smallest: {'; '.join(parts)}"
        if parts
        else ""
    )


def rate_kept(rows: list[dict[str, Any]]) -> list[str]:
    """Per search workload of :data:`RATE_KEPT_TARGETS`, L-KERN's rate at the largest
    contact count as a share of its rate at the smallest."""
    lines = []
    for workload, target in RATE_KEPT_TARGETS.items():
        parts = []
        for count, sizes in sorted(_by_size(rows, workload).items()):
            small, large = min(sizes), max(sizes)
            if small != large and sizes[small]["rate"]:
                kept = sizes[large]["rate"] / sizes[small]["rate"]
                parts.append(
                    f"{count} connections: {sizes[large]['rate']:.0f} / "
                    f"{sizes[small]['rate']:.0f} req/s = {kept:.2f} "
                    f"({'≥' if kept >= target else '<'} {target:g})"
                )
        if parts:
            lines.append(f"{workload} at {large:,} contacts against {small:,}: " + "; ".join(parts))
    return lines


def _files_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| W7, 1 MiB | conns | L-KERN files/s | p50 ms | p99 ms | floor files/s | p50 ms "
        "| p99 ms | ratio | errors | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lk, fl = row["lkern"], row["floor"]
        lines.append(
            f"| {row['workload'].removeprefix('W7 ')} | {row['connections']} | {lk['rate']:.1f} "
            f"| {lk['p50_ms']:.1f} | {lk['p99_ms']:.1f} | {fl['rate']:.1f} | {fl['p50_ms']:.1f} "
            f"| {fl['p99_ms']:.1f} | {_ratio(row):.2f} | {lk['errors'] + fl['errors']} "
            f"| {_verdict(row)} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Run started {results['started']}."]
    if results["http"]:
        lines += ["", *_http_table(results["http"], "contacts")]
    kept = rate_kept(results["http"])
    if kept:
        lines += ["", *kept]
    layered = [row for row in results["http"] if "layers" in row]
    if layered:
        lines += [
            "",
            "W1 against the floor with L-KERN's request layers (bench/floor/layers.py):",
            "",
            "| contacts | conns | floor req/s | floor + layers req/s | p50 ms | p99 ms "
            "| share of the floor | L-KERN req/s | L-KERN's share of floor + layers |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in layered:
            la, fl = row["layers"], row["floor"]
            lines.append(
                f"| {row['size']:,} | {row['connections']} | {fl['rate']:.0f} | {la['rate']:.0f} "
                f"| {la['p50_ms']:.1f} | {la['p99_ms']:.1f} | {_ratio(row, of='layers'):.2f} "
                f"| {row['lkern']['rate']:.0f} | {_ratio(row, 'layers'):.2f} |"
            )
    if results.get("events"):
        lines += [
            "",
            "| W4 target events/s | per commit | achieved | handled | p50 ms | p99 ms "
            "| published p50 ms | published p99 ms | max backlog | end backlog "
            "| cores busy | sustained |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for event in results["events"]:
            lines.append(
                f"| {event['target_rate']} | {event.get('per_commit', 1)} "
                f"| {event['achieved_rate']:.0f} | {event['handled']} "
                f"| {event['p50_ms']:.1f} | {event['p99_ms']:.1f} | {event['publish_p50_ms']:.1f} "
                f"| {event['publish_p99_ms']:.1f} | {event['max_backlog']} "
                f"| {event['final_backlog']} | {event.get('machine_busy', 0):.0%} "
                f"| {'yes' if event['sustained'] else 'no'} |"
            )
    if results.get("commit_ceiling"):
        ceiling = results["commit_ceiling"]
        lines += [
            "",
            f"One event per commit is bounded by PostgreSQL's commits: {EMITTERS} connections "
            f"commit {ceiling['with_notify']:.0f}/s with a NOTIFY and "
            f"{ceiling['without_notify']:.0f}/s without (one row each, bench/events.py "
            "`commit_ceiling`).",
        ]
    if results.get("events_floor"):
        lines += [
            "",
            "W4's floor on the same broker (bench/events_floor.py: plain aiokafka, no database):",
            "",
            "| events/s | achieved | received | p50 ms | p99 ms | produce p50 ms "
            "| produce p99 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for floor in results["events_floor"]:
            lines.append(
                f"| {floor['rate']} | {floor['achieved']:.0f} | {floor['received']} "
                f"| {floor['p50_ms']:.1f} | {floor['p99_ms']:.1f} | {floor['produce_p50_ms']:.1f} "
                f"| {floor['produce_p99_ms']:.1f} |"
            )
    if results.get("grpc"):
        rounds = results.get("grpc_rounds", [])
        if len(rounds) > 1:
            ratios = ", ".join(f"{pair['ratio']:.2f}" for pair in rounds)
            lines += ["", f"W5 ratios of the {len(rounds)} rounds: {ratios}; the median round:"]
        lines += ["", grpc_line(results["grpc"], results.get("grpc_floor")).strip()]
    several = [row for row in results["http"] if "workers" in row]
    if several:
        lines += [
            "",
            f"W1 against contacts served by {results.get('workers', 2)} worker processes "
            "(`lkern serve contacts --workers N`), beside one:",
            "",
            "| contacts | conns | one worker req/s | p99 ms | N workers req/s | p50 ms | p99 ms "
            "| N workers / one | N workers / floor | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in several:
            lk, wk = row["lkern"], row["workers"]
            lines.append(
                f"| {row['size']:,} | {row['connections']} | {lk['rate']:.0f} "
                f"| {lk['p99_ms']:.1f} | {wk['rate']:.0f} | {wk['p50_ms']:.1f} "
                f"| {wk['p99_ms']:.1f} | {_ratio(row, 'lkern', 'workers'):.2f} "
                f"| {_ratio(row, of='workers'):.2f} | {wk['errors']} |"
            )
    if results.get("issues"):
        lines += ["", *_http_table(results["issues"], "issues")]
    if results.get("inventory"):
        lines += ["", *_http_table(results["inventory"], "parts")]
        growth = search_growth(results["inventory"])
        if growth:
            lines += ["", growth]
    if results.get("imports"):
        lines += ["", *import_lines(results["imports"])]
    if results.get("files"):
        lines += ["", *_files_table(results["files"])]
    if results.get("files_memory"):
        lines += ["", memory_line(results["files_memory"]).strip()]
    return "\n".join(lines) + "\n"
