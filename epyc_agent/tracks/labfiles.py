"""The lab's own result files, updated in place after every run when `results.layout` is `lab`.

In `lab_research_dir` (the lab's epyc-inference-research checkout):
- `docs/reference/benchmarks/RESULTS.md`: one row per run in our marked section; everything outside
  the markers is kept byte for byte (the section is added before the first `##` heading once).
- `docs/reference/models/QUIRKS.md`: newly found quirks (a divergence from the greedy output that is
  not a near-tie, a refused method) appended in the lab's Issue/Symptoms/Workaround/Discovered form,
  each once (a hidden key per quirk).
- `benchmarks/results/reviews/summary.csv`: the model's speed columns (avg_tps, spec_*, lookup_*);
  every other row and column is kept byte for byte, line endings included.
- the run folder's `metadata.json`, as the lab's process_benchmark_results.sh writes it.

Each update is read-modify-write under an exclusive flock on the checkout folder (a lock that
survives the atomic renames), so concurrent runs never lose each other's rows.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError, MethodRefused
from ..fileio import write_text_atomic
from ..models.inventory import file_stem

if TYPE_CHECKING:
    from ..config import Config

RESULTS_MD = os.path.join("docs", "reference", "benchmarks", "RESULTS.md")
QUIRKS_MD = os.path.join("docs", "reference", "models", "QUIRKS.md")
SUMMARY_CSV = os.path.join("benchmarks", "results", "reviews", "summary.csv")
RUNS_BEGIN = "<!-- epyc-agent:runs:begin (rows between these markers are rewritten after every run) -->"
RUNS_END = "<!-- epyc-agent:runs:end -->"
QUIRKS_BEGIN = "<!-- epyc-agent:quirks:begin (entries below are appended by epyc-agent, each once) -->"
QUIRKS_END = "<!-- epyc-agent:quirks:end -->"
QUIRK_KEY = "<!-- epyc-agent:quirk {} -->"
RUN_COLUMNS = ["Run", "Date", "Track", "Model", "Workload", "Baseline t/s [min-max]", "Best config",
               "Best t/s [min-max]", "Speedup", "Acceptance", "Identical", "Reps", "Backend"]  # fmt: skip
# The lab's summary.csv header (reviews/summary.csv): quality columns, then the speed columns we fill.
SUMMARY_HEADER = ["model", "thinking", "general", "math", "agentic", "coder", "instruction_precision",
                  "long_context", "vl", "total", "pct_str", "avg_tps", "spec_draft", "spec_best_tps",
                  "spec_k_results", "lookup_best_tps", "lookup_n_results", "spec_lookup_best_tps",
                  "spec_lookup_results"]  # fmt: skip
LATE_COLUMN = "vl"  # added to the lab's header after most rows were written (see _layout)
# method -> (its results column, its best column, the parameter its keys name, the key prefix)
SWEEP_COLUMNS = {
    "draft_model": ("spec_k_results", "spec_best_tps", "draft_k", "k"),
    "prompt_lookup": ("lookup_n_results", "lookup_best_tps", "ngram_min", "n"),  # the lab: --lookup-ngram-min
}


def lab_path(cfg: Config, rel: str) -> str:
    return os.path.join(cfg.lab_research_dir, rel)


def output_paths(cfg: Config) -> list[str]:
    """What a run writes in the lab's checkout (for the safety gate); the checkout must exist."""
    from .results import runs_dir

    if not os.path.isdir(cfg.lab_research_dir):
        raise EpycAgentError(
            f"results.layout is lab but lab_research_dir {cfg.lab_research_dir} does not exist",
            hint="set lab_research_dir to the lab's epyc-inference-research checkout",
        )
    return [runs_dir(cfg), *(lab_path(cfg, r) for r in (RESULTS_MD, QUIRKS_MD, SUMMARY_CSV))]


@contextmanager
def locked(folder: str) -> Iterator[None]:
    """An exclusive flock on `folder` itself: the files inside are replaced by rename, so a lock on
    one of them would not outlive the first write."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _edit(path: str, change: Any) -> bool:
    """Replace `path` with `change(old text)` (atomically); False when nothing changed."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    new = change(old)
    if new == old:
        return False
    write_text_atomic(path, new)
    return True


# --- RESULTS.md ---------------------------------------------------------------------------


def _best(summary: list[dict[str, Any]]) -> dict[str, Any]:
    methods = [s for s in summary if s["kind"] != "baseline"]
    return max(methods, key=lambda s: s["decode_tps"]["median"] or 0) if methods else summary[0]


