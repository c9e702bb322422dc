# lyricmt: make | make test | make sanitize | make fuzz | make clean | make bench
# The CUDA backend (cuda/, kernels/) is built whenever nvcc is found.
CC      ?= gcc
CXX     ?= g++
BUILD   ?= build
OPT     ?= -O2 -g
XFLAGS  ?=
CFLAGS   = $(OPT) $(XFLAGS) -std=c11 -Wall -Wextra -fopenmp -D_GNU_SOURCE -Ihost -MMD -MP
CXXFLAGS = $(OPT) $(XFLAGS) -std=c++17 -Wall -Wextra -Ihost -MMD -MP
LDLIBS   = $(XFLAGS) -pthread -lopenblas -lcjson -lyaml -lsentencepiece -lstdc++ -lm -fopenmp
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

HOST_SRC = $(filter-out host/main.c,$(wildcard host/*.c))
HOST_OBJ = $(HOST_SRC:%.c=$(BUILD)/%.o) $(BUILD)/host/spm_shim.o
TEST_SRC = $(wildcard tests/test_*.c)

NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS   = -O2 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra -Ikernels -Ihost -MMD -MP
CFLAGS   += -DLM_WITH_CUDA -I$(CUDA_HOME)/include -Ikernels -Icuda
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
HOST_OBJ += $(patsubst %.cu,$(BUILD)/%.o,$(wildcard kernels/*.cu)) $(BUILD)/cuda/cuda_backend.o
else
TEST_SRC := $(filter-out tests/test_cuda_%.c,$(TEST_SRC))
endif
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/%)

all: $(BUILD)/lyricmt

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/host/spm_shim.o: host/spm_shim.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/lyricmt: $(BUILD)/host/main.o $(HOST_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/testing.o $(BUILD)/tests/zip_writer.o $(HOST_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c $< -o $@

# Fuzzing (README.md, "Fuzzing"): one libFuzzer target per parser, built by
# clang under AddressSanitizer and UndefinedBehaviorSanitizer whatever BUILD is.
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g -std=c11 -Wall -Wextra -fopenmp -D_GNU_SOURCE -Ihost -Itests -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS  = $(filter-out fuzz_util,$(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN      = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_OBJ      = $(HOST_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/host/spm_shim.o \
                $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(FUZZ_BUILD)/tests/zip_writer.o

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/host/spm_shim.o: host/spm_shim.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) -O1 -g -std=c++17 -Wall -Wextra -Ihost -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp $^ -o $@ -pthread -lopenblas -lcjson -lyaml -lsentencepiece -lstdc++ -lm

# Every target for FUZZ_SECONDS each; fails on any crash, leak, timeout or memory blow-up.
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	sh tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_BIN)

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/lyricmt $(TEST_BIN) $(FUZZ_BIN)
	@LYRICMT=$(BUILD)/lyricmt FUZZ_BUILD=$(FUZZ_BUILD) sh tests/run_all.sh $(TEST_BIN)

deps:
	@sh scripts/install-deps.sh

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize:
	$(MAKE) BUILD=build-san OPT="-O1 -g" XFLAGS="$(SAN)" test

# On a GPU machine: the CUDA tests under compute-sanitizer (memory errors, then shared-memory races).
SANITIZER ?= $(firstword $(shell command -v compute-sanitizer 2>/dev/null) $(wildcard $(CUDA_HOME)/bin/compute-sanitizer $(CUDA_HOME)/extras/compute-sanitizer/compute-sanitizer))
cuda-sanitize: $(BUILD)/test_cuda_kernels $(BUILD)/test_golden
	@[ -n "$(SANITIZER)" ] || { echo "compute-sanitizer not found (part of the CUDA toolkit)"; exit 1; }
	$(SANITIZER) --tool memcheck --error-exitcode 1 $(BUILD)/test_cuda_kernels
	$(SANITIZER) --tool racecheck --error-exitcode 1 $(BUILD)/test_cuda_kernels
	$(SANITIZER) --tool memcheck --error-exitcode 1 $(BUILD)/test_golden

clean:
	rm -rf build build-san $(FUZZ_BUILD)

# The main job: install what is missing, build, translate the shipped sample lyrics.
demo:
	sh scripts/install-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	$(BUILD)/lyricmt translate --model tests/fixtures/tiny-b --config configs/default.yaml -i samples/lyrics.txt

# Side-by-side CPU benchmark with CTranslate2 and transformers (benchmarks/README.md).
# Makes a SMaLL-100-sized random model on first use (1.3 GB under benchmarks/models/).
bench:
	sh scripts/install-deps.sh
	sh scripts/install-bench-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	python3 benchmarks/bench.py --model small100 --lines 32 --max-length 16

bench-quick:
	sh scripts/install-bench-deps.sh
	$(MAKE) $(BUILD)/lyricmt
	python3 benchmarks/bench.py --model tiny --lines 200 --max-length 24

.PHONY: all test fuzz sanitize cuda-sanitize clean demo deps bench bench-quick
-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
