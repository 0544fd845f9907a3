# dgan: `make demo` trains the default job, `make test` runs the test suite.
# Both install into .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install demo test test-slow lint format bench bench-gpu clean reproduce reproduce-toy \
	reproduce-limited reproduce-augment reproduce-projected reproduce-insgen reproduce-demo \
	reproduce-overfit reproduce-overfit-plain reproduce-tcond

install: $(STAMP)

# constraints.txt holds the versions the suite was tested with (see its header).
EXTRAS ?= dev,sweep,tensorboard,notebook

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m dgan.train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests

# The loader's images/s per worker (dgan.bench --data), then the training benchmark.
bench: $(STAMP)
	$(BIN)/python -m dgan.bench --data
	$(BIN)/python -m dgan.bench $(ARGS)

# One GPU, under 5 minutes: cifar (batch 64) and paper256 (batch 32) in fp32 and with the GPU
# defaults, with and without the diffusion, torch.compile on and off, the loader at 256 px; one
# JSON and one Markdown table in bench_results/. Without CUDA it refuses in one line.
bench-gpu: $(STAMP)
	$(BIN)/python -m dgan.bench_gpu

clean:
	rm -rf outputs multirun .pytest_cache

# The README's results, over seeds: each target is one Hydra multirun and one sweep_report
# (mean, std and n per setting: sweep_groups.md / .csv / .png in the multirun directory).
# `make -j2 reproduce` runs two multiruns at a time, one thread each (2-core CPU).
REPRO_DIR ?= multirun/reproduce
REPRO_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# resume=auto: a target stopped part-way (Ctrl-C, a reboot) continues where it stopped when it
# is run again; the jobs that finished are left as they are. A job stopped by a signal saves its
# checkpoint and exits with PREEMPTED_EXIT, not 0, so that make does not mark its multirun done.
PREEMPTED_EXIT := 75
REPRO_RUN := resume=auto callbacks.preemption.exit_code=$(PREEMPTED_EXIT)
TRAIN_M := $(REPRO_ENV) $(BIN)/python -m dgan.train -m $(REPRO_RUN)
REPORT := $(BIN)/python -m dgan.sweep_report

# The longest multiruns first: -j2 starts prerequisites in the order listed. reproduce-demo
# comes last: its diffusion runs use both cores, so their train_seconds mean something only
# when it runs alone (`make reproduce-demo` after the rest).
reproduce: reproduce-projected reproduce-augment reproduce-limited reproduce-insgen \
	reproduce-toy reproduce-demo

# The default job over 5 seeds, without the diffusion over 3, beside the former default
# (digits_stylegan2_32px, 3 seeds): final FIDs (sweep_groups.md) and FID against kimg and
# training time (sweep_curves.png). The diffusion runs use both cores (their train_seconds are
# the time `make demo` takes); run this target alone for those times to mean anything.
reproduce-demo: $(REPRO_DIR)/demo/digits_stylegan2/.done $(REPRO_DIR)/demo/none/.done \
		$(REPRO_DIR)/demo/digits_stylegan2_32px/.done
	$(REPORT) $(REPRO_DIR)/demo --group-by experiment,diffusion --curves

$(REPRO_DIR)/demo/digits_stylegan2/.done: $(STAMP)
	$(BIN)/python -m dgan.train -m $(REPRO_RUN) experiment=digits_stylegan2 seed=0,1,2,3,4 \
		hydra.sweep.dir=$(@D)
	touch $@

$(REPRO_DIR)/demo/none/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2 diffusion=none seed=0,1,2 hydra.sweep.dir=$(@D)
	touch $@

$(REPRO_DIR)/demo/digits_stylegan2_32px/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2_32px seed=0,1,2 hydra.sweep.dir=$(@D)
	touch $@

# 25 Gaussians in the mode-collapse setting, the plain GAN and Diffusion-GAN, 5 seeds each
# (the runs write the toy figures too). One multirun per method, so -j2 runs them side by side.
reproduce-toy: $(REPRO_DIR)/toy/none/.done $(REPRO_DIR)/toy/toy_overlap/.done
	$(REPORT) $(REPRO_DIR)/toy --group-by diffusion

$(REPRO_DIR)/toy/%/.done: $(STAMP)
	$(TRAIN_M) experiment=gaussians25_collapse diffusion=$* seed=0,1,2,3,4 hydra.sweep.dir=$(@D)
	touch $@

# Limited data: 200 digits, every run scored against all 1,797 digits; all digits are the
# default job's runs (reproduce-demo: the same command, seeds 0-4 and 0-2). One multirun per
# dataset size and diffusion (directory SIZE/DIFFUSION), so -j2 runs two side by side;
# LIMITED_SIZES="200 500" adds 500 digits (about 40 more minutes of one core).
LIMITED_SIZES ?= 200
reproduce-limited: $(foreach n,$(LIMITED_SIZES),$(REPRO_DIR)/limited/$(n)/stylegan2/.done \
		$(REPRO_DIR)/limited/$(n)/none/.done)
	$(REPORT) $(REPRO_DIR)/limited --group-by dataset.max_size,diffusion