def run_row(conf: dict[str, Any], summary: list[dict[str, Any]]) -> list[Any]:
    """A run's RESULTS.md row: its baseline, its best configuration and that configuration's figures."""
    from .report import fmt_spread

    base, best = summary[0], _best(summary)
    wl = conf["workload"]
    return [
        conf["run_id"],
        (conf.get("started") or conf["created"])[:10],
        f"{conf['track']['id']} {conf['track']['method']}",
        file_stem(conf["model"]["path"]) + (f" + {file_stem(conf['draft']['path'])}" if conf.get("draft") else ""),
        f"{wl['name']} v{wl['version']} ({wl['prompts']}p)",
        fmt_spread(base["decode_tps"]),
        best["config"],
        fmt_spread(best["decode_tps"]),
        f"{best['speedup']}x" if best["speedup"] is not None else None,
        best["acceptance_rate"],
        f"{best['identical_outputs']}/{best['prompts']}" if best["identical_outputs"] is not None else None,
        best["reps"],
        conf["backend"]["backend"],
    ]


def _first_heading(text: str) -> int:
    """Offset of the first `## ` line outside code fences, or -1."""
    fence, pos = False, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("## "):
            return pos
        pos += len(line)
    return -1


def upsert_run_row(text: str, row: list[Any]) -> str:
    """`text` with `row` in our section (replacing the row of the same run); the rest untouched."""
    from .report import md_table

    if RUNS_BEGIN in text and RUNS_END in text.split(RUNS_BEGIN, 1)[1]:
        head, rest = text.split(RUNS_BEGIN, 1)
        body, tail = rest.split(RUNS_END, 1)
    else:
        text = text or "# Research Results Summary\n\n"
        at = _first_heading(text)
        head, body = (text[:at], "") if at >= 0 else (text + ("\n" if text and not text.endswith("\n") else ""), "")
        tail = ("\n\n---\n\n" + text[at:]) if at >= 0 else "\n"
        head += (
            "## epyc-agent track runs\n\n"
            "One row per `epyc-agent track run` (median decode tokens/s, min-max over reps); the run "
            "folder holds every figure.\n\n"
        )
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in (RUN_COLUMNS[0], "") and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = line
    table = md_table(RUN_COLUMNS, [row]).splitlines()
    rows[str(row[0])] = table[2]
    body = "\n" + "\n".join([*table[:2], *(rows[k] for k in sorted(rows))]) + "\n"
    return head + RUNS_BEGIN + body + RUNS_END + tail


# --- QUIRKS.md ----------------------------------------------------------------------------


def run_quirks(conf: dict[str, Any], summary: list[dict[str, Any]], near_tie: float) -> list[dict[str, str]]:
    """Divergences of a lossless (speculative) method from the greedy baseline where the baseline's
    top-2 margin was above `near_tie`: not a float tie, so a real fault. Unknown margins are not
    claimed."""
    from .spec import get_track

    if not get_track(str(conf["track"]["id"])).speculative:
        return []  # expert reduction changes the model: its divergences are expected
    model, method, out = file_stem(conf["model"]["path"]), conf["track"]["method"], []
    for s in summary:
        real = [d for d in s.get("divergences") or [] if d.get("margin") is not None and d["margin"] > near_tie]
        if not real:
            continue
        where = "; ".join(f"prompt {d['prompt_id']} at token {d['index']} (margin {d['margin']})" for d in real)
        out.append(
            {
                "key": f"{model}|divergence|{method}|{s['config']}",
                "title": f"{model}: {method} changes the greedy output",
                "issue": f"track {conf['track']['id']} ({method}, `{s['config']}`) diverges from the greedy "
                f"baseline where the baseline's top-2 logit margin was above {near_tie} (not a near-tie)",
                "symptoms": f"{len(real)}/{s['prompts']} prompt(s) differ: {where}",
                "workaround": f"treat {method} on this model as lossy until explained; "
                f"compare the outputs in run {conf['run_id']}'s output.jsonl",
                "discovered": f"{(conf.get('started') or conf['created'])[:10]} (run {conf['run_id']})",
            }
        )
    return out


def refusal(e: MethodRefused) -> dict[str, Any] | None:
    """What a quirk record needs from a refusal; None when it is no model's quirk (a wrong track)."""
    return {**e.details, "message": str(e), "hint": e.hint} if e.details else None


def refusal_quirk(refused: dict[str, Any]) -> dict[str, str]:
    """A method the rules refused for a model (or a draft refused for it)."""
    model = file_stem(refused["model"])
    draft = file_stem(refused["draft"]) if refused.get("draft") else ""
    return {
        "key": f"{model}|refused|{refused['method']}|{draft}",
        "title": f"{model}: {refused['method']} refused" + (f" with draft {draft}" if draft else ""),
        "issue": refused["message"],
        "symptoms": f"`epyc-agent track run {refused['track']}` refuses before loading the model",
        "workaround": refused.get("hint") or "see `epyc-agent models show`",
        "discovered": f"{time.strftime('%Y-%m-%d')} (epyc-agent track run)",
    }


