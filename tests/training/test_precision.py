"""Mixed precision and XLA (``--precision``, ``--xla``): numerics on CPU against float32, the CLI options, reloading.

Each training path runs a few steps through its pipeline's ``run`` with the
same seed and the same slice of ../shared/data, in float32 and in the other
settings; the last logged loss must lie within a stated tolerance of
float32's, and below the first logged loss. bfloat16 keeps 8 bits of
mantissa (about 2-3 significant digits) and float16 11, so the tolerances are
relative: 1% for bfloat16, 0.5% for float16, 0.1% for XLA (float32 maths in
another order).
"""

import json

import keras
import numpy as np
import pytest

from tests.conftest import logged_losses
from tfpretrain.training.precision import PRECISIONS, check_jit_compile, float32_copy, precision_scope

TOLERANCE = {"mixed_bfloat16": 1e-2, "mixed_float16": 5e-3, "xla": 1e-3}  # relative, on the last logged loss
QUIET = dict(verbose=0, log=lambda *args: None)



def check_against_float32(losses):
    """``losses``: {setting: [loss per epoch]}, "float32" among them."""
    reference = losses["float32"]
    print({setting: [round(value, 4) for value in values] for setting, values in losses.items()})  # pytest -s
    assert reference[-1] < reference[0], f"float32 did not learn: {reference}"
    for setting, values in losses.items():
        assert values[-1] < values[0], f"{setting}: the loss did not fall: {values}"
        assert values[-1] == pytest.approx(reference[-1], rel=TOLERANCE.get(setting, 0)), (setting, values, reference)


@pytest.fixture(scope="module")
def ewt_lines(shared_data):
    from tfpretrain.text.readers import read_text

    return [line for _, line in zip(range(600), read_text(str(shared_data / "ud_english_ewt" / "train.conllu")))]


@pytest.fixture(scope="module")
def ewt_text(ewt_lines, tmp_path_factory):
    path = tmp_path_factory.mktemp("precision_corpus") / "ewt.txt"
    path.write_text("\n".join(ewt_lines) + "\n", encoding="utf-8")
    return path


def random_bert_dir(lines, out_dir):
    """A freshly initialised tiny BERT directory (no training): every setting starts from these weights."""
    from tfpretrain.models.bert import BERT_PRESETS, BertEncoder, save_bert
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(lines, 600))
    save_bert(out_dir, BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **BERT_PRESETS["tiny"]), tokenizer)
    return out_dir


def pretrain_bert(text, init_dir, out_dir, setting):
    from tfpretrain.pipelines import pretrain_bert

    pretrain_bert.run([text], out_dir, init_dir=init_dir, steps=12, steps_per_epoch=6, sequence_length=32,
                      batch_size=8, learning_rate=2e-3, precision="float32" if setting == "xla" else setting,
                      jit_compile=setting == "xla", seed=0, **QUIET)
    return logged_losses(out_dir)


@pytest.mark.slow
def test_bert_masked_lm_pretraining_in_bfloat16_and_float16(ewt_lines, ewt_text, tmp_path, monkeypatch):
    from tfpretrain.models.bert import load_bert
    from tfpretrain.pipelines import lm_pretraining

    monkeypatch.setattr(lm_pretraining, "VALIDATION_BATCHES", 2)  # the held-out score is not under test

    init_dir = random_bert_dir(ewt_lines, tmp_path / "init")
    settings = ("float32", "mixed_bfloat16", "mixed_float16")  # XLA: the ULMFiT test
    losses = {s: pretrain_bert(ewt_text, init_dir, tmp_path / s, s) for s in settings}
    check_against_float32(losses)
    # The mixed-precision run recorded its precision and saved an encoder that reloads in float32.
    record = json.loads((tmp_path / "mixed_bfloat16" / "pretraining.json").read_text())
    assert record["precision"] == "mixed_bfloat16"
    encoder, _ = load_bert(str(tmp_path / "mixed_bfloat16"))
    assert encoder.dtype_policy.name == "float32" and keras.config.dtype_policy().name == "float32"


@pytest.fixture(scope="module")
def uner_slices(shared_data, tmp_path_factory):
    """120 training and 40 dev sentences of UNER English (its dev file; BIO tags, so the CRF is constrained)."""
    blocks = (shared_data / "uner_english_ewt" / "dev.iob2").read_text(encoding="utf-8").strip().split("\n\n")
    folder = tmp_path_factory.mktemp("uner")
    (folder / "train.iob2").write_text("\n\n".join(blocks[:120]) + "\n\n", encoding="utf-8")
    (folder / "dev.iob2").write_text("\n\n".join(blocks[120:160]) + "\n\n", encoding="utf-8")
    return folder / "train.iob2", folder / "dev.iob2"


