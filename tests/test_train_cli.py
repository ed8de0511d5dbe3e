"""End-to-end CLI runs with the tiny random BERT: train, resume after SIGKILL, output-folder
safety, config files, evaluate and predict outputs, and error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trustfit.cli import app
from tests.conftest import write_conll

runner = CliRunner()


def train_args(tiny_model_dir, train, dev, out, *extra):
    return ["train", "--model", str(tiny_model_dir), "--train", str(train), "--dev", str(dev), "--out", str(out),
            "--batch-size", "16", "--lr", "5e-4", "--quiet", "--precision", "fp32", *extra]


def weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, conll_slices):
    out = tmp_path_factory.mktemp("run") / "model"
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, out, "--epochs", "2"))
    assert r.exit_code == 0, r.output
    return out


def test_train_saves_hf_folder(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "trustfit.json", "dev_metrics.json",
            "train_summary.json", "run_config.json", "log.jsonl"} <= names
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["id2label"]["0"] == "O" and cfg["label2id"]["B-PER"] == 7
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["words_per_second"] > 0
    assert len(summary["history"]) == 2
    hw = summary["hardware"]  # what chose the kernels, kept with the run (#14)
    assert hw["precision_reason"].startswith(summary["precision"]) or hw["precision_reason"].startswith("bf16")
    assert isinstance(hw["cpu"]["flags"], list) and hw["torch"]
    # where the time went: every phase measured, the step phases adding up to the training time
    phases = summary["phase_seconds"]
    assert set(phases) == {"encode", "collate", "forward", "backward", "optimizer", "evaluate"}
    assert all(v > 0 for v in phases.values())
    in_steps = sum(phases[k] for k in ("collate", "forward", "backward", "optimizer"))
    assert 0.5 * summary["train_seconds"] < in_steps <= summary["train_seconds"] * 1.01


def test_transformers_loads_saved_model(trained):
    from transformers import AutoModelForTokenClassification, pipeline

    m = AutoModelForTokenClassification.from_pretrained(trained)
    assert m.config.id2label[7] == "B-PER"
    pipe = pipeline("token-classification", model=str(trained), device="cpu")
    assert isinstance(pipe("EU rejects German call"), list)


def test_evaluate_writes_json_and_every_token(trained, conll_slices, tmp_path):
    dev = conll_slices[1]
    r = runner.invoke(app, ["evaluate", "--model", str(trained), "--data", str(dev), "--json", str(tmp_path / "m.json"),
                            "--predictions", str(tmp_path / "p.conll")])
    assert r.exit_code == 0, r.output
    assert "Entity level" in r.output and "Token level" in r.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert {"entity", "token", "token_accuracy"} <= set(m)
    pred_lines = [l for l in (tmp_path / "p.conll").read_text().splitlines() if l]
    gold_tokens = [l.split()[0] for l in dev.read_text().splitlines() if l.strip() and not l.startswith("-DOCSTART-")]
    assert [l.split()[0] for l in pred_lines] == gold_tokens
    assert all(len(l.split()) == 3 for l in pred_lines)


def test_predict_text_stdin_offsets_and_long_and_empty_sentences(trained):
    long = " ".join(f"w{i}" for i in range(1000))
    text = "EU rejects German call to boycott British lamb .\n\n" + long + "\n"
    r = runner.invoke(app, ["predict", "--model", str(trained), "-"], input=text)
    assert r.exit_code == 0, r.output
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(recs) == 3
    assert recs[0]["tokens"][0] == "EU" and len(recs[0]["tags"]) == 9
    assert recs[1]["tokens"] == [] and recs[1]["entities"] == []
    assert len(recs[2]["tags"]) == 1000  # windows: every word of a 1,000-word sentence is predicted
    for rec in recs:
        for e in rec["entities"]:
            assert rec["text"][e["start"]:e["end"]] == e["text"] and 0 <= e["score"] <= 1


def test_predict_conll_input(trained, conll_slices, tmp_path):
    out = tmp_path / "p.jsonl"
    r = runner.invoke(app, ["predict", "--model", str(trained), str(conll_slices[1]), "--format", "conll", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 60


def test_predict_runtimes_agree_with_torch_fp32(trained, conll_slices, tmp_path):
    """int8 and ONNX Runtime change where the forward pass runs, not what it predicts: same words,
    and tags equal to fp32 PyTorch's (ONNX) or nearly (int8 rounds the weights)."""
    from trustfit.data.conll import read_conll
    from trustfit.predict.ner import NerPredictor
    from trustfit.predict.runtime import use_runtime

    corpus = read_conll(conll_slices[1])
    tags = {}
    for name in ("torch", "int8", "onnx", "onnx-int8"):
        p = NerPredictor.from_dir(str(trained), precision="fp32")
        use_runtime(p, name)
        assert p.precision == "fp32"
        tags[name] = [t for sent in p.predict(corpus).tags for t in sent]
    assert len(tags["torch"]) == corpus.n_words
    for name, limit in (("onnx", 0.999), ("int8", 0.95), ("onnx-int8", 0.95)):
        same = sum(a == b for a, b in zip(tags[name], tags["torch"])) / len(tags["torch"])
        assert len(tags[name]) == corpus.n_words and same >= limit, (name, same)
    out = tmp_path / "int8.jsonl"
    r = runner.invoke(app, ["predict", "--model", str(trained), str(conll_slices[1]), "--format", "conll",
                            "--runtime", "int8", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 60
    r = runner.invoke(app, ["predict", "--model", str(trained), "-", "--runtime", "tpu"], input="EU rejects it\n")
    assert r.exit_code == 2 and "unknown runtime 'tpu': use one of torch, int8, onnx, onnx-int8" in r.output


def test_int8_runtimes_quantise_each_output_channel(trained, tmp_path):
    """Both int8 runtimes scale weights per output channel (per-tensor cost 1-3 F1 points on
    CoNLL-2003); ONNX Runtime's in 7 bits, which cannot saturate AVX2's 16-bit int8 sums."""
    import onnx
    import torch
    from onnx import numpy_helper

    from trustfit.predict.ner import NerPredictor
    from trustfit.predict.onnx import to_onnx_runtime
    from trustfit.predict.runtime import quantize_int8

    model = NerPredictor.from_dir(str(trained), precision="fp32").model
    linear = quantize_int8(model).bert.encoder.layer[0].intermediate.dense
    assert linear.weight().qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    to_onnx_runtime(model, tmp_path, int8=True)
    graph = onnx.load(str(tmp_path / "model.int8.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    products = [n for n in graph.node if n.op_type == "MatMulInteger"]  # the linear layers
    assert len(products) >= 6 * 2  # two layers of the tiny encoder, each with six products at least
    for node in products:
        w, zero_point = weights[node.input[1]], weights[node.input[3]]
        assert abs(w.astype(int)).max() <= 64 and zero_point.shape == (w.shape[1],), node.name  # 7 bits


def test_predict_names_onnx_int8_where_pytorch_runs_fp32(trained, conll_slices, monkeypatch):
    """Without native bf16 (here hidden by the caps --emulate avx2 sets) a large input gets one
    tip naming --runtime onnx-int8; a small input, or another runtime, gets none."""
    import trustfit.cli.predict as predict_cli

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    args = ["predict", "--model", str(trained), str(conll_slices[1]), "--format", "conll"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "onnx-int8" not in r.output  # 60 sentences: below HINT_MIN_WORDS
    monkeypatch.setattr(predict_cli, "HINT_MIN_WORDS", 10)
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and r.output.count("tip: this CPU has no native bf16, so PyTorch predicts in fp32; "
                                               "--runtime onnx-int8") == 1
    r = runner.invoke(app, args + ["--runtime", "onnx"])
    assert r.exit_code == 0 and "tip:" not in r.output


def test_refuses_output_with_another_run_unless_overwrite(trained, tiny_model_dir, conll_slices):
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, trained, "--max-steps", "1"))
    assert r.exit_code == 2
    assert "already holds a training run; pass --resume to continue it, --overwrite to replace it" in r.output


def test_refuses_foreign_nonempty_output(tmp_path, tiny_model_dir, conll_slices):
    (tmp_path / "notes.txt").write_text("mine")
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, tmp_path, "--max-steps", "1"))
    assert r.exit_code == 2 and "is not empty and holds no trustfit run" in r.output
    assert (tmp_path / "notes.txt").exists()


def test_resume_with_other_settings_is_refused(tmp_path, tiny_model_dir, conll_slices):
    out = tmp_path / "m"
    assert runner.invoke(app, train_args(tiny_model_dir, *conll_slices, out, "--max-steps", "2")).exit_code == 0
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, out, "--max-steps", "2", "--lr", "1e-3",
                                      "--resume"))
    assert r.exit_code == 2 and "--resume with different settings than the run there (lr)" in r.output
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, out, "--max-steps", "2", "--overwrite"))
    assert r.exit_code == 0, r.output


