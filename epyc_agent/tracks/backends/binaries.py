"""The llama.cpp-binaries backend: the lab's own tools on its real server.

Each generation is one process: `llama-completion` (or an older build's `llama-cli`) for the
baseline and for MoE expert reduction (`--override-kv`), `llama-speculative` for track 1,
`llama-lookup` for track 8; `llama-bench` gives a synthetic pp/tg figure per model. Flags are
probed from `--help` once per tool, processes run under `numactl --interleave=all` when it exists
with `OMP_NUM_THREADS=1`, and the t/s and acceptance figures are parsed from the tools' own
reports (strings as printed by llama.cpp's examples and `llama_perf_context_print`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from ...errors import EpycAgentError
from . import Record, Skip, Tick, todo_reps

if TYPE_CHECKING:
    from ..plan import RunPlan

PLAIN_TOOLS = ("llama-completion", "llama-cli")  # llama-cli became a chat client in late 2025 builds
METHOD_TOOLS = {"draft_model": "llama-speculative", "prompt_lookup": "llama-lookup"}
DRAFT_FLAG_PARAMS = {"draft_model": "draft_k", "prompt_lookup": "pl_k"}
TIMEOUT_S = 3600

_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_PERF_PROMPT = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens.*?([\d.]+) tokens per second")
_PERF_EVAL = re.compile(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+) runs.*?([\d.]+) tokens per second")
_ENCODED = re.compile(r"encoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+) t/s")
_DECODED = re.compile(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+) t/s")
_COUNTER = re.compile(r"\b(n_drafted|n_accept|n_predict|n_draft)\s*=\s*(\d+)")  # lines carry a log prefix
_ACCEPT = re.compile(r"\baccept\s*=\s*([\d.]+)%")


def find_tool(bin_dir: str, names: tuple[str, ...] | str) -> str:
    """The first existing tool of `names` in `bin_dir`, else an error naming the folder."""
    for name in (names,) if isinstance(names, str) else names:
        path = os.path.join(bin_dir, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    wanted = names if isinstance(names, str) else " or ".join(names)
    raise EpycAgentError(f"{wanted} not found in {bin_dir}", hint="build it (make llama-tools) or fix llama_cpp_bin")


def parse_help(text: str) -> frozenset[str]:
    """Flags an option list offers, leaving out those it marks as removed (newer builds keep
    `--draft-max` in the help only to say it is gone)."""
    flags: set[str] = set()
    entries: list[list[str]] = []
    for line in text.splitlines():
        if line.lstrip().startswith("-") and not line.startswith("      "):
            entries.append([line])
        elif entries:
            entries[-1].append(line)
    for entry in entries:
        if "has been removed" in " ".join(entry):
            continue
        head = re.split(r"\s{2,}", re.sub(r",\s+", ", ", entry[0].strip()), maxsplit=1)[0]
        flags.update(_FLAG_RE.findall(head))
    return frozenset(flags)


@cache
def probe_flags(tool: str) -> frozenset[str]:
    """The flags a tool's `--help` lists (once per tool per process): builds differ in what they accept."""
    try:
        p = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=60, env=tool_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EpycAgentError(f"{tool} --help failed: {e}", hint="check the llama.cpp build") from None
    return parse_help(p.stdout + "\n" + p.stderr)


def tool_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def wrap(argv: list[str]) -> list[str]:
    """Interleave memory over NUMA nodes when numactl exists (the lab's 2-socket server)."""
    numactl = shutil.which("numactl")
    return [numactl, "--interleave=all", *argv] if numactl else argv


def _opt(flags: frozenset[str], *names: str) -> str | None:
    return next((n for n in names if n in flags), None)


def _greedy_argv(tool: str, model: str, prompt: str, n_predict: int, threads: int, n_ctx: int, seed: int) -> list[str]:
    """The options every greedy one-shot tool run shares."""
    return [tool, "-m", model, "-p", prompt, "-n", str(n_predict), "-t", str(threads), "-c", str(n_ctx),
            "--temp", "0", "--seed", str(seed)]  # fmt: skip


def plain_argv(
    tool: str,
    model: str,
    prompt: str,
    n_predict: int,
    threads: int,
    n_ctx: int,
    seed: int,
    kv_overrides: dict[str, int] | None = None,
) -> list[str]:
    """Greedy one-shot generation with llama-completion (or a classic llama-cli)."""
    flags = probe_flags(tool)
    argv = _greedy_argv(tool, model, prompt, n_predict, threads, n_ctx, seed)
    for extra in ("-no-cnv", "--no-escape", "--no-warmup"):
        if extra in flags:
            argv.append(extra)
    if "--perf" in flags:
        argv.append("--perf")
    for key, value in (kv_overrides or {}).items():
        if "--override-kv" not in flags:
            raise EpycAgentError(f"{os.path.basename(tool)} has no --override-kv", hint="use a newer llama.cpp")
        argv += ["--override-kv", f"{key}=int:{value}"]
    return argv


