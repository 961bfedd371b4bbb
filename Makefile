# bespoke: two commands set everything up on a fresh Debian machine:
#   make demo   install, then separate the bundled example
#   make test   install, then run the tests
PYTHON ?= python3
VENV   ?= .venv
# A pinned CPU build of torch, installed before the rest (a bare "torch" pulls a multi-GB CUDA build).
TORCH  ?= torch==2.13.0
# The transcriber of the rest of the recording for one-part MIDI (bespoke/transcribe.py): only its
# weights are used (run by onnxruntime, the "transcribe" extra); its declared dependencies would
# pull TensorFlow, hence --no-deps.
BASIC_PITCH ?= basic-pitch==0.4.0
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: install demo test test-fast lint bench bench-quick bench-ablation bench-budget bench-one-part bench-scale bench-batch bench-stereo bench-all-stems clean help

help:
	@echo "make demo         install, then separate examples/ (writes examples/out/)"
	@echo "make test         install, then lint (ruff) and run every test"
	@echo "make test-fast    lint, then the tests without the end-to-end runs (about a minute)"
	@echo "make bench        full benchmark -> bench/RESULTS.md + results.json (under 30 min on 2 cores)"
	@echo "make bench-quick  a subset of the benchmark -> bench/RESULTS-quick.md (under 5 min)"
	@echo "make bench-ablation  what each ingredient gives -> bench/ABLATION.md (~30 min; make bench inlines it)"
	@echo "make bench-budget quality against --budget (15, 30, 60, 120 s) -> bench/BUDGET.md (~10 min)"
	@echo "make bench-one-part  bespoke given the target's part alone -> bench/ONE-PART.md (~20 min)"
	@echo "make bench-scale  time and peak memory against song length (1-60 min) -> bench/SCALE.md (~20 min)"
	@echo "make bench-batch  songs per hour: --jobs 1, --jobs 2, --cluster ray -> bench/BATCH.md (~15 min)"
	@echo "make bench-stereo stereo versions: one mask on both channels against the spatial filter -> bench/STEREO.md (~30 min)"
	@echo "make bench-all-stems  --all against one run per part -> bench/ALL-STEMS.md (~15 min)"
	@echo "make install      just the set-up: libfluidsynth (apt) and .venv with bespoke"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if ! ldconfig -p 2>/dev/null | grep -q libfluidsynth; then \
		echo "libfluidsynth missing: installing it with apt-get"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libfluidsynth3; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,plot,transcribe]"
	$(BIN)/python -m pip install -q --no-deps "$(BASIC_PITCH)"
	@touch $@

# the cluster extra (Ray), for bespoke batch --cluster ray: make test runs its tests on a local cluster
$(VENV)/.installed-cluster: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test,plot,transcribe,cluster]"
	@touch $@

# the benchmark's own needs: music21's corpus, an independent SI-SDR (fast-bss-eval), a profiler,
# a second soundfont (MuseScore_General) to render its synthetic songs with (it shares some
# samples with FluidR3_GM; bench/RESULTS.md lists which), and FluidR3_GM itself, the soundfont
# bespoke trains with in the committed results (without it bespoke falls back to TimGM6mb)
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test,plot,transcribe,bench]"
	@pk=""; \
	test -e /usr/share/sounds/sf3/MuseScore_General.sf3 || pk="$$pk musescore-general-soundfont"; \
	test -e /usr/share/sounds/sf2/FluidR3_GM.sf2 || pk="$$pk fluid-soundfont-gm"; \
	if [ -n "$$pk" ]; then $(SUDO) apt-get update && $(SUDO) apt-get install -y $$pk; fi
	@touch $@

demo: install
	@mkdir -p examples/out
	$(BIN)/bespoke separate examples/mix.flac examples/score.mid --target violin \
		-o examples/out/violin.wav --residual examples/out/rest.wav \
		--save-aligned examples/out/aligned.mid --overwrite
	$(BIN)/bespoke eval examples/out/violin.wav examples/truth/violin.flac --mix examples/mix.flac

# the linter (ruff, pyproject's [tool.ruff]) then every test: what CI runs
test: install $(VENV)/.installed-cluster lint
	$(BIN)/python -m pytest -q

# the fast tier: every test but those marked slow (whole pipeline or CLI runs)
test-fast: install lint
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check bespoke tests bench

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run --out bench/RESULTS.md

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run --quick --out bench/RESULTS-quick.md

bench-ablation: $(VENV)/.installed-bench
	$(BIN)/python -m bench.ablation --out bench/ABLATION.md

bench-budget: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run --songs lussier:trumpet+piano --methods mixture,nmf,bespoke --budget 15,30,60,120 \
		--true-align none --label budget --out bench/BUDGET.md

bench-one-part: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run --methods mixture,oracle,bespoke-one-part --true-align none --label one-part \
		--out bench/ONE-PART.md

bench-scale: $(VENV)/.installed-bench
	$(BIN)/python -m bench.scale --out bench/SCALE.md

bench-batch: $(VENV)/.installed-bench $(VENV)/.installed-cluster
	$(BIN)/python -m bench.batch --repeats 2 --out bench/BATCH.md

bench-stereo: $(VENV)/.installed-bench
	$(BIN)/python -m bench.stereo --songs track00001:2+5+1+0,track01501,chorale-clarinets,lussier,brahms,track00001:7 \
		--iterations 3,5,3+,5+,8+ --out bench/STEREO.md

bench-all-stems: $(VENV)/.installed-bench
	$(BIN)/python -m bench.all_stems --songs lussier,brahms,chorale-mixed --single lussier:0 --out bench/ALL-STEMS.md

clean:
	rm -rf $(VENV) examples/out .pytest_cache bench/work
