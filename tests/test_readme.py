"""Every fenced code block in README.md is run by a test here (trimmed to tiny settings).

Each test names the blocks it runs with a matcher in ``BLOCK_OWNERS``; ``test_every_readme_block_is_run``
fails when a block is claimed by no test (or by two), so a new README block needs a test before it lands.
Python blocks are exec'd; shell blocks run line by line through ``sys.executable -m tfpretrain`` (and
``awk``) in a temporary directory, on slices of the real files in ../shared/data; the ``text`` synopsis
is checked against the parser's ``--help`` output.
"""

import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# test name -> which blocks it runs, by language and content (each block must have exactly one owner).
BLOCK_OWNERS = {
    "test_readme_setup_commands_exist": lambda lang, body: lang == "bash" and "make demo" in body,
    "test_readme_python_example_runs": lambda lang, body: lang == "python" and "build_tagger" in body,
    "test_readme_bert_word_vectors_example_runs": lambda lang, body: lang == "python" and "BertEmbedder" in body,
    "test_readme_gpt_example_runs": lambda lang, body: lang == "python" and "GptCausalLM" in body,
    "test_readme_synopsis_matches_the_parser": lambda lang, body: lang == "text" and body.startswith("tfpretrain "),
    "test_readme_layout_matches_the_tree": lambda lang, body: lang == "text" and body.startswith("tfpretrain/"),
    "test_readme_tagger_commands_run": lambda lang, body: lang == "bash" and "pretrain-bilm" in body,
    "test_readme_bert_commands_run": lambda lang, body: (
        lang == "bash" and "import-hf" in body and "--encoder" not in body),
    "test_readme_feature_tagging_commands_run": lambda lang, body: lang == "bash" and "--encoder" in body,
    "test_readme_gpt_ulmfit_commands_run": lambda lang, body: lang == "bash" and "pretrain-gpt" in body,
    "test_readme_precision_commands_run": lambda lang, body: (
        lang == "bash" and "--precision" in body and "--strategy" not in body),
    "test_readme_multiworker_command_runs": lambda lang, body: lang == "bash" and "TF_CONFIG" in body,
    "test_readme_tpu_command_stops_without_a_tpu": lambda lang, body: lang == "bash" and "--strategy tpu" in body,
}


def readme_blocks():
    """(language, body) of every fenced block in README.md, in order."""
    return FENCE.findall(README.read_text(encoding="utf-8"))


def blocks_of(test_name):
    bodies = [body for lang, body in readme_blocks() if BLOCK_OWNERS[test_name](lang, body)]
    assert bodies, f"{test_name}: no README block matches; was it removed or reworded?"
    return bodies


def test_every_readme_block_is_run():
    blocks = readme_blocks()
    assert len(blocks) >= 11, f"found only {len(blocks)} code blocks in README.md"
    for lang, body in blocks:
        owners = [name for name, owns in BLOCK_OWNERS.items() if owns(lang, body)]
        assert len(owners) == 1, (f"README block ```{lang} starting {body[:60]!r} is run by {owners or 'no test'}: "
                                  f"add it to BLOCK_OWNERS in tests/test_readme.py with a test that runs it")
    unused = [name for name, owns in BLOCK_OWNERS.items() if not any(owns(lang, body) for lang, body in blocks)]
    assert not unused, f"tests whose README block is gone: {unused}"


def test_readme_layout_matches_the_tree():
    """Every folder and file the layout names exists, and it names every module of the architecture folders."""
    (block,) = blocks_of("test_readme_layout_matches_the_tree")
    parents, named = [], 0
    for line in block.splitlines():
        match = re.match(r"^( {0,12})([\w.]+/|[\w.]+\.py)(?:\s|$)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        parents = parents[:depth] + [match.group(2).rstrip("/")]
        path = REPO_ROOT.joinpath(*parents)
        assert path.exists(), f"the README's layout names {'/'.join(parents)}, which does not exist"
        named += 1
    assert named >= 15
    words = set(re.findall(r"\w+", block))
    folders = [REPO_ROOT / "tfpretrain" / "text", *sorted((REPO_ROOT / "tfpretrain" / "models").glob("*/"))]
    for folder in folders:
        for module in folder.glob("*.py"):
            if module.stem != "__init__":
                assert module.stem in words, f"the README's layout does not mention {module.relative_to(REPO_ROOT)}"


def _with_data(code, shared_data):
    """The README reads ../shared/data (the repository's layout); TFPRETRAIN_SHARED_DATA may put it elsewhere."""
    return code.replace("../shared/data", shared_data.as_posix())


# --- the two set-up commands -------------------------------------------------------------------------


def test_readme_setup_commands_exist():
    """``make demo`` / ``make test`` are not run here: the test suite is what ``make test`` runs, so running
    it inside the suite would recurse (and ``make demo`` is the demo's own job). Checked instead: the
    Makefile has every target the block names and CI (.ci/run) runs ``make test``."""
    (block,) = blocks_of("test_readme_setup_commands_exist")
    targets = [line.split()[1] for line in block.splitlines() if line.startswith("make ")]
    assert targets == ["demo", "test"]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no '{target}' target"
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M), "make test does not run pytest"
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.M), ".ci/run does not call make test"