def method_argv(
    tool: str,
    method: str,
    model: str,
    draft: str | None,
    prompt: str,
    n_predict: int,
    threads: int,
    n_ctx: int,
    seed: int,
    params: dict[str, Any],
) -> list[str]:
    """llama-speculative (target + draft) or llama-lookup, greedy, with the track's draft length."""
    flags = probe_flags(tool)
    argv = _greedy_argv(tool, model, prompt, n_predict, threads, n_ctx, seed)
    if draft:
        argv += [_opt(flags, "--spec-draft-model", "-md", "--model-draft") or "-md", draft]
    k = params.get(DRAFT_FLAG_PARAMS.get(method, ""))
    if k is not None:
        flag = _opt(flags, "--spec-draft-n-max", "--draft-max", "--draft", "--draft-n")
        if flag is None:
            raise EpycAgentError(f"{os.path.basename(tool)} accepts no --draft-max", hint="use a newer llama.cpp")
        argv += [flag, str(k)]
    if "--no-escape" in flags:
        argv.append("--no-escape")
    return argv


def bench_argv(tool: str, model: str, threads: int, reps: int, n_prompt: int = 512, n_gen: int = 128) -> list[str]:
    return [tool, "-m", model, "-t", str(threads), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-o", "json"]


def parse_perf(text: str) -> dict[str, Any]:
    """`llama_perf_context_print` lines: prompt eval (prefill) and eval (decode) times and rates."""
    out: dict[str, Any] = {}
    if m := _PERF_PROMPT.search(text):
        out.update(prompt_ms=float(m[1]), n_prompt=int(m[2]), prefill_tps=float(m[3]))
    if m := _PERF_EVAL.search(text):
        out.update(eval_ms=float(m[1]), n_eval=int(m[2]), decode_tps=float(m[3]))
    return out


def parse_spec(text: str) -> dict[str, Any]:
    """llama-speculative / llama-lookup summaries: encode/decode speed and draft counters."""
    out: dict[str, Any] = {}
    if m := _ENCODED.search(text):
        out.update(n_prompt=int(m[1]), encode_s=float(m[2]), prefill_tps=float(m[3]))
    if m := _DECODED.search(text):
        out.update(n_generated=int(m[1]), decode_s=float(m[2]), decode_tps=float(m[3]))
    for name, value in _COUNTER.findall(text):
        out[name] = int(value)
    if m := _ACCEPT.search(text):
        out["accept_pct"] = float(m[1])
    return out


def parse_bench_json(text: str) -> list[dict[str, Any]]:
    """llama-bench `-o json`: one entry per test (pp = prefill, tg = decode) with mean and stdev t/s."""
    start = text.find("[")
    try:
        rows = json.loads(text[start:]) if start >= 0 else []
    except ValueError:
        raise EpycAgentError("llama-bench printed no JSON result", hint="run it by hand to see why") from None
    return [
        {
            "test": f"pp{r['n_prompt']}" if r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}",
            "n_prompt": r.get("n_prompt"),
            "n_gen": r.get("n_gen"),
            "avg_ts": r.get("avg_ts"),
            "stddev_ts": r.get("stddev_ts"),
            "n_threads": r.get("n_threads"),
        }
        for r in rows
    ]


