# The two front-door commands: `make demo` (main job) and `make test` (the test suite).
DATA ?= ../shared/data
RUN ?= runs/conll
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast bench bench-quick bench-explain bench-serve

setup:
	bash scripts/setup.sh

# Fine-tune the packaged all-MiniLM-L6-v2 on CoNLL-2003 train for 1 epoch, evaluate on valid,
# print the entity-level and token-level reports, save the model (HF format) in $(RUN).
demo: setup
	.venv/bin/trustfit train --train $(DATA)/conll2003/train.txt --dev $(DATA)/conll2003/valid.txt \
	    --out $(RUN) --epochs 1 --overwrite --json $(RUN).summary.json
	.venv/bin/trustfit evaluate --model $(RUN) --data $(DATA)/conll2003/valid.txt --quiet \
	    --json $(RUN)/valid_metrics.json --predictions $(RUN)/valid_predictions.conll
	echo "EU rejects German call to boycott British lamb ." | .venv/bin/trustfit predict --model $(RUN)

# Every test, integration (packaged model + real data) and distributed (2 processes) included.
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration and not distributed"

bench-quick: setup
	$(PY) bench/ner_train.py --quick --baseline-bf16
	$(PY) bench/ner_predict.py --quick

bench: setup
	$(PY) bench/ner_train.py
	$(PY) bench/ner_predict.py
	$(PY) bench/classify.py
	$(PY) bench/explain.py
	$(PY) bench/serve_load.py --model bench/results/explain/conll_model

# Explanation methods on 200 FPB and 200 CoNLL-2003 dev predictions (trains the two models first).
bench-explain: setup
	$(PY) bench/explain.py

# The HTTP server under load (needs Debian's wrk for the closed-loop client; a model from make demo).
bench-serve: setup
	$(PY) bench/serve_load.py --model $(RUN)
