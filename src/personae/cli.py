"""The ``personae`` command.

Exit codes: 0 ok, 2 bad input or usage, 1 any other failure, 130 interrupted. Errors the user
can fix print one line to stderr and no traceback (``--debug`` shows one).
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from personae import __version__
from personae.chat import ChatSession
from personae.errors import InputError, PersonaeError, RunError
from personae.evals.config import PRESETS, EvalConfig
from personae.persona import BUILTIN_TEMPLATES, FORMATS, Persona
from personae.persona.render import load_template
from personae.persona.sample import id_list, resolve_personas
from personae.steer.cli import app as steer_app

# Recent typer vendors its own copy of click: take the exception classes from wherever typer's
# come from, so usage errors are recognised with either layout.
_click = sys.modules[typer.BadParameter.__module__]

# Help texts are plain text: spec syntax such as openai:MODEL[@URL] must not be read as rich
# markup (which drops anything in brackets).
app = typer.Typer(
    name="personae", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="LLM personas: specify, run, measure. Offline by default (bundled SmolLM2-135M).",
)
personas_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Validate, list, render and convert persona files.")
app.add_typer(personas_app, name="personas")
app.add_typer(steer_app, name="steer")

DEFAULT_PERSONA = "sample:chinedu-enugu-mechanic"
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: bundled, hf:bundled, "
                                       "hf:PATH, llamacpp:PATH.gguf, openai:MODEL[@URL], "
                                       "scripted:FILE.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Persona file format: auto, "
                                        + ", ".join(FORMATS) + ".")]
TemplateOpt = Annotated[str, typer.Option("--template", "-t", help="Built-in template ("
                                          + ", ".join(BUILTIN_TEMPLATES) + ") or a Jinja2 file.")]


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def _by_id(personas: list[Persona], ref: str, persona_id: str) -> Persona:
    for p in personas:
        if p.id == persona_id:
            return p
    raise InputError(f"{ref}: no persona with id {persona_id!r}; {id_list(personas, ref)}")


def _pick_persona(ref: str, persona_id: str | None, fmt: str) -> Persona:
    personas = resolve_personas(ref, format=fmt)
    if persona_id:
        return _by_id(personas, ref, persona_id)
    if len(personas) > 1:
        raise InputError(f"{ref} holds {len(personas)} personas; choose one with --persona-id "
                         f"({id_list(personas, ref)})")
    return personas[0]


@app.command()
def chat(
    message: Annotated[list[str] | None, typer.Argument(help="The message. Omit it to read "
                                                        "stdin, or to chat on a terminal.")] = None,
    persona: Annotated[str, typer.Option("--persona", "-p", help="Persona file, 'sample:ID', "
                                         "or 'personagym:ID'.")] = DEFAULT_PERSONA,
    persona_id: Annotated[str | None, typer.Option(help="Which persona in a file of many.")] = None,
    model: ModelOpt = "bundled",
    template: TemplateOpt = "card",
    max_tokens: Annotated[int, typer.Option(min=1, max=32768,
                                            help="Reply length limit in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1,
                                      help="Sampling seed (part of the cache key).")] = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the model.")] = False,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API "
                                                    "key for openai: models.")] = None,
    persona_format: FormatOpt = "auto",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per model call.")] = 300.0,
) -> None:
    """Talk to a model playing a persona. One-shot with a message; interactive on a terminal."""
    who = _pick_persona(persona, persona_id, persona_format)
    session = ChatSession.open(
        who, model=model, template=load_template(template), max_tokens=max_tokens,
        temperature=temperature, seed=seed, use_cache=not no_cache, api_key_env=api_key_env,
        timeout_s=timeout,
    )
    if message:
        text: str | None = " ".join(message)
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = None

    # One event loop for the whole session, so HTTP connections are reused between turns;
    # input() runs on the main thread, so Ctrl-C at the prompt ends the session at once.
    with asyncio.Runner() as aio:
        try:
            if text is None:
                _interactive(session, aio)
            elif not text.strip():
                raise InputError("the message is empty")
            else:
                typer.echo(aio.run(session.send(text)))
        finally:
            aio.run(session.aclose())


CHAT_HELP = """\
/help    this list
/reset   forget the conversation so far (the persona stays)
/exit    quit (also /quit, Ctrl-D)
Anything else is said to the persona; Ctrl-C quits at once."""


def _interactive(session: ChatSession, aio: asyncio.Runner) -> None:
    err = Console(stderr=True, highlight=False)
    name = session.persona.name or session.persona.id
    err.print(f"[bold]Chatting with {escape(name)}[/] on {escape(session.model_spec)}. "
              "/help lists the commands; Ctrl-D or /exit quits.")
    while True:
        try:
            text = input("you> ")
        except EOFError:
            err.print()
            return
        command = text.strip()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            err.print("(history forgotten; the persona stays)")
            continue
        if command in ("/help", "/?"):
            err.print(CHAT_HELP)
            continue
        if command.startswith("/") and " " not in command:
            err.print(f"unknown command {escape(command)}; /help lists the commands")
            continue
        if command:
            try:
                print(f"{name}> {aio.run(session.send(text))}", flush=True)
            except RunError as exc:  # keep the conversation; the user may retry
                err.print(f"[red]personae: error: {exc}[/]")


@personas_app.command("validate")
def personas_validate(
    files: Annotated[list[str], typer.Argument(help="Persona files, or bundled sets "
                                               "('sample', 'personagym', SET:ID).")],
    template: TemplateOpt = "card",
    persona_format: FormatOpt = "auto",
) -> None:
    """Check persona files: one line per file, plus a line per persona naming the fields the
    template leaves out of the prompt. Exit 2 if any file is invalid."""
    tpl = load_template(template)
    bad = 0
    for f in files:
        try:
            personas = resolve_personas(f, format=persona_format)
        except InputError as exc:
            bad += 1
            typer.echo(f"personae: error: {exc}", err=True)
            continue
        typer.echo(f"{f}: {len(personas)} persona{'s' if len(personas) != 1 else ''} OK")
        for p in personas:
            unused = tpl.unused_fields(p)
            if unused:
                typer.echo(f"{f}: {p.id}: not used by template {template}: "
                           + ", ".join(unused))
    if bad:
        raise typer.Exit(2)


@personas_app.command("list")
def personas_list(
    ref: Annotated[str | None, typer.Argument(
        help="A bundled set ('sample', 'personagym') or a persona file; omit it to list the "
        "bundled sets.")] = None,
    persona_format: FormatOpt = "auto",
) -> None:
    """List the bundled persona sets, or the personas (id, name, description) in one."""
    from personae.persona.sample import BUNDLED_SETS, load_bundled

    table = Table(box=None, pad_edge=False)
    if ref is None:
        for col in ("set", "personas", "use it as"):
            table.add_column(col)
        for name in BUNDLED_SETS:
            table.add_row(name, str(len(load_bundled(name))), f"-p {name} or -p {name}:ID")
    else:
        personas = resolve_personas(ref, format=persona_format)
        # One line per persona: ids and names whole, the description cut to what fits.
        table.add_column("id", no_wrap=True, min_width=max(len(p.id) for p in personas))
        table.add_column("name", no_wrap=True,
                         min_width=max(len(p.name or "") for p in personas))
        table.add_column("description", no_wrap=True, overflow="ellipsis")
        for p in personas:
            table.add_row(escape(p.id), escape(p.name or ""), escape(p.describe()))
    Console().print(table)


@personas_app.command("render")
def personas_render(
    file: Annotated[str, typer.Argument(help="Persona file, 'sample' or 'sample:ID'.")],
    template: TemplateOpt = "card",
    persona_id: Annotated[str | None, typer.Option(help="Only this persona.")] = None,
    persona_format: FormatOpt = "auto",
) -> None:
    """Print the system prompt for each persona in FILE."""
    tpl = load_template(template)
    personas = resolve_personas(file, format=persona_format)
    if persona_id:
        personas = [_by_id(personas, file, persona_id)]
    for i, p in enumerate(personas):
        if len(personas) > 1:
            typer.echo(f"{'' if i == 0 else chr(10)}### {p.id}")
        typer.echo(tpl.render(p))


@personas_app.command("convert")
def personas_convert(
    source: Annotated[str, typer.Argument(help="Input persona file (any supported format).")],
    target: Annotated[Path, typer.Argument(help="Output file: .yaml, .json or .jsonl.")],
    persona_format: FormatOpt = "auto",
) -> None:
    """Convert personas between formats (e.g. TinyTroupe JSON to personae YAML)."""
    from personae.persona import save_personas

    personas = resolve_personas(source, format=persona_format)
    save_personas(personas, target)
    typer.echo(f"wrote {len(personas)} personas to {target}", err=True)


@app.command()
def models() -> None:
    """List the backends: spec forms, capabilities (steering among them), the options each
    takes after a ``?`` in its spec, and where the bundled model is."""
    import importlib.util

    from personae.models.base import BACKEND_CAPABILITIES, Capability
    from personae.models.bundled import bundled_gguf_path, cache_dir
    from personae.models.hf import HFOptions
    from personae.models.llamacpp import LlamaCppOptions
    from personae.models.openai_compat import OpenAIOptions
    from personae.models.scripted import ScriptedOptions
    from personae.models.spec import SPEC_FORMS

    table = Table(title="personae model backends")
    for col in ("backend", "spec", "capabilities", "steering", "installed"):
        table.add_column(col, overflow="fold")
    specs = {"llamacpp": "bundled | llamacpp:PATH.gguf", "hf": "hf:bundled | hf:PATH",
             "openai": "openai:MODEL[@BASE_URL]", "scripted": "scripted:FILE"}
    needs = {"llamacpp": "llama_cpp", "hf": "transformers", "openai": "openai",
             "scripted": "yaml"}
    how = {"llamacpp": "control vectors", "hf": "forward hooks"}
    options = {"llamacpp": LlamaCppOptions, "hf": HFOptions, "openai": OpenAIOptions,
               "scripted": ScriptedOptions}
    for name, caps in BACKEND_CAPABILITIES.items():
        ok = importlib.util.find_spec(needs[name]) is not None
        table.add_row(name, escape(specs[name]),
                      ", ".join(sorted(c.value for c in caps if c != Capability.STEERING)),
                      f"yes ({how[name]})" if Capability.STEERING in caps else "no",
                      "yes" if ok else f"no ({needs[name]} missing)")
    Console().print(table)
    try:
        where = str(bundled_gguf_path())
    except InputError as exc:
        where = str(exc)
    typer.echo(f"bundled model: SmolLM2-135M-Instruct (Apache-2.0) at {where}")
    typer.echo(f"cache: {cache_dir()}  (set PERSONAE_CACHE_DIR to move it)")
    typer.echo("spec forms: " + ", ".join(SPEC_FORMS))
    typer.echo("options, after a ? in the spec (bundled?n_ctx=8192&n_threads=2), with their "
               "defaults:")
    for name, cls in options.items():
        typer.echo(f"  {name}: " + ", ".join(f"{k}={f.default}"
                                            for k, f in cls.model_fields.items()))
    typer.echo("steering: ?steer=FILE:LAYER:COEF[r] on llamacpp and hf specs, or "
               "`personae steer apply`")


def _default(field: str) -> str:
    """``default: VALUE`` of an eval setting, from `EvalConfig` itself, for the help text
    (the options default to None so a ``--preset`` can fill what the user did not give)."""
    info = EvalConfig.model_fields[field]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore
    shown = ", ".join(map(str, value)) if isinstance(value, list) else value
    return f"default: {'all' if value is None else shown}"


def _preset_text(name: str) -> str:
    """A preset's settings as ``key=value`` (some, such as max_facts, have no flag)."""
    return ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                     for k, v in PRESETS[name].items())


