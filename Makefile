# fedc - top-level build.
#
#   make                     build the programs (build/bin/fedc-sim-mpi too
#                            when mpicc is found) and libfedc.a/.so
#   make install             PREFIX=/usr/local DESTDIR=: programs, library,
#                            headers, fedc.pc, man pages, systemd units,
#                            the CUDA module (docs/install.md)
#   make deb                 Debian packages (debian/, docs/install.md)
#   make examples            examples/*.c against a staged install
#   make client-arm64        fedc-client for arm64 (LEAN=1: the lean build);
#   make client-lean         a lean x86-64 fedc-client (docs/client.md)
#   make test                install what is missing, build, run every test
#   make test-long           the long suites (see "hardening" below)
#   make demo                install what is missing, run the demo job
#   make bench               print the benchmark figures
#   make example-pytorch     a PyTorch CNN across 4 sites (examples/pytorch-cnn)
#   make tutorial-hospital   docs/tutorials/hospital-network.md, run and checked
#   make tutorial-fraud      docs/tutorials/fraud-consortium.md, run and checked
#   make bench-mpi           fedc-sim-mpi with 1 and 2 ranks (bench/mpi.sh)
#   make SANITIZE=address,undefined test    the suite under sanitizers
#   make clean
#
# Objects go under $(BUILD); headers are tracked with -MMD so that a header
# change rebuilds what depends on it.

CC      ?= cc
SANITIZE ?=
# ARCH: the instruction-set baseline of everything but the CPU kernel
# variants (shared/ml/kernels_*.c, compiled for their own; see the block at
# the end). Portable by default: x86-64 is Debian's amd64 baseline, armv8-a
# arm64's; the hot kernels are chosen at run time (base/cpu.h).
# `make ARCH=-march=native` builds for this machine only.
TARGET_MACHINE := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter x86_64-%,$(TARGET_MACHINE)),)
ARCH    ?= -march=x86-64
else ifneq ($(filter aarch64-%,$(TARGET_MACHINE)),)
ARCH    ?= -march=armv8-a
else
ARCH    ?=
endif
OPT     ?= -O3

ifeq ($(SANITIZE),)
BUILD   ?= build
SANFLAGS :=
else
BUILD   ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WERROR  := $(if $(CI),-Werror,)
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) -g $(ARCH) -pthread -fopenmp-simd -ffp-contract=fast \
    -Wall -Wextra -Wshadow -Wno-unused-parameter $(WERROR) \
    -MMD -MP -Iinclude -Ishared -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    $(SANFLAGS) $(CFLAGS)
LDLIBS_ALL := -lopenblas -linih -lcjson -lmbedcrypto -lz -lm -pthread $(LDLIBS)
COORD_LIBS := -luv -lmbedtls -lmbedx509 -lmbedcrypto -lsqlite3 -lhttp_parser -lcurl
CLIENT_LIBS := -lcurl
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