def test_config_file_and_flag_override(tmp_path, tiny_model_dir, conll_slices):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'train = "{conll_slices[0]}"\ndev = "{conll_slices[1]}"\nmax_steps = 3\nseed = 7\n'
                   f'model = "{tiny_model_dir}"\nbatch_size = 8\n')
    out = tmp_path / "m"
    r = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(out), "--max-steps", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["seed"] == 7 and saved["batch_size"] == 8
    yml = tmp_path / "exp.yaml"
    yml.write_text("train: x.conll\nbatch_sise: 8\n")
    r = runner.invoke(app, ["train", "--config", str(yml), "--out", str(tmp_path / "n")])
    assert r.exit_code == 2 and "exp.yaml: invalid configuration" in r.output and "unknown key 'batch_sise'" in r.output


def test_same_seed_same_result(tmp_path, tiny_model_dir, conll_slices):
    for name in ("a", "b"):
        r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, tmp_path / name, "--max-steps", "6"))
        assert r.exit_code == 0, r.output
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_model_folder_without_tokenizer(tmp_path, tiny_model_dir, conll_slices):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((tiny_model_dir / f).read_bytes())
    r = runner.invoke(app, train_args(bare, *conll_slices, tmp_path / "o"))
    assert r.exit_code == 2 and "the model folder has no tokenizer" in r.output