def append_quirks(text: str, quirks: list[dict[str, str]]) -> str:
    """`text` with the quirks not yet in it added at the end of our section (made once, at the end)."""
    new = [q for q in quirks if QUIRK_KEY.format(q["key"]) not in text]
    if not new:
        return text
    entries = "".join(
        f"\n### {q['title']}\n{QUIRK_KEY.format(q['key'])}\n\n**Issue**: {q['issue']}\n\n"
        f"**Symptoms**: {q['symptoms']}\n\n**Workaround**: {q['workaround']}\n\n**Discovered**: {q['discovered']}\n"
        for q in new
    )
    if QUIRKS_BEGIN in text and QUIRKS_END in text.split(QUIRKS_BEGIN, 1)[1]:
        at = text.index(QUIRKS_END, text.index(QUIRKS_BEGIN))
        return text[:at] + entries.lstrip("\n") + "\n" + text[at:]
    lead = "# Model Runtime Quirks\n\n" if not text else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{lead}## Found by epyc-agent\n\n{QUIRKS_BEGIN}\n{entries.lstrip(chr(10))}\n{QUIRKS_END}\n"


# --- summary.csv --------------------------------------------------------------------------


def _f1(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def speed_cells(conf: dict[str, Any], summary: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """summary.csv cells per row name: the baseline's avg_tps; a draft/lookup sweep as `k8:29.7`
    entries (dicts, merged with the row's earlier ones); each expert count as its own `<model>_moe<N>`
    row, as the lab names them."""
    model, method = file_stem(conf["model"]["path"]), conf["track"]["method"]
    rows: dict[str, dict[str, Any]] = {model: {"avg_tps": _f1(summary[0]["decode_tps"]["median"])}}
    for s in summary[1:]:
        tps = s["decode_tps"]["median"]
        if method == "moe_reduction":
            rows[f"{model}_moe{s['params']['expert_used_count']}"] = {"avg_tps": _f1(tps)}
        elif method in SWEEP_COLUMNS:
            col, _best_col, param, prefix = SWEEP_COLUMNS[method]
            value = (s.get("params") or {}).get(param)
            key = f"{prefix}{value}" if value is not None else s["config"]
            entries = rows[model].setdefault(col, {})
            entries[key] = max(tps or 0.0, entries.get(key, 0.0))
    if method == "draft_model" and conf.get("draft"):
        rows[model]["spec_draft"] = file_stem(conf["draft"]["path"])
    return rows


def _parse_entries(cell: str) -> dict[str, float]:
    out = {}
    for part in cell.split(","):
        key, sep, value = part.strip().partition(":")
        try:
            out[key] = float(value) if sep else None
        except ValueError:
            continue
    return {k: v for k, v in out.items() if v is not None}


def _records(text: str) -> list[tuple[str, list[str]]]:
    """(raw text, fields) per CSV record; a quoted field may span lines."""
    out, raw = [], ""
    for line in text.splitlines(keepends=True):
        raw += line
        if raw.count('"') % 2 == 0:
            out.append((raw, next(csv.reader([raw.rstrip("\r\n")]), [])))
            raw = ""
    if raw:
        out.append((raw, next(csv.reader([raw.rstrip("\r\n")]), [])))
    return out


def _csv_line(fields: list[str], eol: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerow(fields)
    return buf.getvalue()


def _layout(header: list[str], fields: list[str]) -> list[str]:
    """The columns a row was written with. The lab added `vl` to the header without migrating the
    older rows, which are one field short: those are read and updated in the header-without-vl layout."""
    if len(fields) == len(header) - 1 and LATE_COLUMN in header:
        return [c for c in header if c != LATE_COLUMN]
    return header


def update_summary_csv(text: str, rows: dict[str, dict[str, Any]], path: str = "summary.csv") -> str:
    """`text` with each named row's speed cells set (a missing row appended); other rows byte for byte."""
    records = _records(text) or [(_csv_line(SUMMARY_HEADER, "\r\n"), list(SUMMARY_HEADER))]  # the lab's CRLF
    eol = "\r\n" if records[0][0].endswith("\r\n") else "\n"
    header = list(records[0][1])
    needed = {c for cells in rows.values() for c in cells}
    needed |= {b for c, b, _p, _x in SWEEP_COLUMNS.values() if c in needed}
    missing = [c for c in SUMMARY_HEADER if c in needed and c not in header]
    if missing:
        if any(len(f) > len(header) for _r, f in records[1:]):
            raise EpycAgentError(
                f"{path}: the header lacks {', '.join(missing)} and some rows have unnamed extra columns",
                hint="add the columns to the header by hand, then rerun",
            )
        header += missing
        records[0] = (_csv_line(header, eol), header)
    if not records[-1][0].endswith(("\n", "\r")):
        records[-1] = (records[-1][0] + eol, records[-1][1])
    index = {f[0]: i for i, (_r, f) in enumerate(records) if f and i}
    for name, cells in rows.items():
        i = index.get(name)
        fields = list(records[i][1]) if i is not None else [name]
        cols = _layout(header, fields)
        fields += [""] * (len(cols) - len(fields))
        for col, value in cells.items():
            if isinstance(value, dict):
                merged = {**_parse_entries(fields[cols.index(col)]), **value}
                ordered = sorted(merged.items(), key=lambda kv: (len(kv[0]), kv[0]))
                fields[cols.index(col)] = ",".join(f"{k}:{v:.1f}" for k, v in ordered)
                best = next(b for c, b, _p, _x in SWEEP_COLUMNS.values() if c == col)
                fields[cols.index(best)] = _f1(max(merged.values()))
            else:
                fields[cols.index(col)] = value
        line = _csv_line(fields, eol)
        if i is None:
            index[name] = len(records)
            records.append((line, fields))
        else:
            records[i] = (line, fields)
    return "".join(r for r, _f in records)


# --- metadata.json and the update after a run ---------------------------------------------


def _free_h(n_bytes: int) -> str:
    """A size as `free -h` prints it (62Gi, 1.1Ti): what the lab's metadata.json holds."""
    size, unit = float(n_bytes), "B"
    for unit in ("B", "Ki", "Mi", "Gi", "Ti", "Pi"):
        if size < 1024 or unit == "Pi":
            break
        size /= 1024
    return f"{size:.1f}{unit}" if size < 10 else f"{size:.0f}{unit}"


def metadata_json(conf: dict[str, Any]) -> dict[str, Any]:
    """The lab's run metadata (its keys and value forms), plus where our own record is."""
    import calendar

    import psutil

    backend = conf["backend"]
    line = backend.get("llama_cpp_version") or ""
    m = re.search(r"version:\s*(\d+)\s*\(([0-9a-f]+)\)", line)
    version, commit = (
        (m.group(1), m.group(2)) if m else (line or f"llama-cpp-python {backend.get('llama_cpp_python')}", "unknown")
    )
    started = time.strptime(conf.get("started") or conf["created"], "%Y-%m-%dT%H:%M:%SZ")
    local = time.localtime(calendar.timegm(started))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", local)
    return {
        "run_id": conf["run_id"],
        "timestamp": f"{stamp[:-2]}:{stamp[-2:]}",
        "system": {
            "hostname": conf["host"]["hostname"],
            "cpu": conf["host"]["cpu"],
            "ram": _free_h(psutil.virtual_memory().total),
        },
        "llama_cpp": {"version": version, "commit": commit},
        "prompt_version": str(conf["workload"]["version"]),
        "benchmark_version": "1.0",
        "domains_processed": [conf["workload"]["name"]],
        "epyc_agent": {
            "version": conf["epyc_agent"],
            "track": conf["track"]["id"],
            "method": conf["track"]["method"],
            "model": os.path.basename(conf["model"]["path"]),
            "record": "config.json",
        },
    }


def update_after_run(cfg: Config, run_dir: str) -> list[str]:
    """RESULTS.md, QUIRKS.md and summary.csv after the run in `run_dir`; the paths that changed."""
    from ..sessions import read_json

    conf = read_json(os.path.join(run_dir, "config.json"))
    summary = read_json(os.path.join(run_dir, "summary.json"))["summary"]
    quirks = run_quirks(conf, summary, float(cfg.results["near_tie_margin"]))
    csv_path = lab_path(cfg, SUMMARY_CSV)
    changes = [
        (lab_path(cfg, RESULTS_MD), lambda t: upsert_run_row(t, run_row(conf, summary))),
        (lab_path(cfg, QUIRKS_MD), lambda t: append_quirks(t, quirks)),
        (csv_path, lambda t: update_summary_csv(t, speed_cells(conf, summary), csv_path)),
    ]
    with locked(cfg.lab_research_dir):
        return [path for path, change in changes if _edit(path, change)]


def note_refusal(cfg: Config, refused: dict[str, Any] | None) -> str | None:
    """Append a refused method to QUIRKS.md (lab layout only); its path when the file changed."""
    from .results import lab_layout

    if not refused or not lab_layout(cfg) or not os.path.isdir(cfg.lab_research_dir):
        return None
    path = lab_path(cfg, QUIRKS_MD)
    with locked(cfg.lab_research_dir):
        return path if _edit(path, lambda t: append_quirks(t, [refusal_quirk(refused)])) else None