# --- Python blocks -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_readme_python_example_runs(shared_data, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the example reads ../shared/data, as a user of the repo would
    (block,) = blocks_of("test_readme_python_example_runs")
    code = _with_data(block, shared_data).replace("epochs=1)", "epochs=1, steps_per_epoch=5)")
    assert "steps_per_epoch=5" in code
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].optimizer.iterations.numpy() == 5


def test_readme_bert_word_vectors_example_runs(tmp_path, monkeypatch, minilm_dir):
    from tfpretrain.models.bert import import_hf

    import_hf(minilm_dir, tmp_path / "minilm")
    (block,) = blocks_of("test_readme_bert_word_vectors_example_runs")
    code = block.replace('"runs/minilm"', repr(str(tmp_path / "minilm")))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert tuple(namespace["vectors"].shape) == (1, 5, 1536)


@pytest.mark.slow
def test_readme_gpt_example_runs(shared_data, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    (block,) = blocks_of("test_readme_gpt_example_runs")
    code = _with_data(block, shared_data).replace("steps_per_epoch=100", "steps_per_epoch=20")
    assert "steps_per_epoch=20" in code
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["lm"].optimizer.iterations.numpy() == 20
    assert namespace["lm"].generate(["the food was"], max_new_tokens=3)[0].startswith("the food was")


# --- the command-line synopsis -------------------------------------------------------------------------


def _help_options(command):
    """{option: choices or None} from ``tfpretrain COMMAND --help`` (the parser's own help text)."""
    from tfpretrain.pipelines.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert command in subparsers.choices, f"the synopsis names 'tfpretrain {command}', which the CLI lacks"
    help_text = subparsers.choices[command].format_help()
    options = {}
    for match in re.finditer(r"^  (?:-\w, )?(--[a-z][a-z0-9-]*)(?: \{([^}]*)\})?", help_text, re.M):
        options[match.group(1)] = match.group(2).split(",") if match.group(2) else None
    return options


def test_readme_synopsis_matches_the_parser():
    (block,) = blocks_of("test_readme_synopsis_matches_the_parser")
    entries = []  # (commands, synopsis text without comments)
    for line in block.splitlines():
        text = line.split("#")[0]
        if line.startswith("tfpretrain "):
            name = text.split()[1]
            commands = name.strip("{}").split(",") if name.startswith("{") else [name]
            entries.append((commands, text))
        elif text.strip():
            assert entries and line.startswith(" "), f"synopsis line outside a command: {line!r}"
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + text)
    checked = 0
    for commands, text in entries:
        for command in commands:
            options = _help_options(command)
            for match in re.finditer(r"(--[a-z][a-z0-9-]*)(?:[ =]([a-z0-9_{},|]+))?", text):
                option, value = match.groups()
                assert option in options, f"synopsis: 'tfpretrain {command} {option}' is not an option of the CLI"
                checked += 1
                if value and options[option] and value.upper() != value:
                    for choice in re.split(r"[{},|]", value):
                        assert not choice or choice in options[option], (
                            f"synopsis: {command} {option} {choice!r} is not one of {options[option]}")
    assert checked > 60 and len(entries) >= 15


# --- shell blocks --------------------------------------------------------------------------------------