def test_train_file_without_entities(tmp_path, tiny_model_dir, conll_slices):
    p = write_conll(tmp_path / "o.conll", [[("a", "O")]])
    r = runner.invoke(app, train_args(tiny_model_dir, p, conll_slices[1], tmp_path / "o"))
    assert r.exit_code == 2 and "no entity tags found" in r.output


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "trustfit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("levers", [[], ["--ema-decay", "0.9", "--layer-lr-decay", "0.8"]], ids=["plain", "ema-llrd"])
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, tiny_model_dir, conll_slices, levers):
    """Kill -9 mid-epoch (after step 7, last checkpoint at step 6), resume, compare with a clean run
    (with the weight average, which the checkpoint must carry, and per-layer learning rates)."""
    args = lambda out: train_args(tiny_model_dir, *conll_slices, out, "--epochs", "2", "--checkpoint-every", "3",
                                  "--eval-every", "5", *levers)  # noqa: E731
    clean = _cli(*args(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    killed = _cli(*args(tmp_path / "k"), env={"TRUSTFIT_FAULT_KILL_AT_STEP": "7"})
    assert killed.returncode == -9
    assert (tmp_path / "k/checkpoints/LATEST").read_text() == "step-00000006"
    resumed = _cli(*args(tmp_path / "k"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    s_clean = json.loads((tmp_path / "clean/train_summary.json").read_text())
    s_res = json.loads((tmp_path / "k/train_summary.json").read_text())
    assert s_res["resumed"] and s_res["steps"] == s_clean["steps"]
    assert s_res["dev"]["entity"] == s_clean["dev"]["entity"]
    assert [h["f1"] for h in s_res["history"]] == [h["f1"] for h in s_clean["history"]]
    wa, wb = weights(tmp_path / "clean"), weights(tmp_path / "k")
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_precision_choice_names_its_reason():
    from trustfit.hardware import cpu_info, precision_choice

    amx = "model name\t: Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
    avx2 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n"
    assert cpu_info(avx2, env={}) == {"model": "AMD EPYC 7B13", "flags": ["avx2", "fma"], "capped": [], "caps": {}}
    from trustfit.hardware import cpu_kind

    assert cpu_kind(cpu_info(avx2, env={})) == "AVX2" and cpu_kind(cpu_info(amx, env={})) == "AMX"
    assert cpu_kind({"flags": ["avx2", "avx512f", "avx512_bf16"]}) == "AVX512-BF16"
    import torch

    if not torch.cuda.is_available():
        assert precision_choice("auto", amx, env={}) == ("bf16", "bf16 autocast: this CPU has native bf16 "
                                                         "(amx_bf16, avx512_bf16)")
        assert precision_choice("auto", avx2, env={})[0] == "fp32"
        assert "this CPU has no native bf16" in precision_choice("auto", avx2, env={})[1]
    assert precision_choice("fp32", amx) == ("fp32", "fp32: asked for with --precision")


def test_instruction_set_caps_hide_native_bf16():
    """ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY make PyTorch use AVX2 kernels: bf16 is then
    emulated (about 70x slower per matmul, measured), so auto must pick fp32 and say why."""
    import torch

    from trustfit.hardware import EMULATE_AVX2, cpu_info, cpu_kind, precision_choice

    amx = "model name\t: Xeon\nflags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n"
    info = cpu_info(amx, env=EMULATE_AVX2)
    assert info["flags"] == ["avx2", "fma"] and "amx_bf16" in info["capped"]
    assert cpu_kind(info) == "AVX2 (capped)"
    # oneDNN capped just below bf16 keeps AVX512 but not its bf16
    below = cpu_info(amx, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"})
    assert cpu_kind(below) == "AVX512 (capped)"
    assert cpu_kind(cpu_info(amx, env={"ONEDNN_MAX_CPU_ISA": "ALL"})) == "AMX"
    if not torch.cuda.is_available():
        prec, why = precision_choice("auto", amx, env=EMULATE_AVX2)
        assert prec == "fp32" and "capped by ONEDNN_MAX_CPU_ISA=AVX2" in why


def test_training_bounds_onednn_kernel_cache_unless_the_user_set_it():
    from trustfit.hardware import ONEDNN_CACHE_VAR, TRAINING_ONEDNN_CACHE, bound_onednn_cache

    env: dict[str, str] = {}
    assert bound_onednn_cache(env) == str(TRAINING_ONEDNN_CACHE) and env == {ONEDNN_CACHE_VAR: "0"}
    assert bound_onednn_cache({ONEDNN_CACHE_VAR: "256"}) == "256"  # the user's setting wins


def test_attention_dropout_reaches_every_attention_module(tiny_model_dir, conll_slices, tmp_path):
    import torch

    from trustfit.models.backbone import set_attention_dropout

    out = tmp_path / "a0"
    r = runner.invoke(app, train_args(tiny_model_dir, *conll_slices, out, "--max-steps", "2",
                                      "--attention-dropout", "0"))
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(out)
    n_layers = model.config.num_hidden_layers
    assert set_attention_dropout(model, 0.25) == n_layers  # one attention-probability dropout per layer
    hidden = [m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and "attention.self" not in name]
    assert hidden and all(p == model.config.hidden_dropout_prob for p in hidden)  # hidden dropout untouched
    other = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    assert set_attention_dropout(other, 0.0) == 0 and other[1].p == 0.1  # nothing to set: left as it was


def test_every_party_builds_the_model_with_the_recipes_attention_dropout(tiny_model_dir, conll_slices, tmp_path):
    """The task's build_model sets the attention dropout, so a run and a federated party (which
    builds through build_global_model) train the same recipe; a model without any says so once."""
    import torch

    from trustfit.config import TrainConfig
    from trustfit.federated.local import build_global_model
    from trustfit.tasks import make_task, with_recipe

    train, dev = conll_slices
    task = make_task(TrainConfig(task="ner", train=str(train), dev=str(dev), out=str(tmp_path), attention_dropout=0.3))
    task.load_data()
    model = build_global_model(task, str(tiny_model_dir), "all", seed=0)
    probs = [m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and "attention.self" in name]
    assert probs and all(p == 0.3 for p in probs) and model.config.attention_probs_dropout_prob == 0.3
    assert task.notes == []
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with_recipe(plain, task.cfg, task.notes)
    with_recipe(plain, task.cfg, task.notes)
    assert len(task.notes) == 1 and "Sequential has no attention dropout" in task.notes[0]


def test_cpu_run_with_document_margins_prints_the_speed_tip(tiny_model_dir, conll_slices, tmp_path):
    """On a CPU the FLERT margins halve the words/s: the run says so once, naming the option, and
    says nothing when the margins are off."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("the tip is for CPU runs")
    tip = "--context-tokens 0 keeps the packs"
    loud = [a for a in train_args(tiny_model_dir, *conll_slices, tmp_path / "c32", "--max-steps", "1")
            if a != "--quiet"]
    r = runner.invoke(app, loud)
    assert r.exit_code == 0, r.output
    assert r.output.count(tip) == 1 and "document context of 32 sub-tokens a side around packs of 64" in r.output
    cache = json.loads((tmp_path / "c32" / "train_summary.json").read_text())["hardware"]["onednn_primitive_cache"]
    assert f"oneDNN kernel cache {cache} shapes" in r.output
    late = "--context-from-epoch -1 (the default) feeds them in the last epoch only"
    assert late not in r.output  # the default already feeds them in the last of its 3 epochs only
    every = [a for a in train_args(tiny_model_dir, *conll_slices, tmp_path / "e0", "--max-steps", "1",
                                   "--context-from-epoch", "0") if a != "--quiet"]
    r = runner.invoke(app, every)
    assert r.exit_code == 0 and r.output.count(tip) == 1 and late in r.output  # margins in all 3 epochs: named
    one = [a for a in train_args(tiny_model_dir, *conll_slices, tmp_path / "e1", "--max-steps", "1", "--epochs", "1",
                                 "--context-from-epoch", "0") if a != "--quiet"]
    r = runner.invoke(app, one)
    assert r.exit_code == 0 and r.output.count(tip) == 1 and late not in r.output  # one epoch: it would save nothing
    off = [a for a in train_args(tiny_model_dir, *conll_slices, tmp_path / "c0", "--max-steps", "1",
                                 "--context-tokens", "0") if a != "--quiet"]
    r = runner.invoke(app, off)
    assert r.exit_code == 0, r.output
    assert tip not in r.output