@pytest.mark.slow
def test_crf_tagger_in_bfloat16_and_the_saved_tagger_reloads_in_float32(uner_slices, tmp_path):
    from tfpretrain.models.tagger.saving import load_tagger
    from tfpretrain.pipelines import predict, train_tagger

    train, dev = uner_slices
    losses = {}
    # The tagger under XLA (on static shapes): tests/training/test_xla_commands.py.
    for setting in ("float32", "mixed_bfloat16"):
        train_tagger.run(train, dev, tmp_path / setting, format="iob2", epochs=2, preset="tiny", batch_size=16,
                         precision=setting, jit_compile=False, seed=0, **QUIET)
        losses[setting] = logged_losses(tmp_path / setting)
    check_against_float32(losses)
    model, *_ = load_tagger(str(tmp_path / "mixed_bfloat16"))
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    answers = predict.run(str(tmp_path / "mixed_bfloat16"), ["Where can I get morcillas in Tampa Bay ?"])
    assert len(answers) == 1 and len(answers[0]["tags"]) == 9, answers


@pytest.mark.slow
def test_ulmfit_language_model_in_bfloat16_and_with_xla(ewt_text, tmp_path):
    from tfpretrain.pipelines.ulmfit_language_model import pretrain_lm

    losses = {}
    for setting in ("float32", "mixed_bfloat16", "xla"):
        pretrain_lm([ewt_text], tmp_path / setting, preset="tiny", epochs=2, steps_per_epoch=6,
                    sequence_length=20, batch_size=8, precision="float32" if setting == "xla" else setting,
                    jit_compile=setting == "xla", seed=0, **QUIET)
        losses[setting] = logged_losses(tmp_path / setting)
    check_against_float32(losses)


def test_precision_scope_restores_the_policy_and_float32_copy_keeps_the_outputs():
    with precision_scope("mixed_bfloat16"):
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(inputs))
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("dense").compute_dtype == "bfloat16"
    copy = float32_copy(model)
    assert copy.get_layer("dense").dtype_policy.name == "float32"
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="unknown precision 'float8'.*float32, mixed_float16, mixed_bfloat16"):
        with precision_scope("float8"):
            pass
    with pytest.raises(ValueError, match="jit_compile must be True, False or 'auto', got 'yes'"):
        check_jit_compile("yes")


def test_a_resumed_run_keeps_its_recorded_precision(tmp_path):
    from tfpretrain.training.precision import resolve_precision

    assert resolve_precision(str(tmp_path), "mixed_bfloat16") == "mixed_bfloat16"
    assert resolve_precision(str(tmp_path)) == "mixed_bfloat16"  # None: what the run recorded
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(ValueError, match="trained with --precision mixed_bfloat16"):
        resolve_precision(str(tmp_path), "float32")
    assert resolve_precision(str(tmp_path / "new")) == "float32"


TRAINING_COMMANDS = {
    "pretrain-bilm": ["--text", "a.txt", "--out", "o"],
    "train-tagger": ["--train", "a", "--dev", "b", "--format", "iob2", "--out", "o"],
    "pretrain-bert": ["--text", "a.txt", "--out", "o"],
    "pretrain-gpt": ["--text", "a.txt", "--out", "o"],
    "finetune": ["--task", "qa", "--init", "i", "--train", "a", "--dev", "b", "--out", "o"],
    "ulmfit": ["--train", "a", "--dev", "b", "--out", "o", "--stage", "general"],
}


@pytest.mark.parametrize("command", sorted(TRAINING_COMMANDS))
def test_every_training_command_takes_precision_and_xla(command):
    from tfpretrain.pipelines import cli

    parser = cli.build_parser()
    # Commands that batch by length take --static-shapes too.
    bucketed = command in ("pretrain-bilm", "train-tagger", "ulmfit", "finetune")

    def expected(precision, jit_compile, static_shapes="auto"):
        return {"precision": precision, "jit_compile": jit_compile,
                **({"static_shapes": static_shapes} if bucketed else {})}

    args = parser.parse_args([command, *TRAINING_COMMANDS[command]])
    assert cli._accelerator_options(args) == expected(None, "auto")
    args = parser.parse_args([command, *TRAINING_COMMANDS[command], "--precision", "mixed_bfloat16", "--xla", "on"])
    assert cli._accelerator_options(args) == expected("mixed_bfloat16", True)
    args = parser.parse_args([command, *TRAINING_COMMANDS[command], "--precision", "mixed_float16", "--xla", "off"]
                             + (["--static-shapes", "on"] if bucketed else []))
    assert cli._accelerator_options(args) == expected("mixed_float16", False, True)


@pytest.mark.parametrize("option", [["--precision", "float8"], ["--xla", "yes"]])
def test_an_unknown_precision_or_xla_value_is_rejected_naming_the_choices(option, capsys):
    from tfpretrain.pipelines import cli

    with pytest.raises(SystemExit) as error:
        cli.build_parser().parse_args(["train-tagger", *TRAINING_COMMANDS["train-tagger"], *option])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert f"argument {option[0]}: invalid choice: '{option[1]}'" in message
    assert ("'float32', 'mixed_float16', 'mixed_bfloat16'" if option[0] == "--precision" else "'auto', 'on', 'off'") \
        in message


def test_the_cli_choices_are_the_precision_module_s():
    from tfpretrain.pipelines import cli
    from tfpretrain.training.precision import XLA_MODES

    assert cli.PRECISIONS == PRECISIONS and cli.XLA_MODES == XLA_MODES