JudgeOpt = Annotated[list[str] | None, typer.Option(
    "--judge", "-j", help=f"Judge model spec; repeat for several judges ({_default('judges')}).")]


@app.command("eval")
def eval_(
    personas: Annotated[str | None, typer.Option(
        "--personas", "-p",
        help="Persona file, 'sample', 'personagym' or SET:ID "
        f"({_default('personas')}).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Subject model spec "
                                              f"({_default('model')}).")] = None,
    judge: JudgeOpt = None,
    suite: Annotated[str | None, typer.Option(
        "--suite", help="Comma-separated: fidelity, consistency, atomic "
        f"({_default('suites')}).")] = None,
    questions: Annotated[str | None, typer.Option(
        "--questions", help="auto (benchmark-v1 where it has the persona, else generate), "
        "benchmark-v1, generate, or a JSON file {task: [question, ...]} "
        f"({_default('questions')}).")] = None,
    per_task: Annotated[int | None, typer.Option(help="Questions per task and persona "
                                                 f"({_default('per_task')}).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N personas "
                                              f"({_default('limit')}).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="quick (a few minutes on a laptop: " + _preset_text("quick") + ") or standard ("
        + _preset_text("standard") + "); flags override it.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory (default: personae-runs/eval-<settings digest>). "
        "Re-running with the same settings resumes it.")] = None,
    samples: Annotated[int | None, typer.Option(help="Responses per probe (atomic RC needs "
                                                f"2 or more; {_default('samples')}).")] = None,
    tasks: Annotated[str | None, typer.Option(
        help=f"Comma-separated PersonaGym tasks ({_default('tasks')}).")] = None,
    judge_batch: Annotated[int | None, typer.Option(
        help=f"Rubrics per judge request (PersonaGym batches 5; {_default('judge_batch')})."
    )] = None,
    reliability_sample: Annotated[int | None, typer.Option(
        help="Responses re-judged for the reliability checks (0 skips them; "
        f"{_default('reliability_sample')}).")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        help=f"Subject reply length limit ({_default('max_tokens')}).")] = None,
    judge_max_tokens: Annotated[int | None, typer.Option(
        help=f"Judge reply length limit ({_default('judge_max_tokens')}).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight per model (default: the backend's own limit).")] = None,
    seed: Annotated[int | None, typer.Option(help=f"Sampling seed ({_default('seed')}).")
                    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the models.")] = False,
) -> None:
    """Measure how faithfully a model plays personas: PersonaGym fidelity, consistency (NLI),
    atomic trait fidelity, judge reliability, and no-persona / assistant baselines."""
    from personae.evals.config import build_config
    from personae.evals.run import run_eval

    config = build_config(
        preset, personas=personas, model=model, judges=judge,
        suites=_csv(suite), tasks=_csv(tasks), questions=questions, per_task=per_task,
        limit=limit, samples=samples, judge_batch=judge_batch,
        reliability_sample=reliability_sample, max_tokens=max_tokens,
        judge_max_tokens=judge_max_tokens, concurrency=concurrency, seed=seed)
    result = run_eval(config, out, use_cache=not no_cache)
    _print_summary(result.summary)
    typer.echo(f"{result.model_calls} model calls, {result.cache_hits} from the cache; "
               "summary.json beside the report:", err=True)
    typer.echo(str(result.run_dir / "report.html"))
    if result.failures:
        typer.echo(f"personae: error: {len(result.failures)} model calls failed (first: "
                   f"{result.failures[0]}); re-run the same command to retry them", err=True)
        raise typer.Exit(1)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command()
def survey(
    personas: Annotated[str | None, typer.Option(
        "--personas", "-p", help="Persona file, 'sample', 'personagym' or SET:ID "
        "(default: none, the bare model answers).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec "
                                              "(default: bundled).")] = None,
    instrument: Annotated[str | None, typer.Option(
        "--instrument", "-i", help="ipip-120 (default), ipip-300, or a questionnaire "
        "file (YAML/JSON).")] = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="logprob (default: probabilities over the response digits) or "
        "generate (parse a short reply).")] = None,
    variants: Annotated[str | None, typer.Option(
        "--variants", help="Comma-separated: base, reversed, paraphrase, shuffled (with its "
        "ordered baseline), or all (default: base).")] = None,
    shape: Annotated[bool, typer.Option(
        "--shape", help="Also prompt each Big Five domain at 9 levels and report Spearman's "
        "rho between level and measured score.")] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N personas.")] = None,
    items: Annotated[int | None, typer.Option(
        "--items", help="Only the first N items (quick runs).")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", "-t", help="Persona system-prompt template (default: card).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the shuffled item order.")] = None,
    block_size: Annotated[int | None, typer.Option(
        help="Items per conversation in the ordered/shuffled variants (default 10).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory (default: personae-runs/survey-<settings "
        "digest>). Re-running with the same settings resumes it.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the model.")] = False,
) -> None:
    """Put a personality questionnaire to personas (or the bare model): domain scores with
    CIs, reliability, acquiescence, unparsable rate, robustness across variants, shaping."""
    from personae.report.survey_console import print_survey_summary
    from personae.survey.run import BUNDLED_WARNING, build_survey_config, run_survey

    config = build_survey_config(
        personas=personas, model=model, instrument=instrument, mode=mode,
        variants=_csv(variants), shape=shape, limit=limit, items=items, template=template,
        seed=seed, block_size=block_size, concurrency=concurrency)
    result = run_survey(config, out, use_cache=not no_cache)
    print_survey_summary(result.summary, skip_warnings=[BUNDLED_WARNING]
                         if result.warnings_shown else [])
    typer.echo(f"{result.model_calls} model calls; summary.json beside the report:", err=True)
    typer.echo(str(result.run_dir / "report.html"))
    if result.failures:
        typer.echo(f"personae: error: {len(result.failures)} items failed (first: "
                   f"{result.failures[0]}); re-run the same command to retry them", err=True)
        raise typer.Exit(1)


