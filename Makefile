# fedc - top-level build.
#
#   make                     build build/bin/fedc-sim and libfedc (and
#                            build/bin/fedc-sim-mpi when mpicc is found)
#   make test                install what is missing, build, run every test
#   make demo                install what is missing, run the demo job
#   make bench               print the benchmark figures
#   make bench-mpi           fedc-sim-mpi with 1 and 2 ranks (bench/mpi.sh)
#   make SANITIZE=address,undefined test    the suite under sanitizers
#   make clean
#
# Objects go under $(BUILD); headers are tracked with -MMD so that a header
# change rebuilds what depends on it.

CC      ?= cc
SANITIZE ?=
ARCH    ?= -march=native
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
    -MMD -MP -Ishared -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    $(SANFLAGS) $(CFLAGS)
LDLIBS_ALL := -lopenblas -linih -lcjson -lmbedcrypto -lz -lm -pthread $(LDLIBS)
COORD_LIBS := -luv -lmbedtls -lmbedx509 -lmbedcrypto -lsqlite3 -lhttp_parser
CLIENT_LIBS := -lcurl
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

LIB_SRC   := $(wildcard shared/*.c)
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

lint:
	@scripts/lint.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(SIM_OBJ:.o=.d) $(SIM_MAIN:.o=.d) $(UNIT_BIN:=.d) $(MPI_OBJ:.o=.d) \
    $(COORD_OBJ:.o=.d) $(CLIENT_OBJ:.o=.d) $(BUILD)/obj/coordinator/main.d \
    $(BUILD)/obj/client/main.d
