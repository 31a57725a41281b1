"""The matcher's fitted TF-IDF models are cached on disk (planner.tfidf) so `overture plan` need not
import scikit-learn: the cached models must score exactly as the fitted ones, and a cache file that
is damaged or made from other documents must never be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from planner.lexicon import Lexicon, build_lexicon, lexicon
from planner.matching import ActionMatcher, action_document
from planner.tfidf import (
    TfidfModel,
    char_tokens,
    char_vectorizer,
    default_cache_dir,
    fitted_models,
    word_vectorizer,
)
from workflow.catalog import Catalog
from workflow.loader import catalog_from_data, load_catalog

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
BENCHES = [name for name in ("planner", "taskbench") if (BENCH / name / "catalog.yaml").is_file()]
needs_bench = pytest.mark.skipif(len(BENCHES) < 2, reason="the benchmarks are beside the repository")


def demo_catalog() -> Catalog:
    from service.demo.catalog import demo_catalog as demo

    return catalog_from_data(demo("http://127.0.0.1:9", "127.0.0.1", 25))


def demo_request() -> str:
    from service.demo.catalog import REQUEST

    return REQUEST


def requests(name: str) -> list[str]:
    lines = (BENCH / name / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["request"] for line in lines if line.strip()]


def documents(catalog: Catalog, lex: Lexicon) -> tuple[list[str], list[str]]:
    """What ActionMatcher fits its two models on: each action's document as concepts, and as the
    lowercased words the character model reads."""
    docs = [action_document(a) for a in catalog if not a.is_core]
    return [" ".join(lex.concepts(d)) for d in docs], [ActionMatcher._char_text(d) for d in docs]


def queries(request: str, lex: Lexicon) -> list[tuple[str, str]]:
    """The request and its clauses, as the matcher queries each model with them."""
    pieces = [request, *request.replace(";", ",").split(","), *request.split(" then ")]
    return [(" ".join(lex.concepts(p)), ActionMatcher._char_text(p)) for p in pieces if p.strip()]


def same_model(a: TfidfModel, b: TfidfModel) -> bool:
    return a.vocabulary == b.vocabulary and all(
        np.array_equal(x, y)
        for x, y in zip(
            (a.idf, a.data, a.indices, a.indptr), (b.idf, b.data, b.indices, b.indptr), strict=True
        )
    )


@needs_bench
@pytest.mark.parametrize("name", [*BENCHES, "demo"])
def test_cached_models_give_sklearns_vectors_and_scores(name: str, tmp_path: Path) -> None:
    lex = lexicon()
    catalog = demo_catalog() if name == "demo" else load_catalog(BENCH / name / "catalog.yaml")
    said = [demo_request()] if name == "demo" else requests(name)
    word_docs, char_docs = documents(catalog, lex)

    fitted = fitted_models(word_docs, char_docs, tmp_path)
    [saved] = tmp_path.glob("matcher-*.npz")
    written = saved.stat().st_mtime_ns, saved.read_bytes()
    loaded = fitted_models(word_docs, char_docs, tmp_path)
    assert (saved.stat().st_mtime_ns, saved.read_bytes()) == written  # read, not fitted and rewritten
    assert same_model(fitted[0], loaded[0]) and same_model(fitted[1], loaded[1])

    # scikit-learn's own fit and transform, and SciPy's product, are what the cached models reproduce
    words, chars = word_vectorizer(), char_vectorizer()
    word_matrix, char_matrix = words.fit_transform(word_docs).tocsr(), chars.fit_transform(char_docs).tocsr()
    sklearn_chars = chars.build_analyzer()
    checked = 0
    for request in said:
        assert char_tokens(request) == sklearn_chars(request)  # raw text: capitals, punctuation
        for word_query, char_query in queries(request, lex):
            assert char_tokens(char_query) == sklearn_chars(char_query)
            for model, (fit, other), matrix, query in (
                (loaded[0], (words, fitted[0]), word_matrix, word_query),
                (loaded[1], (chars, fitted[1]), char_matrix, char_query),
            ):
                vector = model.vector(query)
                np.testing.assert_allclose(vector, fit.transform([query]).toarray()[0], rtol=0, atol=1e-12)
                assert np.array_equal(vector, other.vector(query))
                scores = model.similarities(vector)
                np.testing.assert_allclose(scores, matrix @ vector, rtol=0, atol=1e-12)
                assert np.array_equal(scores, other.similarities(other.vector(query)))
                checked += 1
    assert checked > 2 * len(said)


PLAN_ALL = """
import json, sys
from pathlib import Path
from planner.offline import OfflinePlanner
from service.demo.catalog import REQUEST, demo_catalog
from workflow.loader import catalog_from_data, load_catalog