@app.command()
def simulate(
    personas: Annotated[str | None, typer.Option(
        "--personas", "-p", help="The personas under test: file, 'sample', 'personagym' or "
        f"SET:ID (default: {DEFAULT_PERSONA}).")] = None,
    user_personas: Annotated[str | None, typer.Option(
        "--user-personas", "-u", help="Simulated users (personas with a goal), each talking "
        "with each persona (default: a built-in curious user).")] = None,
    user_script: Annotated[str | None, typer.Option(
        help="User turns from a file instead (one line per turn, or a YAML/JSON list).")] = None,
    group: Annotated[bool, typer.Option(
        "--group", help="All personas in one group conversation instead of pairs.")] = False,
    policy: Annotated[str | None, typer.Option(
        help="Turn taking in a group: round-robin (default) or judge (the judge picks the "
        "next speaker).")] = None,
    turns: Annotated[int | None, typer.Option(
        "--turns", "-n", help="Turns per conversation at most, all speakers counted "
        "(default 8).")] = None,
    conversations: Annotated[int | None, typer.Option(
        help="Conversations per persona-user pair (different seeds; default 1).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec for every "
                                              "agent (default: bundled).")] = None,
    judge: Annotated[str | None, typer.Option(
        "--judge", "-j", help="Judge for fidelity and NLI, or 'none' (default: bundled).")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated: fidelity, consistency, similarity, leak, echo, projection "
        "(default: all that apply).")] = None,
    vector: Annotated[str | None, typer.Option(
        help="Persona vector file: adds the per-turn projection (hf models).")] = None,
    layer: Annotated[int | None, typer.Option(help="Layer of the projection.")] = None,
    window: Annotated[int | None, typer.Option(
        help="Turns each agent sees (its persona is always kept; 0 = all; default 12).")] = None,
    repeat_ratio: Annotated[float | None, typer.Option(
        help="How alike (word by word, 0-1) a turn must be to the one before it or to its "
        "speaker's last line to end the conversation as a loop (default 0.9; 1 = only "
        "word-for-word repeats).")] = None,
    goal: Annotated[str | None, typer.Option(
        help="The simulated user's goal ('{name}' is the persona's name).")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", "-t", help="Persona system-prompt template (default: card).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Turn length limit in tokens "
                                                   "(default 96).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first conversation.")] = None,
    max_facts: Annotated[int | None, typer.Option(help="Persona facts checked by NLI per "
                                                  "turn (default 3).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N personas.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory (default: personae-runs/simulate-<settings "
        "digest>). Re-running with the same settings resumes it.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Conversations in flight.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the models.")] = False,
) -> None:
    """Hold multi-turn conversations between personas and simulated users, and measure how
    the personas drift over the turns: fidelity, consistency, similarity, AI-identity leaks,
    echo, and the persona-vector projection, each as a curve with a slope and its CI."""
    from personae.sim import build_sim_config, run_simulation
    from personae.sim.console import print_sim_summary

    config = build_sim_config(
        personas=personas, user_personas=user_personas, user_script=user_script,
        group=group or None, policy=policy, turns=turns, conversations=conversations,
        model=model, judge=judge, metrics=_csv(metrics), vector=vector, layer=layer,
        window=window, repeat_ratio=repeat_ratio, goal=goal, template=template,
        max_tokens=max_tokens, temperature=temperature, seed=seed, max_facts=max_facts,
        limit=limit, concurrency=concurrency)
    result = run_simulation(config, out, use_cache=not no_cache)
    print_sim_summary(result.summary, skip_warnings=result.warnings)
    typer.echo(f"{result.model_calls} model calls, {result.cache_hits} from the cache; "
               "transcripts.jsonl and summary.json beside the report:", err=True)
    typer.echo(str(result.run_dir / "report.html"))
    if result.failures:
        typer.echo(f"personae: error: {len(result.failures)} calls failed (first: "
                   f"{result.failures[0]}); re-run the same command to resume", err=True)
        raise typer.Exit(1)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Rewrite RUN_DIR's summary.json and self-contained report.html from its records."""
    from personae.evals.run import open_run, write_outputs

    store, config = open_run(run_dir)
    try:
        summary = write_outputs(store, config)
    finally:
        store.close()
    _print_summary(summary)
    typer.echo(f"report: {run_dir / 'report.html'}", err=True)


