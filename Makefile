# fedc - top-level build.
#
#   make                     build build/bin/fedc-sim and libfedc
#   make test                install what is missing, build, run every test
#   make demo                install what is missing, run the demo job
#   make bench               print the benchmark figures
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
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

LIB_SRC   := $(wildcard shared/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/lib/libfedc.a

# the simulator driver is a library too: tests and the MPI driver use it
SIM_SRC   := $(filter-out sim/main.c,$(wildcard sim/*.c))
SIM_OBJ   := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
SIM_LIB   := $(BUILD)/lib/libfedcsim.a
SIM_MAIN  := $(BUILD)/obj/sim/main.o

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BINS := $(BUILD)/bin/fedc-sim

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

$(BUILD)/tests/%: tests/unit/%.c $(SIM_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isim -o $@ $< $(SIM_LIB) $(LIB) $(LDLIBS_ALL) -lcmocka

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

-include $(LIB_OBJ:.o=.d) $(SIM_OBJ:.o=.d) $(SIM_MAIN:.o=.d) $(UNIT_BIN:=.d)