$(REPRO_DIR)/limited/%/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2 dataset.max_size=$(word 1,$(subst /, ,$*)) \
		diffusion=$(word 2,$(subst /, ,$*)) seed=0,1,2 hydra.sweep.dir=$(@D)
	touch $@

# Augmentation before the diffusion: ADA and DiffAugment, with and without the diffusion.
# Each half is its own multirun (a stamp marks it done), so -j2 runs them side by side.
reproduce-augment: $(REPRO_DIR)/augment/ada/.done $(REPRO_DIR)/augment/diffaug/.done
	$(REPORT) $(REPRO_DIR)/augment --group-by augment,diffusion

$(REPRO_DIR)/augment/%/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2 augment=$* diffusion=stylegan2,none seed=0,1,2 \
		hydra.sweep.dir=$(REPRO_DIR)/augment/$*
	touch $@

# Diffusion-ProjectedGAN with and without its feature diffusion, beside Diffusion-StyleGAN2
# given the same CPU time: PROJ_SG2_KIMG kimg of digits_stylegan2 cost about what the 8 kimg
# of digits_projectedgan cost (train_seconds, one thread each beside another job: about 36 s per
# projected kimg against 4.3 s per kimg of the 16 px digits StyleGAN2).
PROJ_SG2_KIMG ?= 64
reproduce-projected: $(REPRO_DIR)/projected/projectedgan/.done \
		$(REPRO_DIR)/projected/stylegan2/.done
	$(REPORT) $(REPRO_DIR)/projected --group-by experiment,diffusion

$(REPRO_DIR)/projected/projectedgan/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_projectedgan diffusion=projected,none seed=0,1,2 \
		hydra.sweep.dir=$(REPRO_DIR)/projected/projectedgan
	touch $@

$(REPRO_DIR)/projected/stylegan2/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2 kimg=$(PROJ_SG2_KIMG) diffusion=stylegan2 \
		seed=0,1,2 hydra.sweep.dir=$(REPRO_DIR)/projected/stylegan2
	touch $@

# Diffusion-InsGen against Diffusion-StyleGAN2 with ADA on the same 300 digits at the same
# budget (digits_insgen sets augment=ada and dataset.max_size=300 itself). One multirun per
# experiment, so -j2 runs them side by side.
INSGEN_BASELINE := augment=ada dataset.max_size=300
reproduce-insgen: $(REPRO_DIR)/insgen/digits_insgen/.done $(REPRO_DIR)/insgen/digits_stylegan2/.done
	$(REPORT) $(REPRO_DIR)/insgen --group-by experiment

$(REPRO_DIR)/insgen/digits_insgen/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_insgen seed=0,1,2 hydra.sweep.dir=$(@D)
	touch $@

$(REPRO_DIR)/insgen/digits_stylegan2/.done: $(STAMP)
	$(TRAIN_M) experiment=digits_stylegan2 $(INSGEN_BASELINE) seed=0,1,2 hydra.sweep.dir=$(@D)
	touch $@

# The mechanism where it can act (docs/results.md, "Limited data until D overfits"): the default
# job's recipe on a small subset of the digits, trained for thousands of passes over it, four
# seeds per arm, each arm split in two multiruns so that -j2 keeps both cores busy: plain, the
# diffusion (the paper's d_target 0.6, the short-run rate) and ADA without the diffusion (the
# positive control); OVERFIT_ARMS="none stylegan2 ada stylegan2_ada" adds both together, and
# stylegan2_clean0 the chain without the reference's clean half of its pool (every real diffused).
# reproduce-overfit-plain runs the plain arm alone: the setting is chosen from it. The setting
# is OVERFIT_SIZE digits, R1 gamma OVERFIT_GAMMA, OVERFIT_KIMG kimg (a directory of its own);
# the defaults are the setting the search chose from plain runs: 100 digits, no R1, 300 kimg.
# Each run of 300 kimg takes 20-25 minutes of one core (two runs side by side, one thread each).
OVERFIT_SIZE ?= 100
OVERFIT_GAMMA ?= 0
OVERFIT_KIMG ?= 300
OVERFIT_SETTING := dataset.max_size=$(OVERFIT_SIZE) kimg=$(OVERFIT_KIMG) \
	model.loss.r1_gamma=$(OVERFIT_GAMMA)
