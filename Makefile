# tickerd - breaking-news ticker push daemon.
#   make            build build/tickerd and build/tickerctl
#   make run        install what is missing, build, start Redis (if needed) and tickerd
#   make test       install, build, run the unit, integration and browser tests
#   make asan-test  the same tests under AddressSanitizer and UBSan
#   make SANITIZER=address,undefined   any build with sanitizers
#   make fuzz       each libFuzzer harness for FUZZ_SECONDS (clang, ASan, UBSan)

CC       ?= cc
PKGS     := libwebsockets libuv hiredis jansson inih libjwt libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WERROR   ?= -Werror
OPT      ?= -O2 -g
CFLAGS   += $(OPT) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter $(WERROR) -Iinclude $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm
BUILD    ?= build
PYTHON   ?= /usr/bin/python3

ifneq ($(SANITIZER),)
CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif

CORE_SRC := src/clock.c src/id.c src/parse.c src/proxy.c src/head.c src/config.c src/item.c src/filter.c src/msg.c src/embargo.c src/history.c src/log.c src/kill.c
DAEMON_SRC := $(CORE_SRC) src/metrics.c src/guard.c src/listener.c src/hub.c \
              src/redis_uv.c src/resolve.c src/sentinel.c src/cluster.c src/stream.c src/writer.c \
              src/net.c src/site.c src/reply.c src/request.c \
              src/feed.c src/screens.c src/killrec.c src/ws.c src/poll.c src/publish.c src/http.c \
              src/supervisor.c src/worker.c src/main.c
CTL_SRC  := $(CORE_SRC) src/tickerctl.c

DAEMON_OBJ := $(DAEMON_SRC:src/%.c=$(BUILD)/obj/%.o)
CTL_OBJ    := $(CTL_SRC:src/%.c=$(BUILD)/obj/%.o)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test-deps browser-test valgrind-test run test unit-test integration-test asan-test bench clean format install \
        fuzz fuzz-build fuzz-regress check-clients

all: $(BUILD)/tickerd $(BUILD)/tickerctl

