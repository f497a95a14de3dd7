"""``personae simulate``: conversations between personas and simulated users, with drift."""

from __future__ import annotations

from typing import Annotated

import typer

from personae.cli.options import DEFAULT_PERSONA, csv, finish_run, run_dir_option

RunDirOpt = run_dir_option("simulate-<settings digest>")


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
    out: RunDirOpt = None,
    concurrency: Annotated[int | None, typer.Option(help="Conversations in flight.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the models.")] = False,
) -> None:
    """Hold multi-turn conversations between personas and simulated users, and measure how
    the personas drift over the turns: fidelity, consistency, similarity, AI-identity leaks,
    echo, and the persona-vector projection, each as a curve with a slope and its CI."""
    from personae.sim import build_sim_config, run_simulation

    config = build_sim_config(
        personas=personas, user_personas=user_personas, user_script=user_script,
        group=group or None, policy=policy, turns=turns, conversations=conversations,
        model=model, judge=judge, metrics=csv(metrics), vector=vector, layer=layer,
        window=window, repeat_ratio=repeat_ratio, goal=goal, template=template,
        max_tokens=max_tokens, temperature=temperature, seed=seed, max_facts=max_facts,
        limit=limit, concurrency=concurrency)
    result = run_simulation(config, out, use_cache=not no_cache)
    finish_run(result, f"{result.model_calls} model calls, {result.cache_hits} from the "
               "cache", failed="calls")