@app.command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    judge: Annotated[list[str], typer.Option(
        "--judge", "-j", help="Judge model spec; repeat for several judges.")],
) -> None:
    """Judge RUN_DIR's stored responses again with other judges, without regenerating them."""
    from personae.evals.run import open_run, run_eval

    store, config = open_run(run_dir)
    store.close()
    result = run_eval(config.model_copy(update={"judges": list(dict.fromkeys(judge))}),
                      run_dir, rescore=True)
    _print_summary(result.summary)
    typer.echo(f"report: {run_dir / 'report.html'}", err=True)
    if result.failures:
        raise typer.Exit(1)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory "
                                             "(default: RUN_DIR/export).")] = None,
) -> None:
    """Write every stored record (responses, turns, judgements...) of any run to JSONL or
    Parquet files."""
    from personae.runtime.store import open_store

    store = open_store(run_dir)
    try:
        paths = store.export(out or run_dir / "export", fmt)
    finally:
        store.close()
    for path in paths:
        typer.echo(str(path))


def _print_summary(summary: dict) -> None:
    from personae.stats import MetricValue

    console = Console(stderr=True)
    for w in summary.get("warnings", []):
        console.print(f"[bold red]! {escape(w)}[/]")
    mv = lambda d: str(MetricValue(**d)) if d else "—"  # noqa: E731
    fid = summary.get("fidelity")
    if fid:
        table = Table(title="PersonaScore (1–5, mean [95% CI] n)")
        table.add_column("task")
        conds = list(fid["by_condition"])
        for c in conds:
            table.add_column(c)
        for task in fid["tasks"]:
            table.add_row(task, *(mv(fid["by_condition"][c]["tasks"].get(task)) for c in conds))
        table.add_row("[bold]PersonaScore", *(mv(fid["by_condition"][c]["persona_score"])
                                              for c in conds))
        console.print(table)
        for control, d in fid["deltas"].items():
            console.print(f"persona − {control}: {mv(d['persona_score'])}")
    cons = summary.get("consistency")
    if cons:
        console.print("C-score: " + ", ".join(f"{c} {mv(v)}"
                                                for c, v in cons["by_condition"].items()))
    rel = summary.get("reliability")
    if rel:
        colour = "green" if rel["reliable"] else "bold red"
        console.print(f"[{colour}]judge reliability: {rel['verdict']}[/]")


