# The two front-door commands: `make demo` (main job) and `make test` (the test suite).
DATA ?= ../shared/data
RUN ?= runs/conll2003-quick
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast bench bench-quick bench-explain bench-serve bench-robustness bench-fairness bench-privacy bench-federated bench-recommend bench-ner-accuracy bench-cpu

setup:
	bash scripts/setup.sh

# The quick CoNLL-2003 experiment (examples/conll2003-quick.toml): fine-tune the packaged
# all-MiniLM-L6-v2 for 1 epoch, evaluate on valid, audit its robustness, explanations and fairness, write the model card
# ($(RUN)/card/card.html, README.md, card.json); then one prediction with the saved model.
demo: setup
	.venv/bin/trustfit run examples/conll2003-quick.toml --out $(RUN)
	echo "EU rejects German call to boycott British lamb ." | .venv/bin/trustfit predict --model $(RUN)/model
	@echo "model card: $(RUN)/card/card.html (README.md and card.json beside it)"

# Every test, integration (packaged model + real data) and distributed (2 processes) included.
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration and not distributed"

bench-quick: setup
	$(PY) bench/ner_train.py --quick --baseline-bf16
	$(PY) bench/ner_predict.py --quick

# #14: training (3,000 CoNLL-2003 sentences, 1 epoch) and prediction against the HF baselines on
# this CPU and as an AVX2-only CPU (PyTorch's kernels capped at AVX2), then peak memory under
# jemalloc and tcmalloc (Debian: libjemalloc2 libtcmalloc-minimal4); about 40 min
CPU_SLICE := --train-sentences 3000 --dev-sentences 300 --epochs 1
bench-cpu: setup
	$(PY) bench/ner_train.py $(CPU_SLICE) --baseline-grouped --name ner_train_3000
	$(PY) bench/ner_train.py $(CPU_SLICE) --emulate avx2 --baseline-grouped --name ner_train_3000_avx2
	$(PY) bench/ner_predict.py
	$(PY) bench/ner_predict.py --emulate avx2
	$(PY) bench/ner_train.py $(CPU_SLICE) --allocator jemalloc --name ner_train_3000_jemalloc
	$(PY) bench/ner_train.py $(CPU_SLICE) --allocator tcmalloc --name ner_train_3000_tcmalloc

bench: setup
	$(PY) bench/ner_train.py
	$(PY) bench/ner_predict.py
	$(PY) bench/classify.py
	$(PY) bench/explain.py
	$(PY) bench/serve_load.py --model bench/results/explain/conll_model

# Explanation methods on 200 FPB and 200 CoNLL-2003 dev predictions (trains the two models first).
bench-explain: setup
	$(PY) bench/explain.py

# Adversarial training (normal / FGM / PGD / augmentation) and attacks on CoNLL-2003 and FPB (about 50 min);
# the TextAttack cross-check runs in its own venv (bench/results/textattack-venv, made on first use).
bench-robustness: setup
	test -x bench/results/textattack-venv/bin/python || $(PY) bench/robustness.py --setup-textattack
	$(PY) bench/robustness.py --textattack

# The HTTP server under load (needs Debian's wrk for the closed-loop client; a model from make demo).
bench-fairness: setup
	$(PY) bench/fairness.py --heldout-names

# NER accuracy on unseen text: 3 seeds of trustfit's default and of the HF recipe, dev and a
# document-level hold-out from train (full CoNLL-2003 train: about 2 h on 2 cores; see bench/RESULTS.md)
bench-ner-accuracy: setup
	$(PY) bench/ner_accuracy.py

bench-privacy: setup
	$(PY) bench/privacy.py

bench-federated: setup
	$(PY) bench/federated.py

bench-serve: setup
	$(PY) bench/serve_load.py --model $(RUN)/model

bench-recommend: setup
	$(PY) bench/recommend.py
