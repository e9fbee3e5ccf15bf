# Front door: `make` builds, `make run` serves, `make test` tests, `make bench` measures.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
RUN_ARGS ?=

.PHONY: all build run test test-unit test-asan e2e-deps bench deps clean

all: build

deps:
	@scripts/check-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/agentnet serve $(RUN_ARGS)

e2e-deps:
	@scripts/check-deps.sh --with-tools
	@cd tests/e2e && { [ -d node_modules/openai ] || npm ci --no-audit --no-fund --loglevel=error; }

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

# The sanitizer build runs every test, the end-to-end suite included, so a
# memory error or leak in the server fails the run (abort_on_error).
test-asan: deps e2e-deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAN_SANITIZE=ON -DAN_E2E=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure

test: build e2e-deps test-asan
	@cd $(BUILD) && ctest --output-on-failure

bench: build
	@scripts/check-deps.sh --bench
	@bench/run.sh
	@BUILD=$(BUILD) bench/embed/run.sh
	@BUILD=$(BUILD) bench/sandbox/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