# Commands whose work is in a run store: after Ctrl-C the same command goes on from there.
RESUMABLE = (["eval"], ["survey"], ["simulate"], ["rescore"], ["steer", "extract"],
             ["steer", "sweep"])


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every error into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    words = [a for a in args if not a.startswith("-")][:2]
    interrupted = "personae: interrupted" + (
        "; re-run the same command to resume" if words[:1] in RESUMABLE or words in RESUMABLE
        else "")
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="personae", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            typer.echo("\n" + interrupted, err=True)
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo(interrupted, err=True)
        return 130
    except _click.UsageError as exc:
        if not exc.format_message():  # bare `personae`/`personae personas`: help was printed
            return 0
        hint = f" (see: personae {exc.ctx.command_path.partition(' ')[2]} --help)".replace(
            "  --help", " --help") if exc.ctx else ""
        typer.echo(f"personae: usage error: {exc.format_message()}{hint}", err=True)
        return 2
    except _click.ClickException as exc:
        typer.echo(f"personae: error: {exc.format_message()}", err=True)
        return 2
    except PersonaeError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"personae: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(interrupted, err=True)
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            traceback.print_exc()
            return 1
        first = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(f"personae: internal error: {type(exc).__name__}: {first} "
                   "(rerun with --debug for a traceback)", err=True)
        return 1


def _console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _console_main()