TRAINING_COMMANDS = {"pretrain-bilm", "train-tagger", "pretrain-bert", "pretrain-gpt", "finetune", "ulmfit"}
# tiny settings: the option's value is replaced (or added, for the commands listed)
SMALL = {
    "--epochs": ("1", {"pretrain-bilm", "train-tagger", "finetune", "ulmfit"}),
    "--steps": ("3", {"pretrain-bert", "pretrain-gpt"}),
    "--preset": ("tiny", {"pretrain-bilm", "train-tagger", "pretrain-bert", "pretrain-gpt", "ulmfit"}),
    "--max-train-examples": ("16", {"finetune", "ulmfit"}),
    "--sequence-length": ("32", {"finetune", "pretrain-bert", "pretrain-gpt"}),
    "--batch-size": ("8", {"pretrain-bert", "pretrain-gpt"}),
    "--max-new-tokens": ("5", set()),
    "--xla": ("off", set()),  # XLA compiles for tens of seconds on a CPU; the option itself is still parsed
    "--general-epochs": ("1", {"ulmfit"}),
    "--general-steps-per-epoch": ("3", {"ulmfit"}),
    "--domain-epochs": ("1", {"ulmfit"}),
    "--domain-steps-per-epoch": ("3", {"ulmfit"}),
    "--lm-batch-size": ("8", {"ulmfit"}),
}
QA_WINDOW = ("96", "32")  # finetune --task qa: --sequence-length, --doc-stride
ULMFIT_BPTT = "20"  # ulmfit's --sequence-length is the LM's BPTT length, not a transformer's


def _sentences(path, count):
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return "\n\n".join(blocks[:count]) + "\n\n"


def _lines(path, count):
    return "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:count])


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_data):
    """A working directory with small slices of the files the README names, and the path map to them."""
    work = tmp_path_factory.mktemp("readme_cli")
    data = work / "data"
    data.mkdir()
    squad = {}
    for split in ("train", "dev"):
        source = json.loads((shared_data / "squad_v1.1_sample" / f"{split}.json").read_text(encoding="utf-8"))
        first = source["data"][0]  # each file holds one article: train 20 of its questions, dev 30
        paragraphs = first["paragraphs"][:4] if split == "train" else first["paragraphs"][:1]
        squad[split] = json.dumps({**source, "data": [{**first, "paragraphs": paragraphs}]})
    slices = {
        "ud_english_ewt/train.conllu": _sentences(shared_data / "ud_english_ewt" / "train.conllu", 150),
        "ud_english_ewt/dev.conllu": _sentences(shared_data / "ud_english_ewt" / "dev.conllu", 40),
        # the README splits UNER at sentence 1,500: 1,520 sentences leave 20 for dev
        "uner_english_ewt/dev.iob2": _sentences(shared_data / "uner_english_ewt" / "dev.iob2", 1520),
        "sst2/train.tsv": _lines(shared_data / "sst2" / "train.tsv", 200),
        "sst2/dev.tsv": _lines(shared_data / "sst2" / "dev.tsv", 30),
        "rte/train.tsv": _lines(shared_data / "rte" / "train.tsv", 101),
        "rte/dev.tsv": _lines(shared_data / "rte" / "dev.tsv", 21),
        "squad_v1.1_sample/train.json": squad["train"],
        "squad_v1.1_sample/dev.json": squad["dev"],
    }
    paths = {}
    for name, text in slices.items():
        target = data / name.replace("/", "__")
        target.write_text(text, encoding="utf-8")
        paths["../shared/data/" + name] = str(target)
    # the accelerator examples' placeholders: a plain-text corpus and tagged files
    (data / "corpus.txt").write_text(
        "\n".join(line.split("\t")[-1] for line in _lines(shared_data / "sst2" / "train.tsv", 300).splitlines()[1:]),
        encoding="utf-8")
    (data / "train.iob2").write_text(_sentences(shared_data / "uner_english_ewt" / "dev.iob2", 60), encoding="utf-8")
    (data / "dev.iob2").write_text(_sentences(shared_data / "uner_english_ewt" / "dev.iob2", 20), encoding="utf-8")
    for name in ("corpus.txt", "train.iob2", "dev.iob2"):
        paths[name] = str(data / name)
    paths["/shared/runs/bert"] = "runs/bert_multiworker"
    return work, paths