$(BUILD)/obj/%.o: src/%.c $(wildcard include/tickerd/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(BUILD)/tickerd: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tickerctl: $(CTL_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The hub and the metrics it counts into link in too: test_hub drives the
# hub through a fake transport.
UNIT_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/hub.o $(BUILD)/obj/metrics.o

$(BUILD)/tests/%: tests/unit/%.c tests/unit/fixture.h tests/unit/inject.h $(UNIT_OBJ) | $(BUILD)/tests
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(LDLIBS) -lcmocka

# test_hub and test_embargo fail allocations on demand (inject.h): what the
# code under test allocates, itself or through jansson, comes to its wrappers.
INJECT_LDFLAGS := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
$(BUILD)/tests/test_hub: LDFLAGS += $(INJECT_LDFLAGS)
$(BUILD)/tests/test_embargo: LDFLAGS += $(INJECT_LDFLAGS)

# guard.c is daemon code: its test links it too.
$(BUILD)/tests/test_guard: $(BUILD)/obj/guard.o
# So is feed.c (the renderers of /v1/items and the feeds).
$(BUILD)/tests/test_feed: $(BUILD)/obj/feed.o
# test_writer drives the Redis command connection against a redis-server of its own.
$(BUILD)/tests/test_writer: $(BUILD)/obj/writer.o $(BUILD)/obj/redis_uv.o

deps:
	@scripts/install-deps.sh

run: deps all
	@scripts/run.sh

unit-test: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done
	@$(MAKE) --no-print-directory fuzz-regress
	@$(MAKE) --no-print-directory check-clients

# clients/web/ticker.global.js: ticker.js as a classic script, its exports on
# window.Ticker, for pages that cannot import a module (file:// CasparCG
# templates). Generated from ticker.js, never edited; checked in so that a
# graphics machine needs no build. check-clients (run by unit-test) fails when
# the checked-in file is not what this makes from ticker.js.
GLOBAL_JS_NAMES := 's/^export \(async \)\{0,1\}\(const\|let\|function\|class\) \([A-Za-z_$$][A-Za-z0-9_$$]*\).*/  \3,/p'
define global-js
	@if grep -nE '^[[:space:]]*(import|export)([^A-Za-z0-9_$$]|$$)|import\.meta' $(1) | \
	    grep -vE '^[0-9]+:export (async )?(const|let|function|class) '; then \
	    echo "$(1): only 'export const|let|function|class NAME' lines can go on window.Ticker" >&2; exit 1; fi
	@{ echo "// Generated from ticker.js by 'make clients/web/ticker.global.js': edit ticker.js, not this."; \
	  echo "// The same code as a classic script; what ticker.js exports is on window.Ticker."; \
	  echo "(function (root) {"; echo "'use strict';"; \
	  sed 's/^export //' $(1); \
	  echo "root.Ticker = {"; sed -n $(GLOBAL_JS_NAMES) $(1); echo "};"; \
	  echo "})(globalThis);"; } > $(basename $(2)).tmp.js
	@if command -v node >/dev/null; then node --check $(basename $(2)).tmp.js; fi
	@mv $(basename $(2)).tmp.js $(2)
endef

clients/web/ticker.global.js: clients/web/ticker.js Makefile
	$(call global-js,$<,$@)

$(BUILD)/ticker.global.js: clients/web/ticker.js Makefile | $(BUILD)/obj
	$(call global-js,$<,$@)

check-clients: $(BUILD)/ticker.global.js
	@cmp -s $< clients/web/ticker.global.js || { echo "clients/web/ticker.global.js is not what ticker.js makes:" \
	    "run 'make clients/web/ticker.global.js' and commit it" >&2; exit 1; }
	@echo "check-clients: clients/web/ticker.global.js is up to date"

# Fuzzing (tests/fuzz/README.md). `make fuzz` builds each harness with clang
# and libFuzzer, ASan and UBSan, and runs it for FUZZ_SECONDS on its seed
# corpus; what it finds lands in $(BUILD)/fuzz/. `make fuzz-regress` (part of
# unit-test) builds the same harnesses with $(CC) and a plain main() and
# replays the seed corpus and every kept crash input.
FUZZERS      := item query frame config token proxy
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -std=gnu11 -D_GNU_SOURCE -Wall -Wextra \
                -Wno-unused-parameter -Iinclude $(PKG_CFLAGS)
FUZZ_EXTRA_token := src/guard.c src/metrics.c
FUZZ_DEPS    := $(CORE_SRC) src/guard.c src/metrics.c $(wildcard include/tickerd/*.h)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(FUZZ_EXTRA_$*) $(PKG_LIBS) -lm

$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(CORE_SRC) $(FUZZ_EXTRA_$*) $(LDFLAGS) $(LDLIBS)

fuzz-build: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)

fuzz: fuzz-build
	@set -e; for f in $(FUZZERS); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$f; \
	    echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=8192 \
	        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/fuzz_$$f- \
	        $$([ -f tests/fuzz/$$f.dict ] && echo -dict=tests/fuzz/$$f.dict) \
	        $(BUILD)/fuzz/corpus/$$f tests/fuzz/corpus/$$f; \
	done

fuzz-regress: $(FUZZERS:%=$(BUILD)/fuzz-replay/fuzz_%)
	@set -e; for f in $(FUZZERS); do \
	    $(BUILD)/fuzz-replay/fuzz_$$f tests/fuzz/corpus/$$f tests/fuzz/regressions/$$f; \
	done

integration-test: all
	cd tests/integration && TICKERD_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

browser-test: all
	TICKERD_BUILD=$(abspath $(BUILD)) tests/browser/run.sh

test-deps:
	@scripts/install-deps.sh --test

test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit-test
	@$(MAKE) --no-print-directory integration-test
	@$(MAKE) --no-print-directory browser-test

asan-test: test-deps
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address,undefined OPT="-O1 -g" all unit-test
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address,undefined OPT="-O1 -g" integration-test

# tickerd under valgrind for the WebSocket, replay, ops and HTTP tests
# (workers = 1 in the tests, so valgrind sees the process that serves).
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --track-fds=no
valgrind-test: test-deps all
	cd tests/integration && TICKERD_BUILD=$(abspath $(BUILD)) TICKERD_WRAPPER="$(VALGRIND)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) \
	    test_ws.py test_replay.py test_ops.py test_http.py

PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/tickerd \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/tickerd \
	    $(DESTDIR)$(PREFIX)/share/doc/tickerd
	install -m 755 $(BUILD)/tickerd $(BUILD)/tickerctl $(DESTDIR)$(PREFIX)/bin/
	[ -e $(DESTDIR)$(PREFIX)/etc/tickerd/tickerd.conf ] || \
	    install -m 644 config/tickerd.conf $(DESTDIR)$(PREFIX)/etc/tickerd/tickerd.conf
	sed 's#/usr/local#$(PREFIX)#g' systemd/tickerd.service > \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system/tickerd.service
	cp -R clients $(DESTDIR)$(PREFIX)/share/tickerd/
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/tickerd/
	cp -R docs $(DESTDIR)$(PREFIX)/share/doc/tickerd/

format:
	clang-format -i src/*.c include/tickerd/*.h tests/unit/*.[ch] tests/fuzz/*.c tests/bench/loadgen.c tests/bench/fanout.c tests/bench/filters.h

clean:
	rm -rf build

# The hub's own cost of a fan-out, no sockets (tests/bench/fanout.c).
$(BUILD)/bench/fanout: tests/bench/fanout.c tests/bench/filters.h $(UNIT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/bench -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(LDLIBS)

bench: all $(BUILD)/bench/fanout
	tests/bench/run.sh

# test_stream includes the stream reader's sources to reach its static functions.
$(BUILD)/tests/test_stream: tests/unit/test_stream.c src/stream.c src/redis_uv.c src/sentinel.c $(BUILD)/obj/cluster.o \
                            $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/metrics.o \
                            $(BUILD)/obj/resolve.o | $(BUILD)/tests
	$(CC) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(LDLIBS) -lcmocka

# test_cluster includes the cluster client's source to reach its reply parser.
$(BUILD)/tests/test_cluster: tests/unit/test_cluster.c src/cluster.c $(BUILD)/obj/redis_uv.o \
                             $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/resolve.o | $(BUILD)/tests
	$(CC) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(LDLIBS) -lcmocka

# test_resolve includes the resolver's source to count its lookups.
$(BUILD)/tests/test_resolve: tests/unit/test_resolve.c src/resolve.c $(BUILD)/obj/log.o $(BUILD)/obj/parse.o | $(BUILD)/tests
	$(CC) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(LDLIBS) -lcmocka