bench = Path(sys.argv[1])
plans = {}
for name in ("planner", "taskbench"):
    planner = OfflinePlanner(load_catalog(bench / name / "catalog.yaml"))
    for line in (bench / name / "cases.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        result = planner.plan(case["request"])
        plans[name + ":" + case["id"]] = [repr(result.workflow), result.warnings, result.explanation]
planner = OfflinePlanner(catalog_from_data(demo_catalog("http://127.0.0.1:9", "127.0.0.1", 25)))
result = planner.plan(REQUEST)
plans["demo"] = [repr(result.workflow), result.warnings, result.explanation]
print(json.dumps({"sklearn": "sklearn" in sys.modules, "scipy": "scipy" in sys.modules, "plans": plans}))
"""


def plan_all(data_dir: Path) -> dict[str, object]:
    env = {**os.environ, "OVERTURE_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "-c", PLAN_ALL, str(BENCH)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout)
    return out


@needs_bench
def test_every_bench_plan_is_the_same_from_the_cache_and_without_sklearn(tmp_path: Path) -> None:
    cold = plan_all(tmp_path)
    assert cold["sklearn"] is True  # it fitted (and so the check below sees the import)
    assert len(list((tmp_path / "cache").glob("matcher-*.npz"))) == 3  # two benches and the demo
    warm = plan_all(tmp_path)
    assert warm["sklearn"] is False and warm["scipy"] is False
    assert len(cold["plans"]) > 70  # type: ignore[arg-type]
    assert warm["plans"] == cold["plans"]


def small_docs() -> tuple[list[str], list[str]]:
    return (
        ["syn1 account creat", "syn2 tenant provis", "bill setup custom"],
        ["create account", "provision tenant", "setup billing customer"],
    )


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "empty", "inconsistent", "pickled"],
)
def test_a_damaged_cache_file_is_fitted_again_and_rewritten(damage: str, tmp_path: Path) -> None:
    word_docs, char_docs = small_docs()
    first = fitted_models(word_docs, char_docs, tmp_path)
    [saved] = tmp_path.glob("matcher-*.npz")
    good = saved.read_bytes()
    if damage == "truncated":
        saved.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        saved.write_bytes(b"not an npz file at all")
    elif damage == "empty":
        saved.write_bytes(b"")
    else:
        with np.load(saved, allow_pickle=False) as arrays:
            kept = {k: arrays[k] for k in arrays.files}
        if damage == "inconsistent":
            kept["char_indptr"] = kept["char_indptr"][:-1]  # a row short of the catalog
        else:
            kept["word_terms"] = np.array(list(kept["word_terms"]), dtype=object)  # only loads with pickle
        with saved.open("wb") as out:
            np.savez(out, **kept)
    again = fitted_models(word_docs, char_docs, tmp_path)
    assert same_model(first[0], again[0]) and same_model(first[1], again[1])
    assert saved.read_bytes() == good  # rewritten whole
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]  # no temporary file left


def test_another_catalog_or_lexicon_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path))
    cache = tmp_path / "cache"
    assert default_cache_dir() == cache
    data = {
        "actions": [
            {"name": "crm.create_account", "description": "Creates an account in the CRM."},
            {"name": "billing.setup_billing", "description": "Sets up billing for a customer."},
        ]
    }
    ActionMatcher(catalog_from_data(data))
    assert len(list(cache.glob("matcher-*.npz"))) == 1
    ActionMatcher(catalog_from_data(data))  # the same catalog: the same file
    assert len(list(cache.glob("matcher-*.npz"))) == 1

    data["actions"][1]["description"] = "Sets up invoicing for a customer."
    changed = ActionMatcher(catalog_from_data(data))
    assert len(list(cache.glob("matcher-*.npz"))) == 2
    assert (
        changed.rank("set up invoicing", 1)[0][0].name == "billing.setup_billing"
    )  # the new words are in it

    raw = yaml.safe_load((ROOT / "planner" / "lexicon.yaml").read_text(encoding="utf-8"))
    before = set(lexicon().concepts("invoicing"))
    raw["synonyms"] = [*raw["synonyms"], ["invoicing", "paperwork"]]
    other = build_lexicon(raw)
    assert set(other.concepts("invoicing")) != before  # the new group's token reads it too
    ActionMatcher(catalog_from_data(data), lex=other)
    assert len(list(cache.glob("matcher-*.npz"))) == 3