def _command_lines(block):
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    return [line.strip() for line in block.replace("\\\n", " ").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _shrink(command, args):
    """``args`` (after ``tfpretrain COMMAND``) with the SMALL settings replaced or added."""
    args = list(args)
    for option, (value, add_to) in SMALL.items():
        if option == "--sequence-length" and command == "ulmfit":
            value = ULMFIT_BPTT
        if option == "--sequence-length" and args[args.index("--task") + 1 if "--task" in args else 0] == "qa":
            value = QA_WINDOW[0]  # a question takes up to 64 pieces
        if option in args:
            args[args.index(option) + 1] = value
        elif command in add_to:
            args += [option, value]
    if "--task" in args and args[args.index("--task") + 1] == "qa" and "--doc-stride" not in args:
        args += ["--doc-stride", QA_WINDOW[1]]
    return args


def _run_block(block, work, name, env_extra=None, expect_success=True):
    """Runs each command line of a README shell block in its own directory ``name`` (so that no block
    resumes another's runs/...); returns {command line: CompletedProcess}.

    A command starts once every earlier command whose output (``--out DIR``, ``> FILE``) it names has
    finished; independent ones run two at a time (the MiniLM fine-tunes, pretrain-gpt beside ulmfit)."""
    base, paths = work
    directory = base / name
    directory.mkdir()
    variables, steps = {}, []
    for line in _command_lines(block):
        assignment = re.fullmatch(r"(\w+)=\$\((.*)\)", line)
        if assignment:  # NAME=$(command): run it now, keep its output
            argv = [sys.executable if a == ".venv/bin/python" else a for a in shlex.split(assignment.group(2))]
            done = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
            variables[assignment.group(1)] = done.stdout.strip()
            continue
        for variable, value in variables.items():
            line = line.replace("$" + variable, value)
        tokens = [paths.get(t, t) for t in shlex.split(line, comments=True)]
        env = dict(env_extra or {})
        while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):  # VAR=value command
            variable, value = tokens.pop(0).split("=", 1)
            env[variable] = value
        stdin = None
        if "|" in tokens:  # echo "text" | command
            left, tokens = tokens[:tokens.index("|")], tokens[tokens.index("|") + 1:]
            assert left[0] == "echo", line
            stdin = " ".join(left[1:]) + "\n"
        outputs, stdout_file = [], None
        if ">" in tokens:
            stdout_file = tokens[tokens.index(">") + 1]
            outputs.append(stdout_file)
            tokens = tokens[:tokens.index(">")]
        if "--out" in tokens:
            outputs.append(tokens[tokens.index("--out") + 1])
        if tokens[0] == "tfpretrain":
            argv = [sys.executable, "-m", "tfpretrain", tokens[1]] + _shrink(tokens[1], tokens[2:])
        else:
            assert tokens[0] in ("awk",), f"README command not understood by the test: {line}"
            argv = tokens
        needs = {i for i, step in enumerate(steps) for out in step["outputs"]
                 if any(t == out or t.startswith(out + "/") for t in tokens if t not in outputs)}
        steps.append(dict(line=line, argv=argv, env=env, stdin=stdin, stdout_file=stdout_file, outputs=outputs,
                          needs=needs))

    def run(step):
        started = time.perf_counter()
        done = subprocess.run(step["argv"], cwd=directory, input=step["stdin"], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **step["env"]})
        print(f"{time.perf_counter() - started:6.1f} s  {step['line'][:100]}")
        if step["stdout_file"] is not None and done.returncode == 0:
            (directory / step["stdout_file"]).write_text(done.stdout, encoding="utf-8")
        return done

    results, running = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        while len(results) < len(steps):
            for i, step in enumerate(steps):
                if i not in results and i not in running.values() and step["needs"] <= set(results):
                    if len(running) < 2:
                        running[pool.submit(run, step)] = i
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                results[i] = done = future.result()
                if expect_success and done.returncode != 0:
                    concurrent.futures.wait(running)
                    pytest.fail(f"README command failed: {steps[i]['line']}\nran: {steps[i]['argv']}\n"
                                f"{done.stderr[-3000:]}")
    return {step["line"]: results[i] for i, step in enumerate(steps)}


def _last_json(done):
    return json.loads(done.stdout.strip().splitlines()[-1])


def _result_of(results, fragment):
    (done,) = [done for line, done in results.items() if fragment in line]
    return done


@pytest.mark.slow
def test_readme_tagger_commands_run(work):
    (block,) = blocks_of("test_readme_tagger_commands_run")
    results = _run_block(block, work, "tagger")
    directory = work[0] / "tagger"
    assert (directory / "runs" / "upos").is_dir() and (directory / "runs" / "bilm").is_dir()
    scores = _last_json(_result_of(results, "tfpretrain evaluate"))
    assert {"precision", "recall", "f1", "accuracy"} <= set(scores), scores
    tagged = [line for line in _result_of(results, "tfpretrain tag").stdout.splitlines() if line.strip()]
    assert len(tagged) == len("The quick brown fox jumps over the lazy dog .".split()), tagged