LIB_SRC   := $(wildcard shared/*/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/lib/libfedc.a

# the simulator driver is a library too: tests and the MPI driver use it
# (sim/*_mpi.c are the MPI driver's own files, built below with mpicc)
SIM_SRC   := $(filter-out sim/main.c sim/%_mpi.c,$(wildcard sim/*.c))
SIM_OBJ   := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
SIM_LIB   := $(BUILD)/lib/libfedcsim.a
SIM_MAIN  := $(BUILD)/obj/sim/main.o

# the coordinator's and the client's modules, each a library beside its main
COORD_SRC := $(filter-out coordinator/main.c,$(wildcard coordinator/*.c))
COORD_OBJ := $(COORD_SRC:%.c=$(BUILD)/obj/%.o)
COORD_LIB := $(BUILD)/lib/libfedccoord.a
CLIENT_SRC := $(filter-out client/main.c,$(wildcard client/*.c))
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(BUILD)/obj/%.o)
CLIENT_LIB := $(BUILD)/lib/libfedcclient.a

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BINS := $(BUILD)/bin/fedc-sim
ifneq ($(wildcard coordinator/main.c),)
BINS += $(BUILD)/bin/fedc-coordinator
endif
ifneq ($(wildcard client/main.c),)
BINS += $(BUILD)/bin/fedc-client
endif
BINS += $(BUILD)/bin/fedc-predict
ALL_LIBS := $(SIM_LIB) $(COORD_LIB) $(CLIENT_LIB) $(LIB)

.PHONY: all test test-unit test-integration demo bench clean deps lint

all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SIM_LIB): $(SIM_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/fedc-sim: $(SIM_MAIN) $(SIM_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(SIM_MAIN) $(SIM_LIB) $(LIB) $(LDLIBS_ALL)

$(COORD_LIB): $(COORD_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(CLIENT_LIB): $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/fedc-coordinator: $(BUILD)/obj/coordinator/main.o $(COORD_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(COORD_LIB) $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

$(BUILD)/bin/fedc-predict: $(BUILD)/obj/predict/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/bin/fedc-client: $(BUILD)/obj/client/main.o $(CLIENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(CLIENT_LIB) $(LIB) $(CLIENT_LIBS) $(LDLIBS_ALL)

# --- MPI simulator: $(BUILD)/bin/fedc-sim-mpi ---------------------------------
# Built, and added to `all`, only when OpenMPI's mpicc is found (Debian's
# libopenmpi-dev; `make MPICC=` turns it off). Only the sim/*_mpi.c objects
# include mpi.h and are compiled with mpicc; libfedc and libfedcsim never need
# MPI. Without it `make test` skips the MPI test and says so.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPICC := $(MPICC)
MPI_SRC := $(wildcard sim/*_mpi.c)
MPI_OBJ := $(MPI_SRC:%.c=$(BUILD)/obj/%.o)
ifneq ($(MPICC),)
all: $(BUILD)/bin/fedc-sim-mpi

$(MPI_OBJ): $(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/bin/fedc-sim-mpi: $(MPI_OBJ) $(SIM_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(MPICC) $(LDFLAGS_ALL) -o $@ $(MPI_OBJ) $(SIM_LIB) $(LIB) $(LDLIBS_ALL)
endif

# 1 and 2 ranks on this machine: seconds per round, share in MPI (docs/scaling.md)
.PHONY: bench-mpi
bench-mpi: deps
	@$(MAKE) --no-print-directory $(BUILD)/bin/fedc-sim $(BUILD)/bin/fedc-sim-mpi
	@FEDC_BUILD=$(BUILD) bench/mpi.sh
# --- end of the MPI simulator -------------------------------------------------

# ---- cuda ----
# The CUDA backend and GPU aggregation (shared/cuda/*.cu, docs/cuda.md) are
# a module, $(CUDA_MODULE) = $(BUILD)/lib/fedc/libfedc-cuda.so, built when
# nvcc is found (`make CUDA=0`, or no nvcc, leaves it out). No program and
# not libfedc.so links the CUDA runtime: the library opens the module with
# dlopen when device = cuda or GPU aggregation is asked for
# (shared/ml/cuda_module.h: the ABI and where it looks; the build tree's
# bin/ and tests/ find it in ../lib/fedc/). Only the module links libcudart,
# and it exports one symbol (shared/cuda/module.map). Sanitizer builds
# leave CUDA out unless CUDA=1 is given: ASan's shadow memory and
# LeakSanitizer do not get on with the CUDA driver. Kernels are compiled
# for Hopper (sm_90) plus compute_90 PTX that newer GPUs compile at load
# time.
#   make cuda-module         the module alone (part of `all`)
#   make bench-cuda          bench/cuda.sh: GPU figures, or "skipped" without one
CUDA ?= $(if $(SANITIZE),0,1)
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
NVCC := $(NVCC)
CUDA_ON := $(if $(filter 1,$(CUDA)),$(if $(NVCC),1))
CUDA_OBJ :=
CUDA_MODULE := $(BUILD)/lib/fedc/libfedc-cuda.so
CUDA_BENCH := $(BUILD)/bin/fedc-bench-cuda
.PHONY: cuda-module
ifeq ($(CUDA_ON),1)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(realpath $(NVCC))))
CUDA_LIBDIR ?= $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS_ALL := -std=c++17 -O3 -g $(CUDA_ARCH) -Iinclude -Ishared -MMD -MP \
    -DFEDC_CUDA_LIBDIR='"$(CUDA_LIBDIR)"' \
    -Xcompiler -Wall,-Wextra,-Wshadow,-Wno-unused-parameter,-fPIC \
    $(if $(CI),-Werror all-warnings -Xcompiler -Werror,) $(NVCCFLAGS)
CUDA_SRC := $(wildcard shared/cuda/*.cu)
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
# the CUDA runtime's directory is in the module's run path (it is not a
# system directory under /usr/local/cuda); cuBLAS is loaded by the module
# when it first opens a backend (cuda_blas.cu)
CUDA_MODULE_LIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcudart -lstdc++

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS_ALL) -c $< -o $@

all: $(CUDA_MODULE) $(CUDA_BENCH)
cuda-module: $(CUDA_MODULE)
# unit tests run the GPU cases through the module when it is there
$(UNIT_BIN): | $(CUDA_MODULE)

$(CUDA_MODULE): $(CUDA_OBJ) shared/cuda/module.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,libfedc-cuda.so \
	    -Wl,--version-script=shared/cuda/module.map -Wl,--no-undefined \
	    -o $@ $(CUDA_OBJ) $(CUDA_MODULE_LIBS) -lm -pthread

# the bench calls the CUDA runtime itself (device properties, pinned
# buffers) and fedc's GPU code through the module, like any program
$(CUDA_BENCH): $(BUILD)/obj/bench/cuda_bench.o $(LIB) | $(CUDA_MODULE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL) $(CUDA_MODULE_LIBS)

-include $(CUDA_OBJ:.o=.d) $(BUILD)/obj/bench/cuda_bench.d
else
cuda-module:
	@echo "cuda-module: no nvcc (or CUDA=0): libfedc-cuda.so is not built"
endif

# $(CUDA_FLAG) records the setting ("cuda=1" or "cuda=") for scripts that
# ask what a build tree holds (tests/integration/test_install.sh); the C
# objects no longer depend on it: they are the same with or without CUDA.
CUDA_FLAG := $(BUILD)/obj/cuda.flag
ifeq ($(filter clean lint deps,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD)/obj && { [ "$$(cat $(CUDA_FLAG) 2>/dev/null)" = "cuda=$(CUDA_ON)" ] || echo "cuda=$(CUDA_ON)" > $(CUDA_FLAG); })
endif
$(CUDA_FLAG): ;

.PHONY: bench-cuda
bench-cuda: deps
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) sh bench/cuda.sh
# ---- end cuda ----

# every unit test links every library: the linker takes what it needs
$(BUILD)/tests/%: tests/unit/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isim -Icoordinator -Iclient -o $@ $< $(ALL_LIBS) \
	    $(COORD_LIBS) $(CLIENT_LIBS) $(LDLIBS_ALL) -lcmocka

# Install the Debian packages that are missing (a no-op when all are there).
deps:
	@scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@FEDC_BUILD=$(BUILD) scripts/run-tests.sh $(UNIT_BIN)

demo: deps
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) bench/run.sh

# A PyTorch CNN across 4 sites through fedc-client's external trainer
# (examples/pytorch-cnn/README.md); installs Debian's python3-torch when
# missing. Needs tensor jobs ([model] type = tensors) in fedc-coordinator.
.PHONY: example-pytorch
example-pytorch:
	@FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) /usr/bin/python3 examples/pytorch-cnn/run.py $(EXAMPLE_ARGS)

# docs/tutorials/hospital-network.md: every command of the page on loopback,
# its outcomes checked (also in make test-long: tests/long/)
.PHONY: tutorial-hospital
tutorial-hospital: deps
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) sh tutorials/hospital/run.sh

# docs/tutorials/fraud-consortium.md as a script: every command of the page
# on loopback, each promised outcome checked (also in make test-long, as
# tests/long/test_tutorial_fraud.sh). TUTORIAL_DIR keeps its files.
.PHONY: tutorial-fraud
tutorial-fraud: deps
	@$(MAKE) --no-print-directory all
	@FEDC_BUILD=$(BUILD) sh tutorials/fraud/run.sh $(TUTORIAL_DIR)

lint:
	@scripts/lint.sh

clean:
	rm -rf build

# ---- fuzzing ----
# Fuzz targets for every parser that reads bytes from outside; see
# docs/fuzzing.md. `make fuzz` builds each tests/fuzz/fuzz_<name>.c with
# clang and libFuzzer (the library sources compiled again, instrumented, with
# ASan and UBSan, under $(BUILD)/fuzz) and runs each for FUZZ_SECONDS with
# tests/fuzz/corpus/<name> as its working corpus, writing what crashes to
# tests/fuzz/crashes/<name>/. `make test` needs no clang: it builds the same
# targets with $(CC) against the normal libraries into replay binaries
# ($(BUILD)/tests/replay_<name>, main() in tests/fuzz/replay.c), which
# tests/integration/test_fuzz_replay.sh runs over every corpus and crash.
#
#   make fuzz                                     every target, 60 s each
#   make fuzz FUZZ_TARGETS="csv idx" FUZZ_SECONDS=600
#   make fuzz FUZZ_FLAGS=-jobs=2                  more libFuzzer options
#   make fuzz-build                               build the fuzzers only
FUZZ_TARGETS ?= safetensors model_update http_request join_json client_json \
    config csv idx secagg eval_json
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS ?=
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g $(ARCH) -pthread \
    -Wall -Wextra -Wshadow -Wno-unused-parameter $(WERROR) -MMD -MP \
    -Iinclude -Ishared -Icoordinator -Iclient -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer
# without CUDA (the C sources then use their stubs): ASan and the CUDA
# driver do not mix, and the parsers never reach the GPU
FUZZ_LDLIBS := $(COORD_LIBS) $(CLIENT_LIBS) -lopenblas -linih -lcjson \
    -lmbedcrypto -lz -lm -pthread $(LDLIBS)
FUZZ_SHARED_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_COORD_OBJ := $(COORD_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_CLIENT_OBJ := $(CLIENT_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIBS := $(FUZZ_DIR)/lib/libfedccoord.a $(FUZZ_DIR)/lib/libfedcclient.a \
    $(FUZZ_DIR)/lib/libfedc.a
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_REPLAY := $(FUZZ_TARGETS:%=$(BUILD)/tests/replay_%)
FUZZ_REPLAY_OBJ := $(FUZZ_TARGETS:%=$(BUILD)/obj/tests/fuzz/fuzz_%.o) \
    $(BUILD)/obj/tests/fuzz/replay.o

.PHONY: fuzz fuzz-build fuzz-replay

# libFuzzer's instrumentation without its main() for the libraries
$(FUZZ_SHARED_OBJ) $(FUZZ_COORD_OBJ) $(FUZZ_CLIENT_OBJ): $(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/lib/libfedc.a: $(FUZZ_SHARED_OBJ)
$(FUZZ_DIR)/lib/libfedccoord.a: $(FUZZ_COORD_OBJ)
$(FUZZ_DIR)/lib/libfedcclient.a: $(FUZZ_CLIENT_OBJ)
$(FUZZ_LIBS):
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BIN): $(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBS) \
	    $(FUZZ_LDLIBS)

fuzz-build: $(FUZZ_BIN)

# Each target in turn, a dictionary tests/fuzz/<name>.dict where there is
# one; every target runs even if one finds a crash, and the run fails then.
fuzz:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) not found: libFuzzer needs clang (apt-get install clang)"; exit 2; }
	@$(MAKE) --no-print-directory fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p tests/fuzz/corpus/$$t tests/fuzz/crashes/$$t; \
	  dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=tests/fuzz/crashes/$$t/ $$dict $(FUZZ_FLAGS) \
	      tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: crashes in:$$failed (see tests/fuzz/crashes/)"; exit 1; fi

# The replay binaries: plain $(CC), the normal (or SANITIZE) flags and
# libraries, rebuilt like the other objects when the CUDA setting changes.
$(FUZZ_REPLAY_OBJ): $(CUDA_FLAG)
$(FUZZ_REPLAY_OBJ): $(BUILD)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Icoordinator -Iclient -c $< -o $@

$(FUZZ_REPLAY): $(BUILD)/tests/replay_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o \
    $(BUILD)/obj/tests/fuzz/replay.o $(COORD_LIB) $(CLIENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/obj/tests/fuzz/replay.o $(COORD_LIB) \
	    $(CLIENT_LIB) $(LIB) $(COORD_LIBS) $(CLIENT_LIBS) $(LDLIBS_ALL)

fuzz-replay: deps
	@$(MAKE) --no-print-directory $(FUZZ_REPLAY)

test: fuzz-replay

-include $(FUZZ_SHARED_OBJ:.o=.d) $(FUZZ_COORD_OBJ:.o=.d) $(FUZZ_CLIENT_OBJ:.o=.d) \
    $(FUZZ_BIN:=.d) $(FUZZ_REPLAY_OBJ:.o=.d)
# ---- end fuzzing ----

# ---- load and network faults ----
# tests/tools/faultproxy.c, the fault-injecting TCP proxy that
# tests/integration/test_netfaults.sh puts between clients and the
# coordinator, built for `make test` as $(BUILD)/tests/faultproxy; and
# bench/load.c, fedc-load, the load generator of bench/load.sh
# (docs/load.md), as $(BUILD)/bin/fedc-load.
#   make bench-load          10,000 idle connections, then 1,000 clients' rounds
#   make bench-relays        the root's cost per round, 1,000 clients under 10 relays and flat
FAULTPROXY := $(BUILD)/tests/faultproxy
LOADGEN := $(BUILD)/bin/fedc-load

$(FAULTPROXY): $(BUILD)/obj/tests/tools/faultproxy.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

$(LOADGEN): $(BUILD)/obj/bench/load.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

# bench/fold.c, fedc-bench-fold: the coordinator's fold throughput against
# one core's memory bandwidth (bench/fold.sh, docs/compression.md).
#   make bench-fold
FOLDBENCH := $(BUILD)/bin/fedc-bench-fold

$(FOLDBENCH): $(BUILD)/obj/bench/fold.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

# bench/model_delta.c, fedc-bench-delta: a model's size as a lossless delta
# from the previous one, encode and decode times (bench/compression.sh).
DELTABENCH := $(BUILD)/bin/fedc-bench-delta

$(DELTABENCH): $(BUILD)/obj/bench/model_delta.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

# bench/client_lookup.c, fedc-bench-lookup: the coordinator's client lookup
# by fingerprint, the scan it was against the index (client_index.c).
#   make bench-lookup
LOOKUPBENCH := $(BUILD)/bin/fedc-bench-lookup

$(LOOKUPBENCH): $(BUILD)/obj/bench/client_lookup.o $(COORD_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(COORD_LIB) $(LIB) $(COORD_LIBS) $(LDLIBS_ALL)

$(BUILD)/obj/bench/client_lookup.o: CFLAGS_ALL += -Icoordinator

.PHONY: bench-lookup
bench-lookup: deps
	@$(MAKE) --no-print-directory $(LOOKUPBENCH)
	$(LOOKUPBENCH)

.PHONY: netfaults-build bench-load bench-fold
bench-fold: deps
	@$(MAKE) --no-print-directory $(FOLDBENCH)
	@FEDC_BUILD=$(BUILD) bench/fold.sh

netfaults-build: deps
	@$(MAKE) --no-print-directory $(FAULTPROXY)

test: netfaults-build

bench-load: deps
	@$(MAKE) --no-print-directory all $(LOADGEN)
	@FEDC_BUILD=$(BUILD) bench/load.sh

# bench/relays.sh: the root's bytes and CPU per round, 10 relays against flat
.PHONY: bench-relays
bench-relays: deps
	@$(MAKE) --no-print-directory all $(LOADGEN)
	@FEDC_BUILD=$(BUILD) bench/relays.sh

-include $(BUILD)/obj/tests/tools/faultproxy.d $(BUILD)/obj/bench/load.d $(BUILD)/obj/bench/fold.d
# ---- end load ----

# ---- hardening ----
# Sanitizers, valgrind, fault injection and the crash loop; see
# docs/hardening.md. `make test` runs the quick checks through
# tests/integration/test_hardening.sh (a handful of injected faults, a
# 5-kill crash loop); these run the rest:
#
#   make SANITIZE=thread test-coordinator
#       build with -fsanitize=thread in build/tsan (BUILD=... to choose) and
#       run the coordinator's integration tests and the quick hardening
#       checks against it; any ThreadSanitizer report fails the run
#       (tests/tsan.supp holds suppressions for third-party internals only)
#   make test-long
#       fedc-client under valgrind (a build without -march=native in
#       $(BUILD)/valgrind), every injected fault against an ASan+UBSan build
#       (build/san, or $(BUILD) when SANITIZE is given), and the
#       coordinator killed 50 times over one job, then every
#       tests/long/test_*.sh (long suites; exit 77 = skipped), given
#       FEDC_BUILD and FEDC_ASAN_BUILD (the ASan+UBSan tree)
TSAN_BUILD ?= build/tsan
# BUILD as given; else a thread-sanitized tree of its own
HARD_BUILD := $(if $(filter command line environment,$(origin BUILD)),$(BUILD),$(if \
    $(filter thread,$(SANITIZE)),$(TSAN_BUILD),$(BUILD)))
HARD_LOGS := $(abspath $(HARD_BUILD))/sanitizer-logs
ASAN_BUILD ?= $(if $(SANITIZE),$(BUILD),build/san)
VG_BUILD ?= $(BUILD)/valgrind

.PHONY: test-coordinator test-long
test-coordinator: deps
	@$(MAKE) --no-print-directory BUILD=$(HARD_BUILD) all
	@rm -rf $(HARD_LOGS) && mkdir -p $(HARD_LOGS)
	@export FEDC_BUILD=$(HARD_BUILD) \
	    TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(HARD_LOGS)/tsan $$TSAN_OPTIONS"; \
	status=0; \
	sh tests/integration/test_coordinator.sh || status=1; \
	FEDC_CRASHLOOP_ARGS="--kills 5 $(if $(filter thread,$(SANITIZE)),--rounds 6 --rows 1000 --epochs 2,--rounds 8)" \
	    sh tests/integration/test_hardening.sh || status=1; \
	if [ -n "$$(ls $(HARD_LOGS))" ]; then \
	  cat $(HARD_LOGS)/*; echo "test-coordinator: sanitizer reports in $(HARD_LOGS)"; status=1; \
	fi; \
	echo "test-coordinator ($(if $(SANITIZE),SANITIZE=$(SANITIZE),no sanitizer)): $$([ $$status = 0 ] && echo ok || echo FAILED)"; \
	exit $$status

test-long: deps
	@command -v valgrind >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	    apt-get install -y -q valgrind >/dev/null 2>&1; } || true
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SANITIZE=address,undefined all
	@$(MAKE) --no-print-directory BUILD=$(VG_BUILD) SANITIZE= ARCH= CUDA=0 \
	    $(VG_BUILD)/bin/fedc-client
	@start=$$(date +%s); failed=""; \
	echo "== valgrind_client.sh"; \
	FEDC_BUILD=$(BUILD) FEDC_VG_BUILD=$(VG_BUILD) sh tests/integration/valgrind_client.sh \
	    || failed="$$failed valgrind"; \
	echo "== fault_tests.py --long (ASan+UBSan: $(ASAN_BUILD))"; \
	FEDC_BUILD=$(ASAN_BUILD) python3 tests/integration/fault_tests.py --long \
	    || failed="$$failed faults"; \
	echo "== crashloop.py (50 kills)"; \
	FEDC_BUILD=$(BUILD) python3 tests/integration/crashloop.py || failed="$$failed crashloop"; \
	for t in tests/long/test_*.sh; do \
	  [ -e "$$t" ] || continue; echo "== $$t"; \
	  FEDC_BUILD=$(BUILD) FEDC_ASAN_BUILD=$(ASAN_BUILD) sh "$$t"; rc=$$?; \
	  [ $$rc = 0 ] || [ $$rc = 77 ] || failed="$$failed $$(basename $$t .sh)"; \
	done; \
	echo "test-long: $$(( $$(date +%s) - start ))s$${failed:+, failed:$$failed}"; \
	[ -z "$$failed" ]
# ---- end hardening ----

# ---- library and install ----
# libfedc as a program embeds it: every library source (shared/), the
# coordinator's, the client's and the simulator's modules (not their main.c,
# not sim/*_mpi.c); the CUDA code is a module of its own (---- cuda ----). Two forms,
# under $(DIST):
#   libfedc.a                the objects above, as the programs use them
#   libfedc.so.$(VERSION)    a PIC copy ($(BUILD)/pic/...), soname
#                            libfedc.so.$(SOMAJOR), that exports only the
#                            public API: $(EXPORTS_MAP), a version script
#                            made by scripts/export_map.py from the
#                            functions declared in include/fedc/*.h
# The programs keep linking the static archives above ($(LIB) & co).
#
#   make lib                 libfedc.a and libfedc.so (part of `all`)
#   make install             PREFIX=/usr/local, DESTDIR= (staging root):
#                            bin/ the programs, lib/ libfedc.so* and
#                            libfedc.a, include/fedc/*.h,
#                            lib/pkgconfig/fedc.pc (fedc.pc.in)
#   make uninstall           the same PREFIX and DESTDIR
#   make examples            install under $(STAGE) (PREFIX=/usr), then
#                            build every examples/NAME.c into
#                            $(BUILD)/examples/NAME with nothing but
#                            `pkg-config --cflags --libs fedc` against it
VERSION := $(shell sed -n 's/.*define FEDC_VERSION "\(.*\)".*/\1/p' include/fedc/version.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
DIST := $(BUILD)/dist
DIST_A := $(DIST)/libfedc.a
DIST_SO := $(DIST)/libfedc.so.$(VERSION)
DIST_SONAME := libfedc.so.$(SOMAJOR)
EXPORTS_MAP := $(DIST)/libfedc.map
PUBLIC_H := $(wildcard include/fedc/*.h)
EMBED_SRC := $(LIB_SRC) $(COORD_SRC) $(CLIENT_SRC) $(SIM_SRC)
EMBED_OBJ := $(EMBED_SRC:%.c=$(BUILD)/obj/%.o)
PIC_OBJ := $(EMBED_SRC:%.c=$(BUILD)/pic/%.o)
# what a program linking libfedc.a needs after it (libuv comes by Requires)
LIBS_PRIVATE = $(filter-out -luv,$(CLIENT_LIBS) $(COORD_LIBS) $(LDLIBS_ALL))

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL_BINS := $(filter-out $(CUDA_BENCH),$(BINS)) $(if $(MPICC),$(BUILD)/bin/fedc-sim-mpi)
# where the library looks for the CUDA module after its own directory
# (shared/ml/cuda_module.h), compiled into cuda_module.o
CUDA_MODULEDIR ?= $(LIBDIR)/fedc
$(BUILD)/obj/shared/ml/cuda_module.o $(BUILD)/pic/shared/ml/cuda_module.o: \
    CFLAGS_ALL += -DFEDC_CUDA_MODULE_DIR='"$(CUDA_MODULEDIR)"'

.PHONY: lib install uninstall examples
all: lib
lib: $(DIST_A) $(DIST_SO)

$(PIC_OBJ): $(CUDA_FLAG)
$(PIC_OBJ): $(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -c $< -o $@

$(EXPORTS_MAP): $(PUBLIC_H) scripts/export_map.py
	@mkdir -p $(dir $@)
	python3 scripts/export_map.py $(PUBLIC_H) > $@.tmp && mv $@.tmp $@

$(DIST_A): $(EMBED_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# --no-undefined: every library the objects need is named here, so a
# program links -lfedc alone; left out under sanitizers, whose runtime
# comes with the program
$(DIST_SO): $(PIC_OBJ) $(EXPORTS_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,$(DIST_SONAME) \
	    -Wl,--version-script=$(EXPORTS_MAP) $(if $(SANITIZE),,-Wl,--no-undefined) \
	    -o $@ $(PIC_OBJ) $(CLIENT_LIBS) $(COORD_LIBS) $(LDLIBS_ALL)
	ln -sf $(notdir $@) $(DIST)/$(DIST_SONAME)
	ln -sf $(DIST_SONAME) $(DIST)/libfedc.so

install: $(INSTALL_BINS) $(DIST_A) $(DIST_SO)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/fedc \
	    $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(INSTALL_BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(DIST_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(DIST_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(DIST_SO)) $(DESTDIR)$(LIBDIR)/$(DIST_SONAME)
	ln -sf $(DIST_SONAME) $(DESTDIR)$(LIBDIR)/libfedc.so
	install -m 644 $(PUBLIC_H) $(DESTDIR)$(INCLUDEDIR)/fedc/
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(strip $(LIBS_PRIVATE))|' \
	    fedc.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/fedc.pc
	@echo "installed fedc $(VERSION) under $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_BINS)) fedc-sim-mpi)
	rm -f $(DESTDIR)$(LIBDIR)/libfedc.a $(DESTDIR)$(LIBDIR)/libfedc.so \
	    $(DESTDIR)$(LIBDIR)/libfedc.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libfedc.so.$(VERSION)
	rm -f $(DESTDIR)$(INCLUDEDIR)/fedc/*.h $(DESTDIR)$(PKGCONFIGDIR)/fedc.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/fedc 2>/dev/null

# The examples see the library as a user would: a staged install and
# pkg-config. EXAMPLE_CFLAGS are language and warning flags only (and the
# sanitizer, which a sanitized libfedc.so needs in the program too);
# EXAMPLE_LDLIBS is what the examples' own code uses (libm), not fedc.
STAGE := $(abspath $(BUILD)/stage)
STAGE_PREFIX := /usr
STAGE_STAMP := $(BUILD)/stage.stamp
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
EXAMPLE_CFLAGS ?= -std=gnu11 -O2 -g -Wall -Wextra $(WERROR) $(SANFLAGS)
EXAMPLE_LDLIBS ?= -lm
EXAMPLE_PKG := PKG_CONFIG_PATH=$(STAGE)$(STAGE_PREFIX)/lib/pkgconfig \
    PKG_CONFIG_SYSROOT_DIR=$(STAGE) pkg-config

$(STAGE_STAMP): $(INSTALL_BINS) $(DIST_A) $(DIST_SO) $(PUBLIC_H) fedc.pc.in
	rm -rf $(STAGE)
	@$(MAKE) --no-print-directory install DESTDIR=$(STAGE) PREFIX=$(STAGE_PREFIX) \
	    BINDIR=$(STAGE_PREFIX)/bin LIBDIR=$(STAGE_PREFIX)/lib \
	    INCLUDEDIR=$(STAGE_PREFIX)/include PKGCONFIGDIR=$(STAGE_PREFIX)/lib/pkgconfig >/dev/null
	touch $@

$(EXAMPLE_BIN): $(BUILD)/examples/%: examples/%.c $(STAGE_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) -o $@ $< $$($(EXAMPLE_PKG) --cflags --libs fedc) \
	    $(EXAMPLE_LDLIBS) -Wl,-rpath,$(STAGE)$(STAGE_PREFIX)/lib

examples: deps
	@$(MAKE) --no-print-directory $(EXAMPLE_BIN)

test: examples

-include $(PIC_OBJ:.o=.d)
# ---- end library and install ----

# ---- packaging: man pages, systemd units, the CUDA module, make deb ----
# What `make install` adds beside the programs and the library
# (docs/install.md):
#   $(MANDIR)/man1/fedc-client.1 fedc-sim.1 [fedc-sim-mpi.1]    man/ (by hand)
#   $(MANDIR)/man8/fedc-coordinator.8
#   $(MANDIR)/man5/fedc.conf.5   generated from `fedc-sim --config-doc` by
#                                scripts/man_config.py ($(BUILD)/man/)
#   $(SYSTEMDUNITDIR)/fedc-coordinator.service fedc-client.service
#                                systemd/, ExecStart= rewritten to $(BINDIR)
#   $(SYSUSERSDIR)/fedc.conf     the fedc system user (systemd/fedc.sysusers)
#   $(LIBDIR)/fedc/libfedc-cuda.so   the CUDA module, when nvcc built it
# and `make deb` builds the Debian packages with dpkg-buildpackage from
# debian/ (scripts/build-deb.sh; the .debs land in $(BUILD)/deb-out/).
#   make man                 the generated page ($(BUILD)/man/fedc.conf.5)
#   make deb                 fedc-coordinator, fedc-client, fedc-sim,
#                            libfedc0, libfedc-dev .debs (docs/install.md)
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MAN_CONF := $(BUILD)/man/fedc.conf.5
MAN1 := man/fedc-client.1 man/fedc-predict.1 man/fedc-sim.1 $(if $(MPICC),man/fedc-sim-mpi.1)
MAN8 := man/fedc-coordinator.8
UNITS := systemd/fedc-coordinator.service systemd/fedc-client.service

.PHONY: man install-pkg-files uninstall-pkg-files deb
all: man
man: $(MAN_CONF)

$(MAN_CONF): $(BUILD)/bin/fedc-sim scripts/man_config.py
	@mkdir -p $(dir $@)
	$(BUILD)/bin/fedc-sim --config-doc | python3 scripts/man_config.py $(VERSION) > $@.tmp
	mv $@.tmp $@

install: install-pkg-files
install-pkg-files: $(MAN_CONF) $(if $(CUDA_ON),$(CUDA_MODULE))
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(MAN_CONF) $(DESTDIR)$(MANDIR)/man5/
	for u in $(UNITS); do \
	  sed 's|/usr/bin/|$(BINDIR)/|g' $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) && \
	  chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 644 systemd/fedc.sysusers $(DESTDIR)$(SYSUSERSDIR)/fedc.conf
ifeq ($(CUDA_ON),1)
	install -d $(DESTDIR)$(CUDA_MODULEDIR)
	install -m 644 $(CUDA_MODULE) $(DESTDIR)$(CUDA_MODULEDIR)/
endif

uninstall: uninstall-pkg-files
uninstall-pkg-files:
	rm -f $(DESTDIR)$(MANDIR)/man1/fedc-client.1 $(DESTDIR)$(MANDIR)/man1/fedc-sim.1 \
	    $(DESTDIR)$(MANDIR)/man1/fedc-predict.1 \
	    $(DESTDIR)$(MANDIR)/man1/fedc-sim-mpi.1 $(DESTDIR)$(MANDIR)/man8/fedc-coordinator.8 \
	    $(DESTDIR)$(MANDIR)/man5/fedc.conf.5
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/fedc-coordinator.service \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/fedc-client.service $(DESTDIR)$(SYSUSERSDIR)/fedc.conf
	rm -f $(DESTDIR)$(CUDA_MODULEDIR)/libfedc-cuda.so
	-rmdir $(DESTDIR)$(CUDA_MODULEDIR) 2>/dev/null

deb:
	FEDC_DEB_OUT=$(abspath $(BUILD))/deb-out scripts/build-deb.sh
# ---- end packaging ----

# ---- arm64 client ----
# fedc-client for arm64 edge devices, and a lean client build; see
# docs/client.md, "Edge devices: arm64 and the lean build". Each is a
# sub-make of this Makefile into a build folder of its own, without CUDA or
# MPI, building only the client (libfedc.a is an archive: the linker takes
# only the objects the client reaches, so none of the coordinator's
# libraries, libuv, SQLite, http-parser, is linked).
#
#   make client-arm64        build/arm64/bin/fedc-client with Debian's cross
#                            compiler (aarch64-linux-gnu-gcc) against the
#                            arm64 libraries of multiarch; installs them
#                            first (scripts/install-cross-deps.sh, as root)
#   make client-lean         build/lean/bin/fedc-client: -Os, each function
#                            and datum in its own section, unreferenced ones
#                            dropped at link (--gc-sections), libraries
#                            linked --as-needed, stripped
#   make client-arm64 LEAN=1 both: build/arm64-lean/bin/fedc-client
#   make test                also builds the arm64 client when the cross
#                            packages are there or can be installed;
#                            tests/integration/test_arm64_client.sh runs it
#                            under qemu-aarch64 (skipped without them)
ARM64_TRIPLET := aarch64-linux-gnu
ARM64_CC ?= $(ARM64_TRIPLET)-gcc
ARM64_ARCH ?= -march=armv8-a
ARM64_BUILD ?= build/arm64$(if $(LEAN),-lean)
LEAN_BUILD ?= build/lean
# -Os inlines less, and GCC 12 then warns that config.c's snprintf of an
# error message may be truncated (it may, on purpose) and, without
# -march=native, that a static helper of backend_cpu.c passes a 64-byte
# vector by value (an ABI note; static functions have no outside callers)
LEAN_MAKE := OPT=-Os CFLAGS="-ffunction-sections -fdata-sections -Wno-format-truncation -Wno-psabi" \
    LDFLAGS="-Wl,--gc-sections -Wl,--as-needed -s"
CLIENT_ONLY_MAKE := CUDA=0 MPICC= SANITIZE=

.PHONY: client-arm64 client-lean client-arm64-maybe
client-arm64:
	@scripts/install-cross-deps.sh
	@$(MAKE) --no-print-directory BUILD=$(ARM64_BUILD) CC=$(ARM64_CC) \
	    ARCH="$(ARM64_ARCH)" FEDC_TARGET=$(ARM64_TRIPLET) $(CLIENT_ONLY_MAKE) \
	    $(if $(LEAN),$(LEAN_MAKE)) $(ARM64_BUILD)/bin/fedc-client

client-lean:
	@$(MAKE) --no-print-directory BUILD=$(LEAN_BUILD) ARCH= $(CLIENT_ONLY_MAKE) \
	    $(LEAN_MAKE) $(LEAN_BUILD)/bin/fedc-client

# for `make test`: a machine that cannot get the cross packages (not root,
# no network) goes on without the arm64 client, and its test says skipped;
# a build that fails once the packages are there fails `make test`
client-arm64-maybe:
	@if scripts/install-cross-deps.sh; then $(MAKE) --no-print-directory client-arm64; \
	else echo "make test: no arm64 cross toolchain: test_arm64_client will be skipped"; fi

test: client-arm64-maybe

# inside the cross sub-make: the arm64 OpenBLAS headers, not the host's
ifneq ($(FEDC_TARGET),)
CFLAGS_ALL := $(subst x86_64-linux-gnu,$(FEDC_TARGET),$(CFLAGS_ALL))
endif
# ---- end arm64 client ----

-include $(LIB_OBJ:.o=.d) $(SIM_OBJ:.o=.d) $(SIM_MAIN:.o=.d) $(UNIT_BIN:=.d) $(MPI_OBJ:.o=.d) \
    $(COORD_OBJ:.o=.d) $(CLIENT_OBJ:.o=.d) $(BUILD)/obj/coordinator/main.d \
    $(BUILD)/obj/client/main.d $(BUILD)/obj/predict/main.d

# --- CPU kernel variants: per-file flags ---------------------------------------
# Each x86-64 variant of the hot kernels (shared/ml/kernels_avx2.c, _avx512.c)
# is compiled for its own instruction set whatever ARCH says (a
# -march=native build included), in the static, PIC and fuzz objects; the
# program picks one at run time from what the CPU reports (base/cpu.h).
# kernels_neon.c needs nothing: NEON is in the arm64 baseline.
ifneq ($(filter x86_64-%,$(TARGET_MACHINE)),)
KERNEL_ISA_avx2 := -march=x86-64-v3 -mtune=generic
KERNEL_ISA_avx512 := -march=x86-64-v4 -mtune=generic
define kernel_flags
$(BUILD)/obj/shared/ml/kernels_$(1).o $(BUILD)/pic/shared/ml/kernels_$(1).o: \
    CFLAGS_ALL := $$(filter-out -march=% -mtune=% -mcpu=%,$$(CFLAGS_ALL)) $$(KERNEL_ISA_$(1))
$(FUZZ_DIR)/obj/shared/ml/kernels_$(1).o: \
    FUZZ_CFLAGS := $$(filter-out -march=% -mtune=% -mcpu=%,$$(FUZZ_CFLAGS)) $$(KERNEL_ISA_$(1))
endef
$(foreach v,avx2 avx512,$(eval $(call kernel_flags,$(v))))
endif
