# whistle - build, test, run.
#
#   make            build every binary into build/bin/
#   make demo       install what is missing, start the stack, replay the scenarios
#   make check      install what is missing, run every test, plain and under ASan+UBSan
#   make up / down  start / stop the local stack (PostgreSQL + four services) under var/
#   make bench      throughput, latency, cost and the machine's ceiling (tests/bench/)
#   make bench-quick  the same with 10,000 tickets and 10 s of latency
#
# SAN=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer into build/san/.

CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT      = -O1 -g
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2 -g
endif

PKGS     = libzmq libprotobuf-c libuv libconfig json-c
PG_INC  := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS  += -DWH_SOURCE_DIR='"$(CURDIR)"' -std=gnu11 $(OPT) -Wall -Wextra -Werror -Wno-missing-field-initializers \
           $(SANFLAGS) -I$(BUILD)/gen -Icommon -I$(PG_INC) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# --as-needed: a program records only the libraries it calls. libfriso
# (triage's word segmenter) exports generic names that json-c exports too
# (array_list_add): in one process friso's calls would land in json-c's.
# So no program runs both: triage uses no json-c, and triage's score reads
# what jq made of the JSON; the others link friso after json-c and never
# run it.
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpq -lfriso -lopencc -lm

GEN      = $(BUILD)/gen
OBJ      = $(BUILD)/obj
BIN      = $(BUILD)/bin

PROTO_C  = $(GEN)/whistle.pb-c.c
PROTO_H  = $(GEN)/whistle.pb-c.h
COMMON   = wh_err wh_log wh_clock wh_codec wh_text wh_pg wh_rows wh_keys wh_bus wh_outbox wh_relay wh_inbox wh_consumer wh_config \
           wh_org wh_words wh_wordset wh_learn wh_rules wh_calendar wh_admin wh_service
COMMON_O = $(COMMON:%=$(OBJ)/common/%.o) $(OBJ)/gen/whistle.pb-c.o

SERVICES = intake triage dispatch notify
intake_SRC   = main intake validate
triage_SRC   = main triage ask
dispatch_SRC = main dispatch desk machine clocks order
notify_SRC   = main notify messages
ctl_SRC      = main

TESTS    = test_unit test_integration test_e2e whistle-triage-score
BINS     = $(SERVICES:%=$(BIN)/whistle-%) $(BIN)/whistlectl

.PHONY: all deps demo check up down clean test-bin bench bench-quick
.SECONDARY:
.SECONDEXPANSION:

all: $(BINS)

deps:
	@deploy/local/deps.sh

$(PROTO_C) $(PROTO_H): proto/whistle.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) proto/whistle.proto

$(GEN)/%_sql.c: tools/embed_sql.sh services/$$*/sql $$(wildcard services/$$*/sql/*.sql)
	@mkdir -p $(GEN)
	tools/embed_sql.sh $* $@ $(sort $(wildcard services/$*/sql/*.sql))

$(OBJ)/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter -MMD -MP -c $< -o $@

$(OBJ)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

define service_rule
$(BIN)/whistle-$(1): $$($(1)_SRC:%=$(OBJ)/services/$(1)/%.o) $(OBJ)/gen/$(1)_sql.o $(COMMON_O)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$^ $$(LDLIBS) -o $$@
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(BIN)/whistlectl: $(ctl_SRC:%=$(OBJ)/services/ctl/%.o) $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Tests: cmocka programs; the end-to-end one drives the real binaries.
$(BIN)/test_unit: $(OBJ)/tests/unit/test_unit.o $(OBJ)/services/intake/validate.o \
                  $(OBJ)/services/dispatch/machine.o $(OBJ)/services/dispatch/clocks.o \
                  $(OBJ)/services/notify/messages.o $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@
$(BIN)/test_integration: $(OBJ)/tests/integration/test_integration.o $(OBJ)/gen/triage_sql.o \
                         $(OBJ)/gen/dispatch_sql.o \
                         $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@
$(BIN)/test_e2e: $(OBJ)/tests/e2e/test_e2e.o $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# Triage's score on labelled reports (tests/data/README.md).
$(BIN)/whistle-triage-score: $(OBJ)/tests/triage/score.o $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

test-bin: $(BINS) $(TESTS:%=$(BIN)/%)

# The benchmark's load generator: intake's protocol, every party's feed.
$(BIN)/whistle-bench: $(OBJ)/tests/bench/loadgen.o $(COMMON_O)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench: deps
	@$(MAKE) --no-print-directory all $(BIN)/whistle-bench
	@tests/bench/bench.sh 100000 30 500

bench-quick: deps
	@$(MAKE) --no-print-directory all $(BIN)/whistle-bench
	@tests/bench/bench.sh 10000 10 500

up: deps all
	@deploy/local/stack.sh up

down:
	@deploy/local/stack.sh down

demo: deps all
	@deploy/local/demo.sh

check: deps
	@$(MAKE) --no-print-directory test-bin
	@$(MAKE) --no-print-directory SAN=1 test-bin
	@tests/run.sh build build/san

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