@pytest.mark.slow
def test_readme_bert_commands_run(work):
    (block,) = blocks_of("test_readme_bert_commands_run")
    results = _run_block(block, work, "bert")
    directory = work[0] / "bert"
    assert _sentences(directory / "uner_train.iob2", 10**6).count("\n\n") == 1500
    for run in ("minilm", "sst2", "rte", "squad", "ner", "bert"):
        assert (directory / "runs" / run).is_dir(), run
    assert (directory / "runs" / "bert" / "encoder.json").is_file()
    scores = _last_json(_result_of(results, "tfpretrain evaluate"))
    assert 0.0 <= scores["accuracy"] <= 1.0, scores
    embedded = _last_json(_result_of(results, "tfpretrain embed"))
    assert embedded, "embed printed an empty line"


@pytest.mark.slow
def test_readme_feature_tagging_commands_run(work):
    """The feature-based block reads the BERT block's UNER split and $MINILM: those lines run first."""
    (bert,) = blocks_of("test_readme_bert_commands_run")
    setup = "\n".join(line for line in _command_lines(bert) if line.startswith(("awk ", "MINILM=")))
    assert setup.count("\n") == 2, setup
    (block,) = blocks_of("test_readme_feature_tagging_commands_run")
    results = _run_block(setup + "\n" + block, work, "feature_tagging")
    directory = work[0] / "feature_tagging"
    assert (directory / "ner_features.tflite").stat().st_size > 1_000_000  # MiniLM's weights are inside
    assert list((directory / "saved_models" / "ner_features").glob("*/saved_model.pb")), "no SavedModel"
    scores = _last_json(_result_of(results, "tfpretrain evaluate"))
    assert {"precision", "recall", "f1", "accuracy"} <= set(scores), scores
    tagged = [line for line in _result_of(results, "tfpretrain tag").stdout.splitlines() if line.strip()]
    assert len(tagged) == len("Priya flew to Lisbon .".split()), tagged


@pytest.mark.slow
def test_readme_gpt_ulmfit_commands_run(work):
    (block,) = blocks_of("test_readme_gpt_ulmfit_commands_run")
    results = _run_block(block, work, "gpt_ulmfit")
    directory = work[0] / "gpt_ulmfit"
    generated = json.loads(_result_of(results, "tfpretrain generate").stdout.strip().splitlines()[-1])
    assert generated["prompt"] == "the food was", generated
    for run in ("gpt", "gpt_rte", "ulmfit/general_lm", "ulmfit/domain_lm", "ulmfit/classifier"):
        assert (directory / "runs" / run).is_dir(), run
    scores = _last_json(_result_of(results, "tfpretrain evaluate"))
    assert 0.0 <= scores["accuracy"] <= 1.0, scores


@pytest.mark.slow
def test_readme_precision_commands_run(work):
    (block,) = blocks_of("test_readme_precision_commands_run")
    _run_block(block, work, "precision")
    directory = work[0] / "precision"
    for run, precision in (("bert_bf16", "mixed_bfloat16"), ("tagger", "mixed_float16")):
        recorded = json.loads((directory / "runs" / run / "precision.json").read_text(encoding="utf-8"))
        assert precision in json.dumps(recorded), (run, recorded)


@pytest.mark.slow
def test_readme_multiworker_command_runs(work):
    """The two-host example, run as a one-worker cluster on a free loopback port (the two-worker case is
    tests/training/test_multiworker.py)."""
    import socket

    (block,) = blocks_of("test_readme_multiworker_command_runs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = json.loads(re.search(r"TF_CONFIG='([^']*)'", block).group(1))
    assert config["task"] == {"type": "worker", "index": 0} and len(config["cluster"]["worker"]) == 2
    config["cluster"]["worker"] = [f"127.0.0.1:{port}"]
    one_worker = re.sub(r"TF_CONFIG='[^']*'", "TF_CONFIG=" + shlex.quote(json.dumps(config)), block)
    _run_block(one_worker, work, "multiworker")
    assert (work[0] / "multiworker" / "runs" / "bert_multiworker" / "encoder.json").is_file()


def test_readme_tpu_command_stops_without_a_tpu(work):
    """No TPU here: the README says the command stops with '--strategy tpu found no TPU'."""
    (block,) = blocks_of("test_readme_tpu_command_stops_without_a_tpu")
    assert "found no TPU" in README.read_text(encoding="utf-8")
    (done,) = _run_block(block, work, "tpu", expect_success=False).values()
    assert done.returncode != 0
    assert "--strategy tpu found no TPU" in done.stderr, done.stderr[-2000:]