def run_tool(argv: list[str]) -> tuple[str, str, float, float]:
    """Run one tool process: stdout, stderr, wall seconds and the child's own peak RSS (MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(wrap(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=tool_env())
        except OSError as e:
            raise EpycAgentError(f"cannot run {argv[0]}: {e.strerror}") from None
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode("utf-8", "replace") for f in (out, err))
    if proc.returncode != 0:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise EpycAgentError(f"{os.path.basename(argv[0])} exited {proc.returncode}: {tail}")
    return stdout, stderr, wall, usage.ru_maxrss / 1024.0


def _measured(argv: list[str], parse: Any, attempts: int = 5) -> tuple[str, float, float, dict[str, Any]]:
    """Run a tool until its report has figures (at most `attempts` times). llama.cpp's asynchronous
    logger can lose the last lines, perf report included, when a process exits within milliseconds
    (seen with tiny models); a run without figures is repeated, never filled in."""
    for _ in range(attempts):
        stdout, stderr, wall, rss = run_tool(argv)
        figures = parse(stdout + "\n" + stderr)
        if "decode_tps" in figures:
            return stdout, wall, rss, figures
    raise EpycAgentError(
        f"{os.path.basename(argv[0])}: no t/s figures in its output ({attempts} runs)",
        hint="the build's report format may have changed; run the command by hand",
    )


def _generated_text(stdout: str, prompt: str) -> str:
    """What the tool printed after echoing the prompt (its perf report goes to stderr)."""
    i = stdout.find(prompt)
    return (stdout[i + len(prompt) :] if i >= 0 else stdout).rstrip("\n")


def _record(
    cfg: dict[str, Any], kind: str, pid: str, rep: int, figures: dict[str, Any], text: str, wall: float, rss: float
) -> Record:
    n_gen = figures.get("n_generated", figures.get("n_eval", 0) + 1 if "n_eval" in figures else 0)
    drafted, accepted = figures.get("n_drafted"), figures.get("n_accept")
    prompt_s = figures.get("encode_s", figures.get("prompt_ms", 0.0) / 1000.0)
    return {
        "config": cfg["label"],
        "kind": kind,
        "params": cfg["params"],
        "prompt_id": pid,
        "rep": rep,
        "n_prompt": figures.get("n_prompt", 0),
        "n_generated": n_gen,
        "ttft_s": prompt_s or None,
        "prefill_tps": figures.get("prefill_tps", 0.0),
        "decode_tps": figures.get("decode_tps", 0.0),
        "wall_s": round(wall, 4),
        "peak_rss_mb": round(rss, 1),
        "rss_mb": None,
        "steps": None,
        "drafted": drafted or 0,
        "accepted": accepted or 0,
        "acceptance_rate": accepted / drafted if drafted else None,
        "mean_accepted_per_step": None,
        "accepted_by_source": {},
        "text": text,
        "tokens": list(text),
        "margins": None,
    }


def info(plan: RunPlan) -> dict[str, Any]:
    """The tools used, their build (version line, sha256); a llama-bench figure of the target model."""
    from ...system.builds import binaries_build

    bin_dir = plan.llama_cpp_bin or ""
    tools = used_tools(bin_dir)
    build = binaries_build(bin_dir, tools)
    return {
        "backend": "binaries",
        "llama_cpp_bin": bin_dir,
        "tools": tools,
        "llama_cpp_version": build[0]["version"] if build else "",
        "build": build,
        "numactl": shutil.which("numactl"),
        "omp_num_threads": 1,
        "llama_cpp_system_info": "",
        "bench": bench(plan) if "llama-bench" in tools else None,
    }


def used_tools(bin_dir: str) -> dict[str, str]:
    """The llama.cpp tools of `bin_dir` a run may call, by name."""
    return {
        name: p
        for name in (*PLAIN_TOOLS, *METHOD_TOOLS.values(), "llama-bench")
        if os.path.isfile(p := os.path.join(bin_dir, name))
    }


def bench(plan: RunPlan) -> list[dict[str, Any]]:
    """A short llama-bench of the target (pp64/tg32): the build's synthetic speed, for context."""
    tool = find_tool(plan.llama_cpp_bin or "", "llama-bench")
    stdout, _err, _wall, _rss = run_tool(bench_argv(tool, plan.model["path"], plan.threads, 1, 64, 32))
    return parse_bench_json(stdout)


def generations(plan: RunPlan, tick: Tick, skip: Skip = frozenset()) -> Iterator[Record]:
    """Baseline with the plain tool, then each configuration with the method's tool (the reps in
    `skip` left out)."""
    from ..plan import MOE_METHOD

    bin_dir = plan.llama_cpp_bin or ""
    req = plan.request
    model = plan.model["path"]
    plain = find_tool(bin_dir, PLAIN_TOOLS)

    def run_cfg(cfg: dict[str, Any], kind: str, argv_for: Any, parse: Any) -> Iterator[Record]:
        reps = todo_reps(plan, cfg["label"], skip)
        if not reps:
            return
        first = plan.workload.prompts[0]["text"]
        run_tool(argv_for(first))
        tick(f"{cfg['label']} warm-up")
        for rep in reps:
            for p in plan.workload.prompts:
                stdout, wall, rss, figures = _measured(argv_for(p["text"]), parse)
                yield _record(cfg, kind, p["id"], rep, figures, _generated_text(stdout, p["text"]), wall, rss)

    base_cfg = {"label": "baseline", "params": {}}
    yield from run_cfg(
        base_cfg,
        "baseline",
        lambda text: plain_argv(plain, model, text, req.max_tokens, plan.threads, req.n_ctx, req.seed),
        parse_perf,
    )
    for cfg in plan.configs:
        if plan.track.method == MOE_METHOD:
            key = f"{plan.model['arch']}.expert_used_count"
            over = {key: int(cfg["params"]["expert_used_count"])}
            yield from run_cfg(
                cfg,
                "method",
                lambda text, over=over: plain_argv(
                    plain, model, text, req.max_tokens, plan.threads, req.n_ctx, req.seed, over
                ),
                parse_perf,
            )
            continue
        tool_name = METHOD_TOOLS.get(plan.track.method)
        if tool_name is None:
            raise EpycAgentError(f"no llama.cpp tool runs method {plan.track.method}")
        tool = find_tool(bin_dir, tool_name)
        draft = plan.draft["path"] if plan.draft else None
        yield from run_cfg(
            cfg,
            "method",
            lambda text, cfg=cfg, tool=tool, draft=draft: method_argv(
                tool,
                plan.track.method,
                model,
                draft,
                text,
                req.max_tokens,
                plan.threads,
                req.n_ctx,
                req.seed,
                cfg["params"],
            ),
            parse_spec,
        )
