"""reply.py's scoring and report: every event matched to its replies, medians, ratios, targets.

``score`` matches each event to the replies its contact received at the Graph sink (exactly once,
the expected text, sender and token), and gives replies/s and the latency distribution of one
run; ``summarize_runs`` takes the medians per side, the ratio appliance/pywa and checks the targets;
``print_summary`` prints them.
"""

from __future__ import annotations

import math
from typing import Any

from _support import median
from reply_load import Driver, Load

__all__ = [
    "SIDES",
    "TARGET_P99_MS",
    "TARGET_RATIO",
    "distribution",
    "percentile",
    "print_summary",
    "score",
    "summarize_runs",
]

SIDES = ("appliance", "pywa")
TARGET_RATIO = 1.5
TARGET_P99_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (``q`` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(ms: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(ms, q), 2) for q in (50, 90, 99)} | {
        "max": round(max(ms), 2) if ms else math.nan, "mean": round(sum(ms) / len(ms), 2) if ms else math.nan}


def score(driver: Driver, load: Load, arrivals: dict[int, float]) -> dict[str, Any]:
    """Match every event to the replies its contact received; ``arrivals`` gets the first
    reply's arrival time per event."""
    latencies, acks = [], []
    unanswered = duplicates = wrong_text = unauthorized = wrong_sender = not_acked = 0
    known: set[str] = set()
    first_sent = min(s.sent for s in load.sent.values())
    last_reply = first_sent
    for event in load.events:
        known.update((event.wa_id, event.bsuid))
        record = load.sent.get(event.seq)
        if record is None or record.status != 200:
            not_acked += 1
            continue
        acks.append((record.acked - record.sent) * 1000)
        replies = (driver.sink.replies.get(event.wa_id, []) + driver.sink.replies.get(event.bsuid, []))
        if not replies:
            unanswered += 1
            continue
        duplicates += len(replies) - 1
        first = min(r.at for r in replies)
        arrivals[event.seq] = first
        last_reply = max(last_reply, first)
        latencies.append((first - record.sent) * 1000)
        wrong_text += sum(r.text != event.expected for r in replies)
        unauthorized += sum(not r.authorized for r in replies)
        wrong_sender += sum(r.sender != event.phone_number_id for r in replies)
    strangers = sum(len(v) for k, v in driver.sink.replies.items() if k not in known)
    elapsed = last_reply - first_sent
    answered = len(latencies)
    statuses: dict[str, int] = {}
    for record in load.sent.values():
        statuses[str(record.status)] = statuses.get(str(record.status), 0) + 1
    return {
        "events": len(load.events), "answered": answered, "unanswered": unanswered, "not_acknowledged": not_acked,
        "duplicate_replies": duplicates, "wrong_text": wrong_text, "unauthorized": unauthorized,
        "wrong_sender": wrong_sender, "replies_to_unknown_recipients": strangers,
        "reply_timeouts": load.timeouts, "transport_errors": load.transport_errors[:20],
        "deliveries_posted_again": sum(e.startswith("attempt 1") for e in load.transport_errors),
        "ack_statuses": statuses, "other_graph_requests": driver.sink.counts.other,
        "graph_connections_opened": driver.sink.counts.connections,
        "seconds": round(elapsed, 3), "replies_per_s": round(answered / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": distribution(latencies), "ack_ms": distribution(acks),
        "exactly_once": answered == len(load.events) and duplicates == 0 and strangers == 0
        and wrong_text == 0 and unauthorized == 0 and wrong_sender == 0,
    }



def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        mine = [r for r in runs if r["side"] == side]
        if not mine:
            continue
        out[side] = {
            "replies_per_s_median": median([r["replies_per_s"] for r in mine]),
            "p50_ms_median": median([r["latency_ms"]["p50"] for r in mine]),
            "p90_ms_median": median([r["latency_ms"]["p90"] for r in mine]),
            "p99_ms_median": median([r["latency_ms"]["p99"] for r in mine]),
            "p99_ms_worst": max(r["latency_ms"]["p99"] for r in mine),
            "ack_p99_ms_median": median([r["ack_ms"]["p99"] for r in mine]),
            "server_cpu_ms_per_reply_median": median([r["server_cpu_ms_per_reply"] for r in mine]),
            "server_cpu_ms_per_reply_event_loop_thread_median": median(
                [r["server_cpu_ms_per_reply_event_loop_thread"] for r in mine]),
            "server_cpu_ms_per_reply_other_threads_median": median(
                [r["server_cpu_ms_per_reply_other_threads"] for r in mine]),
            "graph_connections_opened_median": median([r["graph_connections_opened"] for r in mine]),
            "server_cpu_share_median": median([r["server_cpu_share_of_one_core"] for r in mine]),
            "rss_mib_median": median([r["rss_mib_at_end"] for r in mine]),
            "every_event_answered_exactly_once": all(r["exactly_once"] for r in mine),
        }
        if side == "appliance":
            out[side]["storage_ok"] = all(r["storage"]["ok"] for r in mine)
            stages = [k for k in mine[0]["storage"]["breakdown_ms"]]
            out[side]["stages_ms_median"] = {
                stage: {q: median([r["storage"]["breakdown_ms"][stage][q] for r in mine
                                   if stage in r["storage"]["breakdown_ms"]]) for q in ("p50", "p99")}
                for stage in stages
            }
    if "appliance" in out and "pywa" in out:
        paired = []
        for tag in sorted({r["round"] for r in runs}):
            pair = {r["side"]: r for r in runs if r["round"] == tag}
            if len(pair) == 2 and pair["pywa"]["replies_per_s"] > 0:
                paired.append(pair["appliance"]["replies_per_s"] / pair["pywa"]["replies_per_s"])
        a, b = out["appliance"], out["pywa"]
        ratio = round(a["replies_per_s_median"] / b["replies_per_s_median"], 3)
        out["ratio"] = {
            "replies_per_s": ratio,
            "replies_per_s_paired_median": round(median(paired), 3) if paired else None,
            "p50": round(a["p50_ms_median"] / b["p50_ms_median"], 3),
            "p99": round(a["p99_ms_median"] / b["p99_ms_median"], 3),
        }
        out["targets"] = {
            "replies_per_s_ratio_ge_1_5": ratio >= TARGET_RATIO,
            "every_event_answered": a["every_event_answered_exactly_once"],
            "p99_lt_100_ms": a["p99_ms_median"] < TARGET_P99_MS,
        }
    return out


def print_summary(summary: dict[str, Any]) -> None:
    """The per-side medians, the appliance's stages and the ratio against the targets."""
    for side in SIDES:
        if side in summary:
            s = summary[side]
            print(f"{side:<9} median {s['replies_per_s_median']:>7.1f} replies/s  p50 {s['p50_ms_median']:6.1f} ms  "
                  f"p99 {s['p99_ms_median']:6.1f} ms (worst round {s['p99_ms_worst']:.1f})  "
                  f"{s['server_cpu_ms_per_reply_median']:.2f} server CPU-ms/reply  RSS {s['rss_mib_median']} MiB  "
                  f"exactly once: {'yes' if s['every_event_answered_exactly_once'] else 'NO'}")
    if "appliance" in summary and "stages_ms_median" in summary["appliance"]:
        print("appliance stages (median of rounds): " + ", ".join(
            f"{k} p50 {v['p50']:.1f} / p99 {v['p99']:.1f} ms" for k, v in summary["appliance"]["stages_ms_median"].items()))
    if "ratio" in summary:
        r, t = summary["ratio"], summary["targets"]
        print(f"appliance/pywa: replies/s {r['replies_per_s']:.3f} (median of per-round ratios "
              f"{r['replies_per_s_paired_median']:.3f}), target >= {TARGET_RATIO} "
              f"{'met' if t['replies_per_s_ratio_ge_1_5'] else 'MISSED'}; p99 {r['p99']:.3f}x; "
              f"appliance p99 < {TARGET_P99_MS:.0f} ms {'met' if t['p99_lt_100_ms'] else 'MISSED'}; "
              f"every event answered {'yes' if t['every_event_answered'] else 'NO'}")
