# lyricmt: make | make test | make sanitize | make fuzz | make mutants | make clean | make bench
# The CUDA backend (cuda/, kernels/) is built whenever nvcc is found.
CC      ?= gcc
CXX     ?= g++
BUILD   ?= build
OPT     ?= -O2 -g
XFLAGS  ?=
# -ffp-contract=off: gcc's -std=c11 implies it, clang's does not; sampling's
# draw must round as the CUDA kernel's does (host/backend/sample_rules.h).
CFLAGS   = $(OPT) $(XFLAGS) -std=c11 -ffp-contract=off -Wall -Wextra -fopenmp -D_GNU_SOURCE -Ihost -I. -MMD -MP
CXXFLAGS = $(OPT) $(XFLAGS) -std=c++17 -Wall -Wextra -Ihost -MMD -MP
LDEXTRA ?=
LDLIBS   = $(XFLAGS) $(LDEXTRA) -pthread -lopenblas -lcjson -lyaml -lsentencepiece -lstdc++ -lm -fopenmp
# Every object goes into the library (include/lyricmt.h) as well as the
# program: position-independent, its symbols hidden unless the API marks them.
CFLAGS   += -fPIC -fvisibility=hidden
CXXFLAGS += -fPIC -fvisibility=hidden
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

HOST_SRC = $(filter-out host/cli/%,$(wildcard host/*/*.c))
CLI_SRC  = $(wildcard host/cli/*.c)
HOST_OBJ = $(HOST_SRC:%.c=$(BUILD)/%.o) $(BUILD)/host/model/spm_shim.o
TEST_SRC = $(wildcard tests/test_*.c)

NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CFLAGS   += -DLM_WITH_CUDA -I$(CUDA_HOME)/include
KERNEL_OBJ = $(patsubst %.cu,$(BUILD)/%.o,$(wildcard kernels/*.cu))
HOST_OBJ += $(KERNEL_OBJ) $(patsubst %.c,$(BUILD)/%.o,$(wildcard cuda/*.c))
ifeq ($(CUDA_EMU),1)
# The emulated build (tests/cuda_emu/README.md): the kernels compiled as C++
# for the CPU, the emulator in place of libcudart and libcublas (exported,
# for the NCCL stand-in), and the stand-in's name for NCCL's.
# -ffp-contract=off: the host compiler must not fuse a * b + c where nvcc's
# device code does not either (host/backend/sample_rules.h: the draw's exp).
CU        = sh tests/cuda_emu/nvcc-emu
NVFLAGS   = $(OPT) $(XFLAGS) -std=c++17 -ffp-contract=off -Wall -Wextra -Ihost -I$(CUDA_HOME)/include -MMD -MP
# The cuBLAS stand-in as an object, not from the archive: nothing calls it by
# name (cuda/cuda_blas.c finds it in the program), so the archive would leave it out.
CUDA_LIBS = $(BUILD)/cuda_emu/cublas.o $(BUILD)/cuda_emu/libcudaemu.a
LDLIBS   += -rdynamic
CFLAGS   += -DLM_NCCL_SONAME='"libnccl-emu.so.2"' -DLM_CUBLAS_SONAME=NULL
else
CU        = $(NVCC)
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS   = -O2 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-fPIC,-fvisibility=hidden -Ihost -MMD -MP
# cuBLAS is opened at run time (cuda/cuda_blas.c), not linked; the run path
# names the toolkit for it and for NCCL.
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -ldl
endif
# NCCL (the weight broadcast across GPUs) where the toolkit or the system has
# nccl.h; the library itself is opened at run time (cuda/cuda_nccl.c), so the
# program also runs where it is absent. The check (tests/test_scale.sh) loads it.
NCCL_HOME ?= $(firstword $(patsubst %/include/nccl.h,%,$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h)))
ifneq ($(NCCL_HOME),)
CFLAGS   += -DLM_WITH_NCCL -I$(NCCL_HOME)/include
LDLIBS   += -ldl
endif
else
TEST_SRC := $(filter-out tests/test_cuda_%.c,$(TEST_SRC))
endif
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/%)

# MPI (one job over several processes and machines, host/engine/mpi_link.c) where
# Open MPI's mpicc is found; its flags, not mpicc itself, so CC stays the compiler.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPICC),)
CFLAGS += -DLM_WITH_MPI $(shell $(MPICC) --showme:compile)
LDLIBS += $(shell $(MPICC) --showme:link)
endif

all: $(BUILD)/lyricmt $(BUILD)/liblyricmt.so $(BUILD)/liblyricmt.a

# Objects depend on the flags they were compiled with: a build made with
# other flags (before -fPIC, or another CUDA_ARCH) is rebuilt, not mixed in.
FLAGS_STAMP = $(BUILD)/.flags
FLAGS_NOW   = $(CC) $(CFLAGS) | $(CXX) $(CXXFLAGS) | $(NVFLAGS)
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP); })

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CU) $(NVFLAGS) -c $< -o $@

$(BUILD)/host/model/spm_shim.o: host/model/spm_shim.cc $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The library (README, "The C library"): a static archive of every object, the
# program's own (the command links it), and a shared one that exports only
# include/lyricmt.h's functions, versioned by its soname.
LIB_ABI = 0
$(BUILD)/liblyricmt.a: $(HOST_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/liblyricmt.so.$(LIB_ABI): $(HOST_OBJ) host/api/lyricmt.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,liblyricmt.so.$(LIB_ABI) -Wl,--version-script=host/api/lyricmt.map -Wl,-z,defs \
	    $(HOST_OBJ) -o $@ $(LDLIBS)

$(BUILD)/liblyricmt.so: $(BUILD)/liblyricmt.so.$(LIB_ABI)
	ln -sf liblyricmt.so.$(LIB_ABI) $@

$(BUILD)/lyricmt: $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/liblyricmt.a $(CUDA_LIBS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The API's own test: the public header alone (no -Ihost), the shared library alone.
$(BUILD)/test_capi: tests/test_capi.c include/lyricmt.h $(BUILD)/liblyricmt.so
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(XFLAGS) -std=c11 -Wall -Wextra -pedantic -Iinclude $< -o $@ -L$(BUILD) -llyricmt -lm -pthread -Wl,-rpath,'$$ORIGIN'

$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/testing.o $(BUILD)/tests/zip_writer.o $(BUILD)/tests/random_model.o $(HOST_OBJ) $(CUDA_LIBS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# the kernels alone, and only what they report through (quick to build under the
# sanitizers), and the sampler that is sample.cu's twin with what it calls
$(BUILD)/test_cuda_kernels: $(BUILD)/tests/test_cuda_kernels.o $(BUILD)/tests/testing.o $(BUILD)/host/base/util.o \
                            $(BUILD)/cuda/cuda_device.o $(BUILD)/cuda/cuda_blas.o $(KERNEL_OBJ) $(CUDA_LIBS) $(BUILD)/host/backend/sample.o \
                            $(BUILD)/host/backend/logits.o $(BUILD)/host/simd/row_stats.o $(BUILD)/host/simd/cpu_features.o
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# ---- the CUDA code on the CPU (tests/cuda_emu/README.md) ----
# Wherever the CUDA headers are (nvcc is found), `make test` builds the CUDA
# tests, the program and the NCCL stand-in in $(EMU_BUILD) against the
# emulator, test_cuda_kernels once more under the sanitizers, and runs them
# all (tests/cuda_emu/run_tests.sh). The emulator and its NCCL stand-in:
EMU_BUILD ?= build-emu
EMU_SRC    = tests/cuda_emu/scheduler.cpp tests/cuda_emu/runtime.cpp tests/cuda_emu/cublas.cpp

$(BUILD)/cuda_emu/libcudaemu.a: $(EMU_SRC:tests/cuda_emu/%.cpp=$(BUILD)/cuda_emu/%.o)
	ar rcs $@ $^

$(BUILD)/cuda_emu/%.o: tests/cuda_emu/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fvisibility=default -I$(CUDA_HOME)/include -c $< -o $@

$(BUILD)/cuda_emu/libnccl-emu.so.2: tests/cuda_emu/nccl.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fvisibility=default -I$(CUDA_HOME)/include -fPIC -shared $< -o $@

cuda-emu:
	@$(MAKE) --no-print-directory BUILD=$(EMU_BUILD) CUDA_EMU=1 CUDA_HOME=$(CUDA_HOME) $(EMU_BUILD)/lyricmt $(EMU_BUILD)/cuda_steps \
	    $(EMU_BUILD)/test_cuda_kernels $(EMU_BUILD)/test_cuda_backend $(EMU_BUILD)/test_golden $(EMU_BUILD)/cuda_emu/libnccl-emu.so.2
	@$(MAKE) --no-print-directory BUILD=$(EMU_BUILD)-san CUDA_EMU=1 CUDA_HOME=$(CUDA_HOME) OPT="-O1 -g" XFLAGS="$(SAN)" \
	    $(EMU_BUILD)-san/test_cuda_kernels

$(BUILD)/tests/%.o: tests/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c $< -o $@

# Fuzzing (README.md, "Fuzzing"): one libFuzzer target per parser, built by
# clang under AddressSanitizer and UndefinedBehaviorSanitizer whatever BUILD is.
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g -std=c11 -Wall -Wextra -fopenmp -D_GNU_SOURCE -Ihost -I. -Itests -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS  = $(filter-out fuzz_util,$(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN      = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_OBJ      = $(HOST_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/host/model/spm_shim.o \
                $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(FUZZ_BUILD)/tests/zip_writer.o

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/host/model/spm_shim.o: host/model/spm_shim.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) -O1 -g -std=c++17 -Wall -Wextra -Ihost -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp $^ -o $@ -pthread -lopenblas -lcjson -lyaml -lsentencepiece -lstdc++ -lm

# Every target for FUZZ_SECONDS each; fails on any crash, leak, timeout or memory blow-up.
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	sh tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_BIN)

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/lyricmt $(BUILD)/liblyricmt.so $(TEST_BIN) $(FUZZ_BIN) $(if $(NVCC),cuda-emu)
	@LYRICMT=$(BUILD)/lyricmt FUZZ_BUILD=$(FUZZ_BUILD) $(if $(NVCC),CUDA_EMU_BUILD=$(EMU_BUILD)) \
	    sh tests/run_all.sh $(TEST_BIN) $(if $(NVCC),tests/cuda_emu/run_tests.sh)

deps:
	@sh scripts/install-deps.sh

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize:
	$(MAKE) BUILD=build-san OPT="-O1 -g" XFLAGS="$(SAN)" test

# On a GPU machine: the CUDA tests under compute-sanitizer (memory errors,
# shared-memory races, barrier misuse, reads of uninitialised device memory).
SANITIZER ?= $(firstword $(shell command -v compute-sanitizer 2>/dev/null) $(wildcard $(CUDA_HOME)/bin/compute-sanitizer $(CUDA_HOME)/extras/compute-sanitizer/compute-sanitizer))
cuda-sanitize: $(BUILD)/test_cuda_kernels $(BUILD)/test_golden
	@[ -n "$(SANITIZER)" ] || { echo "compute-sanitizer not found (part of the CUDA toolkit)"; exit 1; }
	for tool in memcheck racecheck synccheck initcheck; do \
	    LYRICMT_CUDA_QUICK=1 $(SANITIZER) --tool $$tool --error-exitcode 1 $(BUILD)/test_cuda_kernels || exit 1; \
	    LYRICMT_GOLDEN_ONLY=cuda LYRICMT_GOLDEN_PRECISION=bf16 $(SANITIZER) --tool $$tool --error-exitcode 1 $(BUILD)/test_golden || exit 1; \
	done

# Each deliberate bug of tests/mutants/list.txt planted in a scratch copy, built
# and run against the test suite; fails if any survives. Long (about a minute a
# mutant): not part of `make test` or CI. `make mutants M="name ..."` runs some.
mutants: deps
	@$(MAKE) --no-print-directory $(BUILD)/lyricmt $(TEST_BIN)
	@BUILD=$(BUILD) sh scripts/mutants.sh $(M)

clean:
	rm -rf build build-san build-gpu build-gpu.obj $(FUZZ_BUILD) $(EMU_BUILD) $(EMU_BUILD)-san

# ---- the one-call GPU check (benchmarks/README.md, "On a GPU") ----
# The GPU machines have the CUDA toolkit, compute-sanitizer, PyTorch and
# transformers, but none of our Debian libraries and no network. build-gpu/
# carries what they lack, under the 64 MiB a call may carry: the program, the
# CUDA tests and the step timer for sm_90 with compute_90 PTX, which other
# cards compile at load (stripped; they find the libraries in ../deps/lib,
# which scripts/gpu-check.sh unpacks there: an old-style RPATH, which unlike
# RUNPATH also serves the libraries' own dependencies, OpenBLAS's
# libgfortran), the Debian packages as the compressed .deb files apt-get
# download fetches, and the CTranslate2 and sentencepiece wheels for Python
# 3.12. There: `bash scripts/gpu-check.sh`, one call.
GPU_BUNDLE   = build-gpu
GPU_ARCH     = -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
GPU_BIN      = lyricmt test_cuda_kernels test_cuda_backend test_golden cuda_steps
GPU_DEBS     = libopenblas0-pthread libgfortran5 libquadmath0 libgomp1 libcjson1 libyaml-0-2 libsentencepiece0
GPU_WHEELS   = ctranslate2==4.8.5 sentencepiece
GPU_MAX_MIB  = 60
gpu-bundle:
	@[ -n "$(NVCC)" ] || { echo "gpu-bundle: nvcc not found: the bundle needs the CUDA toolkit"; exit 1; }
	$(MAKE) --no-print-directory BUILD=$(GPU_BUNDLE).obj OPT=-O2 MPICC= CUDA_ARCH="$(GPU_ARCH)" LDEXTRA='-Wl,--disable-new-dtags,-rpath,\$$$$ORIGIN/../deps/lib' gpu-binaries
	rm -rf $(GPU_BUNDLE)/bin $(GPU_BUNDLE)/deps && mkdir -p $(GPU_BUNDLE)/bin $(GPU_BUNDLE)/debs $(GPU_BUNDLE)/wheels
	cp $(GPU_BIN:%=$(GPU_BUNDLE).obj/%) $(GPU_BUNDLE)/bin/
	strip $(GPU_BUNDLE)/bin/*
	cd $(GPU_BUNDLE)/debs && for p in $(GPU_DEBS); do ls $${p}_*.deb >/dev/null 2>&1 || apt-get download $$p || exit 1; done
	cd $(GPU_BUNDLE)/wheels && ls ctranslate2-*.whl sentencepiece-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps \
	    --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d . $(GPU_WHEELS)
	git rev-parse HEAD > $(GPU_BUNDLE)/COMMIT
	@size=$$(du -sk $(GPU_BUNDLE) | cut -f1); echo "$(GPU_BUNDLE): $$((size / 1024)) MiB"; \
	    [ $$size -le $$(( $(GPU_MAX_MIB) * 1024 )) ] || { echo "gpu-bundle: over $(GPU_MAX_MIB) MiB"; exit 1; }

gpu-binaries: $(GPU_BIN:%=$(BUILD)/%)

# Shows here that the bundle is complete: its binaries run with the Debian
# libraries hidden (each overmounted in a private mount namespace; needs root).
gpu-bundle-check: gpu-bundle
	sh scripts/gpu-bundle-check.sh $(GPU_BUNDLE) $(GPU_DEBS)

# The main job: install what is missing, build, translate the shipped sample lyrics
# with the toy demo model (samples/model, samples/train_demo.py), each line beside its source.
demo:
	sh scripts/install-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	$(BUILD)/lyricmt translate --model samples/model --config configs/default.yaml -i samples/lyrics.txt -o $(BUILD)/lyrics.ko.txt
	paste samples/lyrics.txt $(BUILD)/lyrics.ko.txt

# Side-by-side CPU benchmark with CTranslate2 and transformers (benchmarks/README.md).
# Makes a SMaLL-100-sized random model on first use (1.3 GB under benchmarks/models/).
# bench: the fp32 comparison with every peer, then the precision table (lyricmt
# fp32/int8/bf16 against CTranslate2 float32/int8/int8_float32/bfloat16; about
# 40 minutes on 2 cores). BENCH_PRECISIONS, BENCH_RUNS, BENCH_LINES narrow it.
BENCH_PRECISIONS ?= fp32,int8,bf16
BENCH_RUNS ?= 3
BENCH_LINES ?= 256
bench:
	sh scripts/install-deps.sh
	sh scripts/install-bench-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	python3 benchmarks/bench.py --model small100 --lines 32 --max-length 16
	python3 benchmarks/bench.py --model small100 --lines $(BENCH_LINES) --max-length 32 --precisions $(BENCH_PRECISIONS) --runs $(BENCH_RUNS)

# The CUDA backend's ms per step by CUDA events (benchmarks/cuda_steps.c; scripts/gpu-check.sh runs it)
$(BUILD)/cuda_steps: $(BUILD)/benchmarks/cuda_steps.o $(BUILD)/tests/random_model.o $(HOST_OBJ) $(CUDA_LIBS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The CUDA backend's predicted step times on an H100 (benchmarks/step_model.h; no GPU needed)
$(BUILD)/step_model: benchmarks/step_model.c benchmarks/step_model.h
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=c11 -Wall -Wextra -I. $< -o $@

# Per-product rates and the FMA peak (benchmarks/product_rates.c, NOTES attempt 15)
$(BUILD)/product_rates: $(BUILD)/benchmarks/product_rates.o $(HOST_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

bench-quick:
	sh scripts/install-bench-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	python3 benchmarks/bench.py --model tiny --lines 200 --max-length 24

.PHONY: all test cuda-emu fuzz sanitize cuda-sanitize mutants clean demo deps bench bench-quick gpu-bundle gpu-binaries gpu-bundle-check
-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