OVERFIT := experiment=digits_stylegan2 $(OVERFIT_SETTING)
OVERFIT_DIR := $(REPRO_DIR)/overfit/n$(OVERFIT_SIZE)_g$(OVERFIT_GAMMA)_k$(OVERFIT_KIMG)
OVERFIT_SEEDS := 0,1 2,3
OVERFIT_ARMS ?= none stylegan2 ada
overfit_arm_none := diffusion=none augment=none
overfit_arm_stylegan2 := diffusion=stylegan2 augment=none diffusion.clean_fraction=0.5
overfit_arm_ada := diffusion=none augment=ada
overfit_arm_stylegan2_ada := diffusion=stylegan2 augment=ada diffusion.clean_fraction=0.5
overfit_arm_stylegan2_clean0 := diffusion=stylegan2 augment=none diffusion.clean_fraction=0
overfit_done = $(foreach s,$(OVERFIT_SEEDS),$(OVERFIT_DIR)/$(1)/seeds$(subst $(comma),-,$(s))/.done)
comma := ,

reproduce-overfit-plain: $(call overfit_done,none)
	$(REPORT) $(OVERFIT_DIR)/none --group-by diffusion --curves --overfit

# The arms are grouped by all they set, the chain's clean share included (the reference's 0.5,
# said explicitly), so that a later run of another arm into the same directory keeps its group.
OVERFIT_GROUPS := diffusion,augment,diffusion.clean_fraction

reproduce-overfit: $(foreach arm,$(OVERFIT_ARMS),$(call overfit_done,$(arm)))
	$(REPORT) $(OVERFIT_DIR) --group-by $(OVERFIT_GROUPS) --curves --overfit

$(OVERFIT_DIR)/%/.done: $(STAMP)
	$(TRAIN_M) $(OVERFIT) $(overfit_arm_$(word 1,$(subst /, ,$*))) \
		seed=$(subst -,$(comma),$(patsubst seeds%,%,$(word 2,$(subst /, ,$*)))) \
		hydra.sweep.dir=$(@D)
	touch $@

# What D knows of t and of the class (docs/results.md, "What the discriminator knows of t"): the
# overfitting setting above with the chain on (the diffusion arm of reproduce-overfit), only D's
# encoding of t changed, four seeds per arm. Unconditional: none / normalized / sinusoidal beside
# the reference's raw, which is reproduce-overfit's diffusion arm (reused, not run again);
# conditional digits (10 per class, cacc_digits2k): raw against separate, the encoding that
# keeps the class. The conditional arms come first, and within each half seeds 0-1 of every arm
# before seeds 2-3 (-j2 runs two multiruns at a time), so that a stopped target has compared
# some arms over the same seeds. The report covers both directories, grouped by experiment and
# encoding.
TCOND_DIR := $(REPRO_DIR)/tcond/n$(OVERFIT_SIZE)_g$(OVERFIT_GAMMA)_k$(OVERFIT_KIMG)
TCOND_ARMS ?= cond_raw cond_separate none sinusoidal normalized
TCOND_GROUPS := diffusion,experiment,model.discriminator.t_conditioning
# Each encoding against raw, paired by seed (the docs' rule), on these final values.
TCOND_COMPARE := --compare model.discriminator.t_conditioning=raw --metrics \
	fid_digits2k_full,pr_digits2k_k3_full_precision,pr_digits2k_k3_full_recall,cacc_digits2k
tcond_arm_none := experiment=digits_stylegan2 model.discriminator.t_conditioning=none
tcond_arm_normalized := experiment=digits_stylegan2 model.discriminator.t_conditioning=normalized
tcond_arm_sinusoidal := experiment=digits_stylegan2 model.discriminator.t_conditioning=sinusoidal
tcond_arm_cond_raw := experiment=digits_stylegan2_cond model.discriminator.t_conditioning=raw
tcond_arm_cond_separate := experiment=digits_stylegan2_cond \
	model.discriminator.t_conditioning=separate

tcond_done = $(foreach s,$(OVERFIT_SEEDS),$(foreach arm,$(1),\
	$(TCOND_DIR)/$(arm)/seeds$(subst $(comma),-,$(s))/.done))

reproduce-tcond: $(call tcond_done,$(filter cond_%,$(TCOND_ARMS))) \
		$(call tcond_done,$(filter-out cond_%,$(TCOND_ARMS))) $(call overfit_done,stylegan2)
	$(REPORT) $(TCOND_DIR) $(OVERFIT_DIR)/stylegan2 --group-by $(TCOND_GROUPS) --curves --overfit \
		--by-t $(TCOND_COMPARE)

$(TCOND_DIR)/%/.done: $(STAMP)
	$(TRAIN_M) $(tcond_arm_$(word 1,$(subst /, ,$*))) $(OVERFIT_SETTING) $(overfit_arm_stylegan2) \
		seed=$(subst -,$(comma),$(patsubst seeds%,%,$(word 2,$(subst /, ,$*)))) \
		hydra.sweep.dir=$(@D)
	touch $@
